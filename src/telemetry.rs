//! What the binaries share to report: structured logs, error chains, the clock.
//! The Lambdas and the CLI both set up logging here, so they log the same fields.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Structured JSON logs, one object per line, filtered by `RUST_LOG` (default `info`).
pub fn init_json_logs<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}

/// An error and each of its causes, once each: `outer: cause: root cause`. Error
/// types here never repeat their source in their own message, so this is what a
/// log line shows (anyhow's `{:#}` does the same at the CLI's edge).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Now, Unix milliseconds (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_show_each_cause_once() {
        let error = Outer(std::io::Error::other("root"));
        assert_eq!(error_chain(&error), "outer: root");
    }
}
