//! The Firehose data-transformation hook (CONTRACT section 3): a request's records
//! become one response record each, in order, with the same `recordId`.
//!
//! Shapes follow `aws_lambda_events::firehose`, with one difference: `data` is read
//! as a plain string, so one record that is not base64 fails alone instead of
//! failing deserialization of the whole request.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write as _;

use base64_simd::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::dedupe::Seen;
use crate::event::{Event, Rejection};
use crate::json;

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
    #[error("response of {bytes}+ bytes for {records} records exceeds Firehose's limit of {MAX_RESPONSE_BYTES} bytes: lower the processor BufferSizeInMBs")]
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

/// One request record; fields Firehose sends that the hook does not use are ignored.
/// Records are read one at a time from the request (see [`transform`]).
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

/// Transforms one request (pure: no clock, no I/O, no logging).
///
/// The response is written by hand rather than through serde: its shape is fixed
/// and base64 never needs escaping, so each record's enriched line is encoded
/// straight into the response buffer. Tests read it back with
/// `aws_lambda_events`' types to hold the shape.
pub fn transform(request: &str) -> Result<Transformed, RequestError> {
    transform_with_limit(request, MAX_RESPONSE_BYTES)
}

/// [`transform`] with another response size limit (benchmarks of large requests).
pub fn transform_with_limit(request: &str, max_response_bytes: usize) -> Result<Transformed, RequestError> {
    // The response is about 4/3 of the request for typical events.
    let capacity = (request.len() / 3 * 4).min(max_response_bytes.saturating_add(1 << 16));
    let mut transformer = Transformer::new(capacity, max_response_bytes);
    let mut deserializer = serde_json::Deserializer::from_str(request);
    let parsed = serde::de::DeserializeSeed::deserialize(RequestSeed(&mut transformer), &mut deserializer)
        .and_then(|()| deserializer.end());
    if let Some(bytes) = transformer.oversized {
        return Err(RequestError::ResponseTooLarge { bytes, records: transformer.stats.records });
    }
    parsed?;
    transformer.finish()
}

/// The state of one transformation. Records are transformed as the request parser
/// yields them, so each record's data is still in cache when it is decoded and the
/// request is never held as a list.
struct Transformer {
    stats: Stats,
    failures: Vec<FailedRecord>,
    seen: Seen,
    response: Vec<u8>,
    max_response_bytes: usize,
    /// Set when the response outgrew the limit; parsing stops there.
    oversized: Option<usize>,
    decoded: Vec<u8>,
    line: Vec<u8>,
}

impl Transformer {
    fn new(capacity: usize, max_response_bytes: usize) -> Self {
        let mut response = Vec::with_capacity(capacity);
        response.extend_from_slice(b"{\"records\":[");
        Transformer {
            stats: Stats::default(),
            failures: Vec::new(),
            seen: Seen::default(),
            response,
            max_response_bytes,
            oversized: None,
            decoded: Vec::new(),
            line: Vec::new(),
        }
    }

    /// Appends one record's response; false when the response outgrew the limit.
    fn record(&mut self, record: RequestRecord<'_>) -> bool {
        if self.stats.records > 0 {
            self.response.push(b',');
        }
        self.stats.records += 1;
        self.response.extend_from_slice(b"{\"recordId\":");
        json::write_string(&record.record_id, &mut self.response);
        self.transform_data(record);
        self.check_size()
    }

    /// Decodes, validates, dedupes and enriches one record, appending its result.
    fn transform_data(&mut self, record: RequestRecord<'_>) {
        let decoded = &mut self.decoded;
        let bytes_in = &mut self.stats.bytes_in;
        let parsed =
            decode_base64(record.data.as_bytes(), decoded).map_err(RecordFailure::NotBase64).and_then(|()| {
                *bytes_in += decoded.len();
                Event::parse(decoded).map_err(RecordFailure::from)
            });
        match parsed {
            Ok(event) if self.seen.first_time(event.dedupe_key()) => {
                self.stats.ok += 1;
                self.line.clear();
                event.write_enriched_line(&mut self.line);
                self.stats.bytes_out += self.line.len();
                write_ok(&event, &self.line, &mut self.response);
            }
            Ok(_) => {
                self.stats.dropped += 1;
                write_unchanged(Outcome::Dropped, &record.data, &mut self.response);
            }
            Err(failure) => {
                *self.stats.failed.entry(failure.code()).or_default() += 1;
                write_unchanged(Outcome::ProcessingFailed, &record.data, &mut self.response);
                self.failures.push(FailedRecord { record_id: record.record_id.into_owned(), failure });
            }
        }
    }

