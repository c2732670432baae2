//! eventlake: an open data-lake ETL for JSON event streams on AWS.
//!
//! The library holds every rule; `src/bin/` holds thin binaries (the
//! `firehose-transform` Lambda and the `eventlake` CLI) that adapt it to the world.
//!
//! - [`event`]: the event contract: validate, enrich, dedupe key, partition keys.
//! - [`rejection`]: why a record was rejected, for people and for metrics.
//! - [`timestamp`]: exact reading of `created_at`.
//! - [`json`]: byte-level helpers over validated JSON text.
//! - [`dedupe`]: first-seen-wins deduplication.
//! - [`firehose`]: the Firehose transformation request and response.
//! - [`metrics`]: CloudWatch Embedded Metric Format documents.
//! - [`generate`]: deterministic sample events.
//! - [`schema`]: the lake's one schema and the forms derived from it.
//! - [`parquet_file`]: Parquet encoding of one partition's rows.
//! - [`ingest`]: NDJSON (plain or gzip) into the lake writer, line by line.
//! - [`lake`]: the lake writer: partition buffers, part files, rejected records.
//! - [`row_buffer`]: a partition's rows in memory, and spilled to local disk.
//! - [`storage`]: local directory and S3 behind one trait.
//! - [`scratch`]: a run's private working directory, cleaned after a crash.
//! - [`catalog`]: partitions registered in the Glue table.
//! - [`query`]: SQL over a local lake with Athena's functions (feature `query`).
//! - [`staged`]: the parquet-writer Lambda's work on S3 notifications.
//! - [`telemetry`]: logs, error chains and the clock, for the binaries.
//! - [`cli`]: the `eventlake` command line.

pub mod catalog;
pub mod cli;
pub mod dedupe;
pub mod event;
pub mod firehose;
pub mod generate;
pub mod ingest;
pub mod json;
pub mod lake;
pub mod metrics;
pub mod parquet_file;
#[cfg(feature = "query")]
pub mod query;
pub mod rejection;
pub mod row_buffer;
pub mod schema;
pub mod scratch;
pub mod staged;
pub mod storage;
pub mod telemetry;
pub mod timestamp;
