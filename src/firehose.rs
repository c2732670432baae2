//! The Firehose data-transformation hook (CONTRACT section 3): a request's records
//! become one response record each, in order, with the same `recordId`.
//!
//! Shapes follow `aws_lambda_events::firehose`, with one difference: `data` is read
//! as a plain string, so one record that is not base64 fails alone instead of
//! failing deserialization of the whole request.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use base64_simd::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::core::dedupe::Seen;
use crate::core::event::{Event, Rejection, TimeWindow};
use crate::core::json;
use crate::core::partition;

/// Firehose rejects a transformation response larger than this (Lambda's 6 MB
/// synchronous response limit).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// A problem with the request as a whole: the invocation fails and Firehose retries it.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The payload is not a Firehose transformation request.
    #[error("not a Firehose transformation request")]
    Malformed(#[from] serde_json::Error),
    /// Even with every record returned unprocessed, the response would exceed
    /// Firehose's limit (a request Firehose does not send with a validated buffer).
    #[error("response of {bytes}+ bytes for {records} records exceeds Firehose's limit even with every record unprocessed: lower the processor BufferSizeInMBs")]
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
    /// The response reached Firehose's size limit before this record: it is
    /// returned unprocessed, to be replayed from the error prefix.
    #[error("the response reached Firehose's 6 MB limit before this record; it is returned unprocessed: replay it from the error prefix (and lower transform_buffer_mb)")]
    ResponseTooLarge,
}

impl RecordFailure {
    /// A short stable name for the kind of problem, for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RecordFailure::NotBase64(_) => "not_base64",
            RecordFailure::Rejected(rejection) => rejection.code(),
            RecordFailure::ResponseTooLarge => "response_too_large",
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
    /// Distinct partitions of the records returned `Ok`: Firehose fails records
    /// once more than 500 partitions are active.
    pub partitions: usize,
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
    transform_with(request, &Settings::default())
}

/// What one invocation accepts besides the contract's rules.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The response size limit: Firehose's, or another in tests and benchmarks.
    pub max_response_bytes: usize,
    /// The plausibility window for `created_at` (open by default).
    pub window: TimeWindow,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_response_bytes: MAX_RESPONSE_BYTES, window: TimeWindow::default() }
    }
}

/// [`transform`] with a time window and another response size limit.
///
/// A response that fits is built in one pass. One that would not fit is built
/// again with a budget: each record's unprocessed form (`ProcessingFailed` with
/// its original data) is measured first, and a record is returned `Ok` only while
/// the unprocessed forms of all records after it still fit. The records past that
/// point come back `ProcessingFailed` with reason `response_too_large`, so they
/// land in the error prefix to be replayed and the rest of the batch is delivered.
/// Only a request whose records cannot fit even unprocessed fails as a whole.
pub fn transform_with(request: &str, settings: &Settings) -> Result<Transformed, RequestError> {
    let max_response_bytes = settings.max_response_bytes;
    // The response is about 4/3 of the request for typical events.
    let capacity = (request.len() / 3 * 4).min(max_response_bytes.saturating_add(1 << 16));
    let transformer = Transformer::new(capacity, settings, None);
    match run_pass(request, transformer)? {
        Some(transformed) => Ok(transformed),
        None => {
            let reserve = unprocessed_reserve(request)?;
            let needed = reserve.first().copied().unwrap_or(0);
            if needed > max_response_bytes {
                return Err(RequestError::ResponseTooLarge { bytes: needed, records: reserve.len() - 1 });
            }
            let transformer = Transformer::new(max_response_bytes, settings, Some(reserve));
            run_pass(request, transformer)?
                .ok_or(RequestError::ResponseTooLarge { bytes: max_response_bytes, records: 0 })
        }
    }
}

/// Runs one pass of `transformer` over the request: `None` when the response
/// outgrew the limit (only without a budget).
fn run_pass(request: &str, mut transformer: Transformer) -> Result<Option<Transformed>, RequestError> {
    let parsed = for_each_record(request, |record| transformer.record(record));
    if transformer.oversized {
        return Ok(None);
    }
    parsed?;
    Ok(transformer.finish())
}

