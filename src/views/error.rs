//! Why the typed views could not be brought up to date ([`super::local`],
//! [`super::publish`]).

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
    Read { partition: String, source: crate::compaction::merge::CompactError },
    /// The lake in S3 could not be read or written.
    #[error(transparent)]
    Storage(#[from] crate::lake::storage::StorageError),
    /// The Glue catalog refused a view.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    /// A partition could not be counted from its files.
    #[error(transparent)]
    Compaction(#[from] crate::compaction::CompactorError),
    /// A file of `_schemas/` in S3 is not what this module writes.
    #[error("{key}: {source}")]
    Damaged { key: String, source: serde_json::Error },
}
