//! The `parquet-writer` Lambda: staged NDJSON objects (S3 notifications through SQS)
//! become Parquet files in the lake. With `EVENTLAKE_HANDLER=compactor` the same
//! binary is the scheduled compactor (its own function and role in Terraform): one
//! zip for both, as they share every dependency.

use std::time::{Duration, Instant};

use eventlake::aws::{self, s3};
use eventlake::catalog::{self, Catalog};
use eventlake::lambda::parquet_writer::{Config, Handler};
use eventlake::lambda::{compactor, metrics};
use eventlake::telemetry;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

/// The time left before the invocation's deadline.
fn remaining_before(deadline_millis: i64) -> impl Fn() -> Duration {
    move || Duration::from_millis((deadline_millis - telemetry::now_millis()).max(0) as u64)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs(std::io::stderr);
    // Set by the Lambda service; absent only when run by hand.
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "parquet-writer".into());
    // Boxed: the two handlers' futures in one would be too deep a type for rustc's
    // layout computation.
    match std::env::var("EVENTLAKE_HANDLER").as_deref() {
        Ok("compactor") => Box::pin(run_compactor(&function_name)).await,
        Ok("writer") | Err(_) => Box::pin(run_writer(&function_name)).await,
        Ok(other) => Err(format!("EVENTLAKE_HANDLER={other:?}: expected writer or compactor").into()),
    }
}

async fn run_writer(function_name: &str) -> Result<(), Error> {
    let config = Config::from_env()?;
    let aws_config = aws::load_config().await;
    let catalog = match &config.glue_database {
        Some(database) => Some(Catalog::new(catalog::glue_client(&aws_config), database, &config.glue_table)),
        None => None,
    };
    let handler = Handler::new(s3::s3_client(&aws_config), config, catalog);
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        let invocation = handler.invoke(event.payload, remaining_before(event.context.deadline as i64)).await;
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

async fn run_compactor(function_name: &str) -> Result<(), Error> {
    let config = compactor::Config::from_env()?;
    let aws_config = aws::load_config().await;
    let store = s3::S3Store::new(s3::s3_client(&aws_config), &config.lake_bucket, &config.lake_prefix);
    let catalog = Catalog::new(catalog::glue_client(&aws_config), &config.glue_database, &config.glue_table);
    let handler = compactor::Handler::new(store, catalog, config);
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let started = Instant::now();
        let remaining = remaining_before(event.context.deadline as i64);
        let holder = format!("the compactor Lambda {function_name}, request {}", event.context.request_id);
        let report = handler.run(&holder, telemetry::now_millis(), remaining).await?;
        let duration = started.elapsed().as_millis() as u64;
        for document in
            metrics::compactor_documents(&report, duration, function_name, telemetry::now_millis())
        {
            println!("{document}");
        }
        Ok::<Value, Error>(serde_json::json!({
            "compacted": report.partitions_compacted,
            "failed": report.partitions_failed_total(),
            "deferred": report.partitions_deferred,
        }))
    }))
    .await
}
