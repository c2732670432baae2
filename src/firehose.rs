//! The Firehose data-transformation hook (CONTRACT section 3): a request's records
//! become one response record each, in order, with the same `recordId`.
//!
//! Shapes follow `aws_lambda_events::firehose`, with one difference: `data` is read
//! as a plain string, so one record that is not base64 fails alone instead of
//! failing deserialization of the whole request.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::dedupe::Seen;
use crate::event::{Event, Rejection};

/// Firehose rejects a transformation response larger than this (Lambda's 6 MB
/// synchronous response limit).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// A problem with the request as a whole: the invocation fails and Firehose retries it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The payload is not a Firehose transformation request.
    #[error("not a Firehose transformation request: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The response would exceed Firehose's limit; lower the processor's BufferSizeInMBs.
    #[error("response of {bytes} bytes for {records} records exceeds Firehose's limit of {MAX_RESPONSE_BYTES} bytes: lower the processor BufferSizeInMBs")]
    ResponseTooLarge { bytes: usize, records: usize },
}

/// Why one record came back `ProcessingFailed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFailure {
    /// The record's `data` is not standard base64.
    #[error("data is not valid base64: {0}")]
    NotBase64(String),
    /// The decoded record breaks a rule of the event contract.
    #[error(transparent)]
    Rejected(#[from] Rejection),
}

impl RecordFailure {
    /// A short stable name for the kind of problem, for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RecordFailure::NotBase64(_) => "not_base64",
            RecordFailure::Rejected(rejection) => rejection.code(),
        }
    }
}

/// A transformation request, borrowing from its JSON text.
#[derive(Debug, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow)]
    pub records: Vec<RequestRecord<'a>>,
}

/// One request record; fields Firehose sends that the hook does not use are ignored.
#[derive(Debug, Deserialize)]
pub struct RequestRecord<'a> {
    #[serde(rename = "recordId", borrow)]
    pub record_id: Cow<'a, str>,
    #[serde(borrow)]
    pub data: Cow<'a, str>,
}

/// A record's result, as Firehose spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    Dropped,
    ProcessingFailed,
}

/// Counts for one invocation, for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub records: usize,
    pub ok: usize,
    pub dropped: usize,
    /// Failed records by [`RecordFailure::code`].
    pub failed: BTreeMap<&'static str, usize>,
    /// Decoded bytes of all records received.
    pub bytes_in: usize,
    /// Bytes of the enriched lines returned.
    pub bytes_out: usize,
    /// Bytes of the response JSON.
    pub response_bytes: usize,
}

impl Stats {
    /// Count of `ProcessingFailed` records of any kind.
    pub fn failed_total(&self) -> usize {
        self.failed.values().sum()
    }
}

/// A record that came back `ProcessingFailed`, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    pub record_id: String,
    pub failure: RecordFailure,
}

/// The result of one invocation: the response JSON and what happened.
#[derive(Debug)]
pub struct Transformed {
    pub response: Vec<u8>,
    pub stats: Stats,
    pub failures: Vec<FailedRecord>,
}

#[derive(Serialize)]
struct Response<'a> {
    records: Vec<ResponseRecord<'a>>,
}

#[derive(Serialize)]
struct ResponseRecord<'a> {
    #[serde(rename = "recordId")]
    record_id: &'a str,
    result: Outcome,
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    #[serde(rename = "partitionKeys")]
    partition_keys: PartitionKeys<'a>,
}

#[derive(Serialize)]
struct PartitionKeys<'a> {
    event_type: &'a str,
    created_date: &'a str,
}

/// Where one record's output lives in the shared text arena.
enum Slot {
    Ok { data: Range<usize>, event_type: Range<usize>, created_date: Range<usize> },
    Dropped,
    Failed,
}

