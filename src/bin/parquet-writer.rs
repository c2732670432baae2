//! The `parquet-writer` Lambda: staged NDJSON objects (S3 notifications through SQS)
//! become Parquet files in the lake.

use std::time::{Duration, Instant};

use eventlake::aws::{self, s3};
use eventlake::catalog::{self, Catalog};
use eventlake::lambda::metrics;
use eventlake::lambda::parquet_writer::{Config, Handler};
use eventlake::telemetry;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs(std::io::stderr);
    let config = Config::from_env()?;
    let aws_config = aws::load_config().await;
    let catalog = match &config.glue_database {
        Some(database) => Some(Catalog::new(catalog::glue_client(&aws_config), database, &config.glue_table)),
        None => None,
    };
    // Set by the Lambda service; absent only when run by hand.
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "parquet-writer".into());
    let handler = Handler::new(s3::s3_client(&aws_config), config, catalog);
    let (handler, function_name) = (&handler, function_name.as_str());
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        let deadline_millis = event.context.deadline as i64;
        let remaining = || Duration::from_millis((deadline_millis - telemetry::now_millis()).max(0) as u64);
        let invocation = handler.invoke(event.payload, remaining).await;
        let duration = started.elapsed().as_millis() as u64;
        for document in
            metrics::writer_documents(&invocation.report, duration, function_name, telemetry::now_millis())
        {
            println!("{document}");
        }
        invocation.response.map_err(Error::from)
    }))
    .await
}
