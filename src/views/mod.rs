//! Typed views (CONTRACT section 6): one view per event type that shows its
//! payload as typed columns, the same SQL in Athena and in `eventlake query`.
//!
//! The first five are pure (the lake writer and compaction count fields with
//! [`stats`]); [`local`] and [`publish`] (and the error they share) are the
//! shells over a local lake and over S3 and Glue.
//!
//! - [`ladder`]: the type one value needs and the narrowest type holding two.
//! - [`naming`]: view and column names.
//! - [`stats`]: what one partition's first copies hold of each field.
//! - [`schema`]: a type's schema file, folded from its partitions, and the
//!   changes between two.
//! - [`sql`]: the view as Athena SQL.
//! - [`local`]: a local lake's views kept current (`eventlake views`, and after
//!   `ingest`, `replay` and `compact`).
//! - [`publish`]: an S3 lake's views kept current from what its writers and
//!   compactions counted, and published to Glue for Athena.

mod error;
pub mod ladder;
pub mod local;
pub mod naming;
pub mod publish;
pub mod schema;
pub mod sql;
pub mod stats;

pub use error::ViewsError;

/// The folder of schema files under the lake root.
pub const SCHEMAS_DIR: &str = "_schemas";
/// Where a run keeps each partition's counts and the files they came from,
/// inside [`SCHEMAS_DIR`] (a folder: no event type's file can be named so).
pub const COUNTS_DIR: &str = "_counts";

/// A file of `_schemas/` as both shells write it: pretty JSON and a newline, so
/// that a local run from scratch and the deployed stack write the same bytes.
pub fn file_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    text
}

/// The schema file of `event_type`, relative to the lake root.
pub fn schema_file(event_type: &str) -> String {
    format!("{SCHEMAS_DIR}/{event_type}.json")
}

/// The declared-type file of `event_type`, relative to the lake root.
pub fn declared_file(event_type: &str) -> String {
    format!("{SCHEMAS_DIR}/{event_type}.declared.json")
}