/// Transforms one request (pure: no clock, no I/O, no logging).
pub fn transform(request: &str) -> Result<Transformed, RequestError> {
    let request: Request = serde_json::from_str(request)?;
    let mut stats = Stats { records: request.records.len(), ..Stats::default() };
    let mut failures = Vec::new();
    let mut seen = Seen::with_capacity(request.records.len());
    // Every output string goes into one arena, so the loop allocates nothing per record.
    let mut arena = String::with_capacity(request.records.iter().map(|r| r.data.len() + 256).sum());
    let mut decoded = Vec::new();
    let mut line = Vec::new();
    let mut slots = Vec::with_capacity(request.records.len());

    for record in &request.records {
        decoded.clear();
        let parsed = BASE64
            .decode_vec(record.data.as_bytes(), &mut decoded)
            .map_err(|e| RecordFailure::NotBase64(e.to_string()))
            .and_then(|()| {
                stats.bytes_in += decoded.len();
                Event::parse(&decoded).map_err(RecordFailure::from)
            });
        let slot = match parsed {
            Err(failure) => {
                *stats.failed.entry(failure.code()).or_default() += 1;
                let record_id = record.record_id.clone().into_owned();
                failures.push(FailedRecord { record_id, failure });
                Slot::Failed
            }
            Ok(event) if !seen.first_time(event.dedupe_key()) => {
                stats.dropped += 1;
                Slot::Dropped
            }
            Ok(event) => {
                stats.ok += 1;
                line.clear();
                event.write_enriched_line(&mut line);
                stats.bytes_out += line.len();
                let keys = event.partition_keys();
                Slot::Ok {
                    data: append(&mut arena, |arena| BASE64.encode_string(&line, arena)),
                    event_type: append(&mut arena, |arena| arena.push_str(keys.event_type)),
                    created_date: append(&mut arena, |arena| {
                        let _ = write!(arena, "{}", keys.created_date);
                    }),
                }
            }
        };
        slots.push(slot);
    }

    let records = request
        .records
        .iter()
        .zip(&slots)
        .map(|(record, slot)| response_record(record, slot, &arena))
        .collect();
    let response = serde_json::to_vec(&Response { records })?;
    if response.len() > MAX_RESPONSE_BYTES {
        return Err(RequestError::ResponseTooLarge { bytes: response.len(), records: stats.records });
    }
    stats.response_bytes = response.len();
    Ok(Transformed { response, stats, failures })
}

fn append(arena: &mut String, write: impl FnOnce(&mut String)) -> Range<usize> {
    let start = arena.len();
    write(arena);
    start..arena.len()
}

fn response_record<'a>(record: &'a RequestRecord<'a>, slot: &Slot, arena: &'a str) -> ResponseRecord<'a> {
    let (result, data, metadata) = match slot {
        Slot::Ok { data, event_type, created_date } => {
            let partition_keys = PartitionKeys {
                event_type: &arena[event_type.clone()],
                created_date: &arena[created_date.clone()],
            };
            (Outcome::Ok, &arena[data.clone()], Some(Metadata { partition_keys }))
        }
        Slot::Dropped => (Outcome::Dropped, record.data.as_ref(), None),
        Slot::Failed => (Outcome::ProcessingFailed, record.data.as_ref(), None),
    };
    ResponseRecord { record_id: &record.record_id, result, data, metadata }
}

/// Runs one invocation as the Lambda and the CLI both do: transform, then log every
/// failed record as structured JSON (record id and reason, never the data).
pub fn handle(request: &str) -> Result<Transformed, RequestError> {
    let transformed = transform(request).inspect_err(|error| {
        tracing::error!(error = %error, "invocation failed");
    })?;
    for failed in &transformed.failures {
        tracing::warn!(
            recordId = %failed.record_id,
            code = failed.failure.code(),
            reason = %failed.failure,
            "record rejected"
        );
    }
    let stats = &transformed.stats;
    tracing::info!(
        records = stats.records,
        ok = stats.ok,
        dropped = stats.dropped,
        failed = stats.failed_total(),
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "batch transformed"
    );
    Ok(transformed)
}