    fn check_size(&mut self) -> bool {
        if self.response.len() > self.max_response_bytes {
            self.oversized = Some(self.response.len());
        }
        self.oversized.is_none()
    }

    fn finish(mut self) -> Result<Transformed, RequestError> {
        self.response.extend_from_slice(b"]}");
        if !self.check_size() {
            return Err(RequestError::ResponseTooLarge {
                bytes: self.response.len(),
                records: self.stats.records,
            });
        }
        self.stats.response_bytes = self.response.len();
        Ok(Transformed { response: self.response, stats: self.stats, failures: self.failures })
    }
}

/// Appends the rest of an `Ok` record: the enriched line and its partition keys.
fn write_ok(event: &Event<'_>, line: &[u8], response: &mut Vec<u8>) {
    response.extend_from_slice(b",\"result\":\"Ok\",\"data\":\"");
    encode_base64(line, response);
    let keys = event.partition_keys();
    response.extend_from_slice(b"\",\"metadata\":{\"partitionKeys\":{\"event_type\":\"");
    // The event type's charset (A-Z a-z 0-9 _ - .) needs no escaping.
    response.extend_from_slice(keys.event_type.as_bytes());
    response.extend_from_slice(b"\",\"created_date\":\"");
    let _ = write!(response, "{}", keys.created_date);
    response.extend_from_slice(b"\"}}}");
}

/// Parses the request object, handing every record of `records` to the transformer.
struct RequestSeed<'t>(&'t mut Transformer);

impl<'de> serde::de::DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RequestSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Firehose transformation request object with a records array")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let mut has_records = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "records" && !has_records {
                has_records = true;
                map.next_value_seed(RecordsSeed(&mut *self.0))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        if has_records {
            Ok(())
        } else {
            Err(serde::de::Error::missing_field("records"))
        }
    }
}

struct RecordsSeed<'t>(&'t mut Transformer);

impl<'de> serde::de::DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RecordsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(record) = seq.next_element::<RequestRecord<'de>>()? {
            if !self.0.record(record) {
                return Err(serde::de::Error::custom("response too large"));
            }
        }
        Ok(())
    }
}

/// Appends the rest of a record that returns its original data.
fn write_unchanged(outcome: Outcome, data: &str, response: &mut Vec<u8>) {
    let result: &[u8] = match outcome {
        Outcome::Dropped => b",\"result\":\"Dropped\",\"data\":",
        _ => b",\"result\":\"ProcessingFailed\",\"data\":",
    };
    response.extend_from_slice(result);
    json::write_string(data, response);
    // aws_lambda_events requires metadata on every record; Firehose ignores it here.
    response.extend_from_slice(b",\"metadata\":{\"partitionKeys\":{}}}");
}

fn encode_base64(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + BASE64.encoded_length(bytes.len()), 0);
    let written = BASE64.encode(bytes, base64_simd::Out::from_slice(&mut out[start..])).len();
    out.truncate(start + written);
}

/// Decodes standard, padded base64 (what Firehose sends) into `out`, reusing its memory.
fn decode_base64(text: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let length = BASE64.decoded_length(text).map_err(|_| describe_bad_base64(text))?;
    out.resize(length, 0);
    let written =
        BASE64.decode(text, base64_simd::Out::from_slice(out)).map_err(|_| describe_bad_base64(text))?.len();
    out.truncate(written);
    Ok(())
}

/// base64-simd does not say where the input goes wrong; say it, so the producer
/// can find the bad byte.
fn describe_bad_base64(text: &[u8]) -> String {
    let is_alphabet = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    let body = text.iter().position(|b| !is_alphabet(b)).unwrap_or(text.len());
    let padding = text[body..].iter().take_while(|&&b| b == b'=').count();
    match text.get(body + padding) {
        Some(&byte) => format!("unexpected byte {:?} at offset {}", char::from(byte), body + padding),
        None if !text.len().is_multiple_of(4) => {
            format!("length {} is not a multiple of 4 (missing '=' padding?)", text.len())
        }
        None => "the last group's unused bits are not zero".to_owned(),
    }
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
