//! Compaction (CONTRACT section 4): a partition's files merged into few large
//! files with one row per dedupe key (the first copy), swapped in atomically for
//! readers; one home for its parts:
//!
//! - [`merge`]: the streaming k-way merge of one partition's files, and a local
//!   partition's directory swapped for its merged files.
//! - [`local`]: a local lake's partitions compacted, each by one thread.
//! - [`s3`]: an S3 lake compacted through its Glue table (merged files under a
//!   new location, the partition switched to it), how writers follow a switch,
//!   files stranded in `events/` swept; its items are re-exported here.
//! - [`lease`]: one compaction at a time per S3 lake.
//!
//! The deployed compactor (`lambda::compactor`) and `eventlake compact` run these.

pub mod lease;
pub mod local;
pub mod merge;
pub mod s3;

pub use s3::*;

/// The size a compaction aims its files at (`eventlake compact --target-mib`):
/// large enough that engines read few files, small enough for one Lambda.
pub const DEFAULT_TARGET_MIB: u32 = 128;
