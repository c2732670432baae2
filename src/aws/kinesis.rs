//! Kinesis Data Streams: as a [`RecordSink`] (PutRecords, its per-entry errors
//! sorted into those worth putting again and those that are not; `eventlake
//! send`), and read shard by shard (ListShards, GetShardIterator, GetRecords;
//! `eventlake tail`). Only this module uses the Kinesis SDK (the command line's).

use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::producer::pack::Record;
use crate::producer::send::{EntryResult, RecordSink, SinkError};
use crate::shards::{Shard, Start};

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

/// Most records one GetRecords call returns (Kinesis's own limit, the service
/// model's `GetRecordsInputLimit`; `tests/infra/stack_test.py` checks it against botocore's).
pub const MAX_RECORDS_PER_READ: i32 = 10_000;

/// A record as a shard holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub sequence_number: String,
    pub data: Vec<u8>,
}

/// What one GetRecords call gave.
#[derive(Debug)]
pub struct ShardRead {
    pub records: Vec<StreamRecord>,
    /// Where the next call reads on; none once a closed shard is read to its end.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: Option<i64>,
}

/// Why reading a shard failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The iterator is older than five minutes: get another from the position.
    #[error("the shard iterator expired")]
    IteratorExpired,
    /// A call that may succeed later (throttled, or the connection failed).
    #[error("{0}")]
    Retryable(String),
    /// A missing stream, denied access, an invalid request.
    #[error("{0}")]
    Fatal(String),
}

impl KinesisStream {
    /// The stream's name or ARN, as given.
    pub fn name(&self) -> &str {
        &self.stream
    }

    /// Every shard the stream lists, closed ones within its retention included,
    /// in the listing's order.
    pub async fn list_shards(&self) -> Result<Vec<Shard>, ReadError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // A call with a token names no stream (Kinesis refuses both).
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None if self.is_arn() => self.client.list_shards().stream_arn(&self.stream),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let output = request.send().await.map_err(|error| read_error("ListShards", error, |_| false))?;
            for shard in output.shards() {
                let range = shard.sequence_number_range();
                shards.push(Shard {
                    id: shard.shard_id().to_owned(),
                    parents: shard
                        .parent_shard_id()
                        .into_iter()
                        .chain(shard.adjacent_parent_shard_id())
                        .map(str::to_owned)
                        .collect(),
                    ending_sequence_number: range
                        .and_then(|range| range.ending_sequence_number())
                        .map(str::to_owned),
                });
            }
            next_token = output.next_token().map(str::to_owned);
            if next_token.is_none() {
                return Ok(shards);
            }
        }
    }

    /// An iterator on `shard` from `start`.
    pub async fn shard_iterator(&self, shard: &str, start: &Start) -> Result<String, ReadError> {
        let request = self.client.get_shard_iterator().shard_id(shard);
        let request =
            if self.is_arn() { request.stream_arn(&self.stream) } else { request.stream_name(&self.stream) };
        let request = match start {
            Start::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Start::AtTimestamp(millis) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*millis)),
            Start::AfterSequenceNumber(sequence_number) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence_number),
        };
        let output =
            request.send().await.map_err(|error| read_error("GetShardIterator", error, |_| false))?;
        output
            .shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| ReadError::Fatal(format!("GetShardIterator gave no iterator for shard {shard}")))
    }

    /// The records after `iterator`, at most [`MAX_RECORDS_PER_READ`].
    pub async fn get_records(&self, iterator: &str) -> Result<ShardRead, ReadError> {
        let request = self.client.get_records().shard_iterator(iterator).limit(MAX_RECORDS_PER_READ);
        let request = if self.is_arn() { request.stream_arn(&self.stream) } else { request };
        let output = request.send().await.map_err(|error| {
            read_error("GetRecords", error, |error: &GetRecordsError| {
                matches!(
                    error,
                    GetRecordsError::ProvisionedThroughputExceededException(_)
                        | GetRecordsError::KmsThrottlingException(_)
                )
            })
        })?;
        let millis_behind_latest = output.millis_behind_latest();
        let next_iterator = output.next_shard_iterator().map(str::to_owned);
        let records = output
            .records
            .into_iter()
            .map(|record| StreamRecord {
                sequence_number: record.sequence_number,
                data: record.data.into_inner(),
            })
            .collect();
        Ok(ShardRead { records, next_iterator, millis_behind_latest })
    }

    fn is_arn(&self) -> bool {
        self.stream.starts_with("arn:")
    }
}

/// A read call's failure: an expired iterator, a throttle or a transport
/// failure worth another call, or what is not.
fn read_error<E, R>(call: &str, error: SdkError<E, R>, throttled: impl Fn(&E) -> bool) -> ReadError
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = format!("{call}: {}", DisplayErrorContext(&error));
    match &error {
        SdkError::ServiceError(service) if service.err().code() == Some("ExpiredIteratorException") => {
            ReadError::IteratorExpired
        }
        SdkError::ServiceError(service) if throttled(service.err()) => ReadError::Retryable(message),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ReadError::Retryable(message)
        }
        _ => ReadError::Fatal(message),
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