/// Calls `visit` on every record of the request, in order, until it returns false.
fn for_each_record<'de>(
    request: &'de str,
    visit: impl FnMut(RequestRecord<'de>) -> bool,
) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(request);
    serde::de::DeserializeSeed::deserialize(RequestSeed(RecordsSeed(visit)), &mut deserializer)?;
    deserializer.end()
}

/// Entry `k > 0`: the bytes records `k..` need if they all come back unprocessed,
/// plus the closing `]}`. Entry 0: what the whole response needs that way.
fn unprocessed_reserve(request: &str) -> Result<Vec<usize>, RequestError> {
    let mut sizes = Vec::new();
    let mut scratch = Vec::new();
    let prefix = b"{\"records\":[".len();
    for_each_record(request, |record| {
        scratch.clear();
        write_record_start(&record.record_id, sizes.is_empty(), &mut scratch);
        write_unchanged(Outcome::ProcessingFailed, &record.data, &mut scratch);
        sizes.push(scratch.len());
        true
    })?;
    // reserve[k]: records k.. unprocessed, then the closing `]}`. The budget is
    // checked after record i is written, against reserve[i + 1].
    let mut reserve = vec![0; sizes.len() + 1];
    reserve[sizes.len()] = b"]}".len();
    for index in (0..sizes.len()).rev() {
        reserve[index] = reserve[index + 1] + sizes[index];
    }
    // Entry 0 is only read as the whole response's need.
    reserve[0] += prefix;
    Ok(reserve)
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
    window: TimeWindow,
    /// Digests of the partitions of the records returned `Ok`.
    partitions: HashSet<u64, foldhash::fast::RandomState>,
    /// With a budget: entry `i + 1` is what the records after record `i` need
    /// unprocessed (see [`unprocessed_reserve`]).
    reserve: Option<Vec<usize>>,
    /// Set once a record did not fit the budget: later records are not delivered.
    cut: bool,
    /// Set when the response outgrew the limit without a budget; parsing stops.
    oversized: bool,
    decoded: Vec<u8>,
    line: Vec<u8>,
}

impl Transformer {
    fn new(capacity: usize, settings: &Settings, reserve: Option<Vec<usize>>) -> Self {
        let mut response = Vec::with_capacity(capacity);
        response.extend_from_slice(b"{\"records\":[");
        Transformer {
            stats: Stats::default(),
            failures: Vec::new(),
            seen: Seen::default(),
            response,
            max_response_bytes: settings.max_response_bytes,
            window: settings.window,
            partitions: HashSet::default(),
            reserve,
            cut: false,
            oversized: false,
            decoded: Vec::new(),
            line: Vec::new(),
        }
    }

    /// Appends one record's response; false when the response outgrew the limit.
    fn record(&mut self, record: RequestRecord<'_>) -> bool {
        write_record_start(&record.record_id, self.stats.records == 0, &mut self.response);
        self.stats.records += 1;
        self.transform_data(record);
        if self.reserve.is_none() && self.response.len() > self.max_response_bytes {
            self.oversized = true;
        }
        !self.oversized
    }

    /// Decodes, validates, dedupes and enriches one record, appending its result.
    fn transform_data(&mut self, record: RequestRecord<'_>) {
        let decoded = &mut self.decoded;
        let bytes_in = &mut self.stats.bytes_in;
        let parsed =
            decode_base64(record.data.as_bytes(), decoded).map_err(RecordFailure::NotBase64).and_then(|()| {
                *bytes_in += decoded.len();
                let event = Event::parse(decoded)?;
                self.window.check(event.time())?;
                Ok(event)
            });
        let failure = match parsed {
            Ok(event) if self.seen.first_time(event.dedupe_key()) => {
                let mark = self.response.len();
                if !self.cut {
                    self.line.clear();
                    event.write_enriched_line(&mut self.line);
                    write_ok(&event, &self.line, &mut self.response);
                    let reserve = self.reserve.as_deref();
                    if fits(reserve, self.response.len(), self.stats.records, self.max_response_bytes) {
                        self.partitions.insert(partition_digest(&event));
                        self.stats.ok += 1;
                        self.stats.bytes_out += self.line.len();
                        return;
                    }
                    self.response.truncate(mark);
                    self.cut = true;
                }
                // Not delivered, so a later copy must not be dropped as its duplicate.
                self.seen.forget(event.dedupe_key());
                RecordFailure::ResponseTooLarge
            }
            Ok(_) => {
                self.stats.dropped += 1;
                write_unchanged(Outcome::Dropped, &record.data, &mut self.response);
                return;
            }
            Err(failure) => failure,
        };
        *self.stats.failed.entry(failure.code()).or_default() += 1;
        write_unchanged(Outcome::ProcessingFailed, &record.data, &mut self.response);
        self.failures.push(FailedRecord { record_id: record.record_id.into_owned(), failure });
    }

