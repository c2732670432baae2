//! The lake: its one schema, the writer that turns validated events into
//! partitioned Parquet files, and the storage it writes to.

pub mod encoder;
pub mod listing;
pub mod ndjson;
pub mod rows;
pub mod schema;
pub mod scratch;
pub mod storage;
pub mod trace;
pub mod writer;
