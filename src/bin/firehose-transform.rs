//! The `firehose-transform` Lambda: Firehose's data-transformation hook.

use std::time::{SystemTime, UNIX_EPOCH};

use eventlake::{firehose, metrics};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    eventlake::cli::init_json_logs(std::io::stderr);
    // Set by the Lambda service; absent only when run by hand.
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "firehose-transform".into());
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| handle(event, &function_name))).await
}

async fn handle(event: LambdaEvent<Box<RawValue>>, function_name: &str) -> Result<Box<RawValue>, Error> {
    let transformed = firehose::handle(event.payload.get())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
    for document in metrics::transform_documents(&transformed.stats, function_name, now) {
        println!("{document}");
    }
    Ok(RawValue::from_string(String::from_utf8(transformed.response)?)?)
}
