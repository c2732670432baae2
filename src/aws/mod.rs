//! AWS: the SDK configuration, loaded once per process and shared by every client
//! (the `parquet-writer` Lambda's S3 and Glue clients, the CLI's), and the S3
//! storage of the lake, the Kinesis stream `eventlake send` puts to and `eventlake
//! tail` reads (`kinesis`), and tail's checkpoints in DynamoDB (`dynamodb`; both
//! command line only). Glue is [`crate::catalog`].

#[cfg(feature = "cli")]
pub mod dynamodb;
#[cfg(feature = "cli")]
pub mod kinesis;
pub mod s3;

pub use aws_config::SdkConfig;

/// The attempts of every AWS call, with the SDK's standard backoff.
pub const ATTEMPTS: u32 = 5;

/// Loads the SDK configuration from the environment (region, credentials,
/// `AWS_ENDPOINT_URL`...), with [`ATTEMPTS`] standard retries. Call it once and
/// build every client from it.
pub async fn load_config() -> SdkConfig {
    load_config_in(None).await
}

/// [`load_config`], in `region` if given (else the environment's).
pub async fn load_config_in(region: Option<String>) -> SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retries());
    match region {
        Some(region) => loader.region(aws_config::Region::new(region)).load().await,
        None => loader.load().await,
    }
}

/// [`ATTEMPTS`] attempts with the SDK's standard backoff.
pub fn retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard().with_max_attempts(ATTEMPTS)
}
