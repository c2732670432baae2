//! The `firehose-transform` Lambda: Firehose's data-transformation hook.

use eventlake::core::event::TimeWindow;
use eventlake::lambda::metrics;
use eventlake::{firehose, telemetry};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init_json_logs(std::io::stderr);
    let window = window_from_env()?;
    // Set by the Lambda service; absent only when run by hand.
    let function_name =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "firehose-transform".into());
    run(service_fn(|event: LambdaEvent<Box<RawValue>>| transform_invocation(event, &function_name, window)))
        .await
}

/// `CREATED_AT_MAX_AGE_DAYS` and `CREATED_AT_MAX_FUTURE_DAYS`: whole days, each
/// optional (unset: that side of the window is open).
fn window_from_env() -> Result<TimeWindow, Error> {
    let days = |name: &str| -> Result<Option<u32>, Error> {
        match std::env::var(name).ok().filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => match text.parse::<u32>() {
                Ok(days) if days > 0 => Ok(Some(days)),
                _ => Err(format!("{name} must be a whole number of days above 0, got {text:?}").into()),
            },
        }
    };
    Ok(TimeWindow {
        now_millis: 0,
        max_age_days: days("CREATED_AT_MAX_AGE_DAYS")?,
        max_future_days: days("CREATED_AT_MAX_FUTURE_DAYS")?,
    })
}

async fn transform_invocation(
    event: LambdaEvent<Box<RawValue>>,
    function_name: &str,
    window: TimeWindow,
) -> Result<Box<RawValue>, Error> {
    let now = telemetry::now_millis();
    let settings =
        firehose::Settings { window: TimeWindow { now_millis: now, ..window }, ..Default::default() };
    // The invocation error Firehose records shows the whole cause chain.
    let transformed = firehose::transform_and_log(event.payload.get(), &settings)
        .map_err(|error| Error::from(telemetry::error_chain(&error)))?;
    for document in metrics::transform_documents(&transformed.stats, function_name, now) {
        println!("{document}");
    }
    Ok(RawValue::from_string(String::from_utf8(transformed.response)?)?)
}
