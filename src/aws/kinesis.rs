//! Kinesis Data Streams as a [`RecordSink`]: PutRecords, its per-entry errors
//! sorted into those worth putting again and those that are not. Only this module
//! uses the Kinesis SDK (the command line's `eventlake send`).

use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::producer::pack::Record;
use crate::producer::send::{EntryResult, RecordSink, SinkError};

/// One stream, by name or ARN.
pub struct KinesisStream {
    client: aws_sdk_kinesis::Client,
    stream: String,
}

impl KinesisStream {
    /// The stream `stream` (a name, or an ARN) through a client built from `config`.
    pub fn new(config: &crate::aws::SdkConfig, stream: impl Into<String>) -> Self {
        KinesisStream { client: aws_sdk_kinesis::Client::new(config), stream: stream.into() }
    }
}

/// Entry error codes that a later attempt may not get (the rest, the KMS key's
/// state or permissions, will not change by trying again).
const RETRYABLE_ENTRY_CODES: [&str; 3] =
    ["ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"];

impl RecordSink for KinesisStream {
    async fn put(&self, records: &[Record]) -> Result<Vec<EntryResult>, SinkError> {
        let entries = records
            .iter()
            .map(|record| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(record.data.clone()))
                    .partition_key(record.partition_key())
                    .build()
                    .map_err(|error| SinkError::Fatal(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = self.client.put_records().set_records(Some(entries));
        let request = if self.stream.starts_with("arn:") {
            request.stream_arn(&self.stream)
        } else {
            request.stream_name(&self.stream)
        };
        let output = request.send().await.map_err(call_error)?;
        Ok(output
            .records()
            .iter()
            .map(|entry| entry_result(entry.error_code(), entry.error_message()))
            .collect())
    }
}

fn entry_result(code: Option<&str>, message: Option<&str>) -> EntryResult {
    match code {
        None => EntryResult::Put,
        Some(code) if RETRYABLE_ENTRY_CODES.contains(&code) => EntryResult::Retry { code: code.to_owned() },
        Some(code) => EntryResult::Refused { reason: format!("{code}: {}", message.unwrap_or_default()) },
    }
}

/// Throttling and transport failures are worth another call; a missing stream,
/// denied access or an invalid request are not.
fn call_error(error: SdkError<PutRecordsError>) -> SinkError {
    let retryable = match &error {
        SdkError::ServiceError(service) => matches!(
            service.err(),
            PutRecordsError::ProvisionedThroughputExceededException(_)
                | PutRecordsError::KmsThrottlingException(_)
        ),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    };
    let message = format!("PutRecords: {}", DisplayErrorContext(&error));
    if retryable {
        SinkError::Retryable(message)
    } else {
        SinkError::Fatal(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_entries_are_put_again_and_kms_refusals_are_not() {
        assert_eq!(entry_result(None, None), EntryResult::Put);
        assert_eq!(
            entry_result(Some("ProvisionedThroughputExceededException"), Some("Rate exceeded for shard")),
            EntryResult::Retry { code: "ProvisionedThroughputExceededException".into() }
        );
        assert_eq!(
            entry_result(Some("InternalFailure"), None),
            EntryResult::Retry { code: "InternalFailure".into() }
        );
        assert_eq!(
            entry_result(Some("KMSDisabledException"), Some("key is disabled")),
            EntryResult::Refused { reason: "KMSDisabledException: key is disabled".into() }
        );
    }
}