    fn finish(mut self) -> Option<Transformed> {
        self.response.extend_from_slice(b"]}");
        if self.response.len() > self.max_response_bytes {
            return None;
        }
        self.stats.response_bytes = self.response.len();
        self.stats.partitions = self.partitions.len();
        Some(Transformed { response: self.response, stats: self.stats, failures: self.failures })
    }
}

/// Whether a response of `response_len` bytes, with record `record` (0-based)
/// just written, leaves room for the later records to come back unprocessed
/// (`reserve`: see [`unprocessed_reserve`]); always true without a budget.
fn fits(reserve: Option<&[usize]>, response_len: usize, record: usize, max_response_bytes: usize) -> bool {
    reserve.is_none_or(|reserve| response_len + reserve[record] <= max_response_bytes)
}

/// Tells partitions apart for counting (a collision only undercounts a metric).
fn partition_digest(event: &Event<'_>) -> u64 {
    let keys = event.partition();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(keys.event_type.as_bytes());
    hasher.update(&[0]);
    hasher.update(keys.created_date.to_string().as_bytes());
    hasher.digest()
}

/// Appends the start of a response record: the separator and the record id.
fn write_record_start(record_id: &str, first: bool, response: &mut Vec<u8>) {
    if !first {
        response.push(b',');
    }
    response.extend_from_slice(b"{\"recordId\":");
    json::write_string(record_id, response);
}

/// Appends the rest of an `Ok` record: the enriched line and its partition keys.
fn write_ok(event: &Event<'_>, line: &[u8], response: &mut Vec<u8>) {
    response.extend_from_slice(b",\"result\":\"Ok\",\"data\":\"");
    encode_base64(line, response);
    // The keys and the event type's charset (A-Z a-z 0-9 _ - .) need no escaping.
    let [event_type_key, created_date_key] = partition::KEYS;
    let keys = event.partition();
    response.extend_from_slice(b"\",\"metadata\":{\"partitionKeys\":{\"");
    response.extend_from_slice(event_type_key.as_bytes());
    response.extend_from_slice(b"\":\"");
    response.extend_from_slice(keys.event_type.as_bytes());
    response.extend_from_slice(b"\",\"");
    response.extend_from_slice(created_date_key.as_bytes());
    response.extend_from_slice(b"\":\"");
    keys.created_date.write(response);
    response.extend_from_slice(b"\"}}}");
}

/// Parses the request object, handing every record of `records` to the visitor.
struct RequestSeed<F>(RecordsSeed<F>);

impl<'de, F: FnMut(RequestRecord<'de>) -> bool> serde::de::DeserializeSeed<'de> for RequestSeed<F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(RequestRecord<'de>) -> bool> serde::de::Visitor<'de> for RequestSeed<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Firehose transformation request object with a records array")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let mut records = Some(self.0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match records.take_if(|_| key == "records") {
                Some(seed) => map.next_value_seed(seed)?,
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match records {
            None => Ok(()),
            Some(_) => Err(serde::de::Error::missing_field("records")),
        }
    }
}

struct RecordsSeed<F>(F);

impl<'de, F: FnMut(RequestRecord<'de>) -> bool> serde::de::DeserializeSeed<'de> for RecordsSeed<F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(RequestRecord<'de>) -> bool> serde::de::Visitor<'de> for RecordsSeed<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(mut self, mut seq: S) -> Result<(), S::Error> {
        while let Some(record) = seq.next_element::<RequestRecord<'de>>()? {
            if !(self.0)(record) {
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
pub fn transform_and_log(request: &str, settings: &Settings) -> Result<Transformed, RequestError> {
    let transformed = transform_with(request, settings).inspect_err(|error| {
        tracing::error!(error = %crate::telemetry::error_chain(error), "invocation failed");
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
        partitions = stats.partitions,
        "batch transformed"
    );
    Ok(transformed)
}
