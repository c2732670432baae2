//! eventlake: an open data-lake ETL for JSON event streams on AWS.
//!
//! The library holds every rule; `src/bin/` holds thin binaries (the two Lambdas
//! and the `eventlake` CLI) that adapt it to the world. The map, lower layers first
//! (a module uses only those above it in this list; `make lint` checks `core`):
//!
//! - [`core`]: the event contract, pure: [`core::event`] (validate, enrich, dedupe
//!   key, partition), [`core::timestamp`], [`core::json`], [`core::dedupe`],
//!   [`core::rejection`].
//! - [`telemetry`]: logs, error chains and the clock, for every binary.
//! - [`firehose`]: the Firehose transformation request and response (the
//!   `firehose-transform` Lambda's work).
//! - [`generate`]: deterministic sample events.
//! - [`producer`]: events packed into stream records and put with retries
//!   (`eventlake send`).
//! - [`cost`]: AWS's billing rules and the monthly cost model (`eventlake cost`).
//! - [`lake`]: the lake's [`lake::schema`], the [`lake::writer`] (partition
//!   buffers in [`lake::rows`], Parquet from [`lake::encoder`], part files,
//!   rejected records), [`lake::ndjson`] input,
//!   [`lake::storage`] and [`lake::scratch`].
//! - [`shards`]: a stream's shards read in order, parents before children, and
//!   the checkpoint of each shard's position, pure.
//! - [`aws`]: the SDK configuration loaded once, and the lake in S3 ([`aws::s3`]);
//!   the stream and tail's checkpoint table (command line only).
//! - [`catalog`]: partitions registered in the Glue table.
//! - [`compaction`]: a partition's files merged, one row per key ([`compaction::merge`]);
//!   a local lake's partitions compacted ([`compaction::local`]); compaction of an
//!   S3 lake (merged files under a new location,
//!   the Glue partition switched to it), and how writers follow a switch.
//! - [`replay`]: records that did not reach the lake validated again and
//!   written in, minus what the lake holds (`eventlake replay`).
//! - [`lambda`]: the `parquet-writer`'s handling of S3 notifications, and the
//!   metrics both Lambdas publish.
//! - [`views`]: typed views per event type: the type ladder, names, schema
//!   files and the views' Athena SQL.
//! - [`query`]: SQL over a local lake with Athena's functions (feature `query`).
//! - `tail`: a stream's events as NDJSON from a checkpoint (`eventlake tail`,
//!   the console's consumer; features `cli` and `query`).
//! - `console`: the web console (`eventlake console`; features `cli` and
//!   `query`): a thin HTTP shell over the verbs above, its page embedded.
//! - [`cli`]: the `eventlake` command line (feature `cli`; the Lambdas are built
//!   without it).

pub mod aws;
pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compaction;
#[cfg(all(feature = "cli", feature = "query"))]
pub mod console;
pub mod core;
pub mod cost;
pub mod firehose;
pub mod generate;
pub mod lake;
pub mod lambda;
pub mod producer;
#[cfg(feature = "query")]
pub mod query;
pub mod replay;
pub mod shards;
#[cfg(all(feature = "cli", feature = "query"))]
pub mod tail;
pub mod telemetry;
pub mod views;
