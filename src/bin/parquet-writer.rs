//! The `parquet-writer` Lambda: staged NDJSON objects (S3 notifications through SQS)
//! become Parquet files in the lake.

use eventlake::catalog::{self, Catalog};
use eventlake::staged::{Config, Handler};
use eventlake::storage;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    eventlake::cli::init_json_logs(std::io::stderr);
    let config = Config::from_env()?;
    let catalog = match &config.glue_database {
        Some(database) => Some(Catalog::new(catalog::glue_client().await, database, &config.glue_table)),
        None => None,
    };
    let handler = Handler::new(storage::s3_client().await, config, catalog);
    let handler = &handler;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
