//! What the Lambdas do beyond the shared rules: the `parquet-writer`'s handling
//! of S3 notifications, its scheduled compactor mode, and the metrics they publish. The
//! `firehose-transform` handler is [`crate::firehose`] itself.

pub mod compactor;
pub mod metrics;
pub mod parquet_writer;
