//! Typed views (CONTRACT section 6): one view per event type that shows its
//! payload as typed columns, the same SQL in Athena and in `eventlake query`.
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

pub mod ladder;
pub mod local;
pub mod naming;
pub mod publish;
pub mod schema;
pub mod sql;
pub mod stats;

use std::path::PathBuf;

/// Why the views could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a declared-type file ({source}); write {{\"fields\": {{\"<field>\": \"<type>\"}}}} with types boolean, bigint, double, timestamp, varchar, json or array(<scalar>)")]
    Declared { path: PathBuf, source: serde_json::Error },
    /// The lake's partitions could not be listed (the message names the directory).
    #[error(transparent)]
    Listing(std::io::Error),
    #[error("reading partition {partition}: {source}")]
    Read { partition: String, source: crate::lake::compact::CompactError },
    /// The lake in S3 could not be read or written.
    #[error(transparent)]
    Storage(#[from] crate::lake::storage::StorageError),
    /// The Glue catalog refused a view.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A file of `_schemas/` in S3 is not what this module writes.
    #[error("{key}: {source}")]
    Damaged { key: String, source: serde_json::Error },
}

/// The folder of schema files under the lake root.
pub const SCHEMAS_DIR: &str = "_schemas";
/// Where a run keeps each partition's counts and the files they came from,
/// inside [`SCHEMAS_DIR`] (a folder: no event type's file can be named so).
pub const COUNTS_DIR: &str = "_counts";

/// The schema file of `event_type`, relative to the lake root.
pub fn schema_file(event_type: &str) -> String {
    format!("{SCHEMAS_DIR}/{event_type}.json")
}

/// The declared-type file of `event_type`, relative to the lake root.
pub fn declared_file(event_type: &str) -> String {
    format!("{SCHEMAS_DIR}/{event_type}.declared.json")
}
