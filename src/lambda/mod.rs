//! What the Lambdas do beyond the shared rules: the `parquet-writer`'s handling
//! of S3 notifications, and the metrics both Lambdas publish. The
//! `firehose-transform` handler is [`crate::firehose`] itself.

pub mod metrics;
pub mod parquet_writer;
