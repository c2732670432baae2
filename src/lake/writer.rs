//! The lake writer (CONTRACT section 4): records in, Parquet files out, one
//! partition per file, rejected records kept beside the lake with their reasons.
//!
//! Memory is bounded by the row buffers and the dedupe set, not by the input: a
//! partition is written as a new part file when its buffer fills, and when the
//! buffers and the dedupe set together reach the total limit the largest buffer is
//! spilled to local disk (see [`crate::lake::rows`]), to be written at the end in
//! full-size parts rather than as many small files. The dedupe set starts again
//! when its next growth would take it past half the limit, not after (its table
//! doubles when it grows; duplicates further apart are then written
//! twice, as duplicates in different runs are; [`Summary::dedupe_resets`]).
//! Parts are encoded on other threads ([`Limits::workers`]), holding at most
//! the same limit of rows again between them.
//!
//! Object names depend only on the input (its [`SourceId`]), the partition and the
//! part number, so running the same input again overwrites its own files instead
//! of adding duplicates; at the end of a run, files an earlier run of the same
//! input wrote and this one did not (other limits, other part counts) are deleted
//! from the partitions this run wrote to and from `_rejected/`
//! ([`Limits::delete_stale_files`]).
//!
//! A local lake keeps one spelling per event type, ignoring case: `Payment` and
//! `payment` would share one folder on a case-insensitive file system (macOS,
//! Windows), so a record whose type differs only in case from one already in the
//! lake or the run is rejected ([`CASE_CONFLICT`]) and kept in `_rejected/`. An S3
//! lake has no such rule: its keys are case-sensitive.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::dedupe::Seen;
use crate::core::event::{DedupeKey, Event, TimeWindow, MAX_RECORD_BYTES};
use crate::core::partition::Partition;
use crate::core::rejection::Rejection;
use crate::lake::encoder::{self, EncodeError, Row};
use crate::lake::rows::TextRow;
use crate::lake::rows::{Buffer, Spill};
use crate::lake::storage::{unless_panicked, Storage, StorageError};
use crate::views::stats::{PartitionStats, WrittenCounts};

/// Buffer sizes and record rules of a writer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A partition's buffered row bytes that trigger writing it as a part file;
    /// also the size of the parts written from spilled rows.
    pub partition_bytes: usize,
    /// All partitions' buffered row bytes that trigger spilling the largest one.
    pub total_bytes: usize,
    /// Buffered rejected-record bytes that trigger writing them as a part file.
    pub rejected_bytes: usize,
    /// The longest record taken: the contract's 1,000 KiB for input events, more
    /// for staged (enriched) ones.
    pub max_record_bytes: usize,
    /// The accepted range of `created_at` (open by default).
    pub window: TimeWindow,
    /// Delete, at the end of a run, the files an earlier run of the same input
    /// wrote and this one did not (an earlier run with other limits). Off for the
    /// Lambda, whose limits are fixed: a retry writes the same names, and the
    /// writer needs no list or delete permission.
    pub delete_stale_files: bool,
    /// Threads that check records or encode files at once (the writer itself
    /// runs on the caller's): the output is the same for any number.
    pub workers: usize,
    /// Count the payload fields of the rows written, per partition, for the
    /// typed views ([`Summary::counted`]).
    pub count_fields: bool,
}

impl Limits {
    /// One worker per core.
    pub fn all_cores() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            partition_bytes: 64 << 20,
            total_bytes: 96 << 20,
            rejected_bytes: 8 << 20,
            max_record_bytes: MAX_RECORD_BYTES,
            window: TimeWindow::default(),
            delete_stale_files: true,
            workers: Limits::all_cores(),
            count_fields: false,
        }
    }
}

/// A failure that stops the run: nothing about one record is ever one of these.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The local spill directory could not be written or read.
    #[error("spilling rows to local disk")]
    Spill(#[from] std::io::Error),
    /// The record of an input's first ingestion ([`first_ingestion`]) is damaged:
    /// its time would be a guess, so the run stops (delete it to ingest anew).
    #[error("{key} is not an ingestion record (delete it to take this run's time): {source}")]
    IngestionRecord { key: String, source: serde_json::Error },
    /// A worker was cancelled: the runtime is shutting down.
    #[error("a worker thread was cancelled")]
    Cancelled(#[source] tokio::task::JoinError),
}

/// The result of a task on the blocking pool ([`unless_panicked`]), its
/// cancellation a [`LakeError`].
pub fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, LakeError> {
    unless_panicked(result).map_err(LakeError::Cancelled)
}

/// Names the input a run reads, so its outputs get stable names: a digest of the
/// input's content, or of a source object's bucket, key and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceId(String);

impl SourceId {
    /// From bytes that identify the input (the digest is taken here).
    pub fn from_identity(identity: &[u8]) -> Self {
        SourceId(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(identity)))
    }

    /// From a digest already computed over the input's content.
    pub fn from_digest(digest: u128) -> Self {
        SourceId(format!("{digest:032x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Key of part `part` of `partition` written for `source`.
pub fn part_key(partition: &Partition, source: &SourceId, part: u32) -> String {
    format!("{}/{}-{part:05}.parquet", partition.directory(), source.as_str())
}

/// The spill file name of a partition (its values are file-name safe).
fn spill_name(partition: &Partition) -> String {
    format!("{}.{}", partition.event_type, partition.created_date)
}

/// Key of part `part` of the rejected records of `source`.
pub fn rejected_key(source: &SourceId, part: u32) -> String {
    format!("_rejected/{}-{part:05}.ndjson", source.as_str())
}

/// Key of the `number`th record of `source` too large to keep in a rejection
/// entry: stored as it came, byte for byte, and named by its entry.
pub fn large_record_key(source: &SourceId, number: u32) -> String {
    format!("_rejected/{}-large-{number:05}.record", source.as_str())
}

/// Where a lake records when each input was first ingested:
/// `_sources/<source>.json` (outside `events/`, where readers read).
pub const SOURCES_DIR: &str = "_sources";

/// What [`SOURCES_DIR`] holds for one input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct FirstIngestion {
    ingested_at_millis: i64,
}

/// The `ingested_at` of the rows of `source` (CONTRACT section 4): the time its
/// first run recorded, so that a re-run of the same input is the same ingestion
/// and the rule "the earliest `ingested_at` is kept" keeps the copy that really
/// came first; or `now_millis`, recorded for the runs after. It is recorded before
/// any file is written, so a run stopped midway and run again keeps it too. A
/// record that cannot be read is an error, never a new time.
pub async fn first_ingestion<S: Storage>(
    storage: &S,
    source: &SourceId,
    now_millis: i64,
) -> Result<i64, LakeError> {
    let name = format!("{}.json", source.as_str());
    let key = format!("{SOURCES_DIR}/{name}");
    if storage.list(SOURCES_DIR, &name).await?.contains(&name) {
        let bytes = storage.get(&key).await?;
        let recorded: FirstIngestion = serde_json::from_slice(&bytes)
            .map_err(|source| LakeError::IngestionRecord { key: storage.describe(&key), source })?;
        return Ok(recorded.ingested_at_millis);
    }
    let record = serde_json::to_vec(&FirstIngestion { ingested_at_millis: now_millis }).unwrap_or_default();
    storage.put(&key, record).await?;
    Ok(now_millis)
}

/// Why a record of `event_type` is refused when the lake spells it `spelling`.
fn case_conflict_reason(event_type: &str, spelling: &str) -> String {
    format!(
        "event_type {event_type:?} differs only in case from {spelling:?}, already in this lake: on a \
         case-insensitive file system both would share one folder, so a local lake keeps one spelling; fix \
         the producer's event_name, or ingest into an S3 lake"
    )
}

/// The rejection code of an event type that differs from another only in case.
pub const CASE_CONFLICT: &str = "event_type_case_conflict";

/// Where a record came from, for its rejection entry.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub line: u64,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub records: u64,
    pub written: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    pub partitions: usize,
    pub files: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Row bytes that went through the spill directory.
    pub spilled_bytes: u64,
    /// How often the dedupe set filled its share of the memory budget and started
    /// again.
    pub dedupe_resets: u64,
    /// Files of an earlier run of the same input that this run replaced.
    pub stale_files_deleted: u64,
    /// Keys of the Parquet files written, in order.
    pub keys: Vec<String>,
    /// Partitions that received at least one file.
    #[serde(skip)]
    pub touched: Vec<Partition>,
    /// With [`Limits::count_fields`]: per partition, the files written and the
    /// counts of their rows' payload fields.
    #[serde(skip)]
    pub counted: BTreeMap<Partition, WrittenCounts>,
    /// The run's source id, the stem of its files' names.
    #[serde(skip)]
    pub source: String,
}

impl Summary {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The rejection entry written to `_rejected/`: the original record, to fix and
/// replay, with where it came from and why it was refused.
#[derive(Serialize)]
struct RejectedEntry<'a> {
    source: &'a str,
    line: u64,
    code: &'static str,
    reason: String,
    /// The record as text when it is UTF-8 …
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a str>,
    /// … else its bytes in base64 …
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
    /// … or, for a record too large to repeat here, the key it is stored at.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_key: Option<String>,
}

/// What the case rule knows of a lake's event types.
enum Spellings {
    NotLoaded,
    /// An S3 lake: no rule.
    CaseSensitive,
    /// Lowercased event type → its one spelling.
    OnePerType(HashMap<String, String>),
}

/// A valid event as the writer takes it, from [`check_record`]: its text (name,
/// payload) in the caller's buffer, so records can be checked on other threads in
/// batches and handed over without an allocation each.
#[derive(Debug, Clone)]
pub struct CheckedEvent {
    row: TextRow,
    type_len: usize,
}

/// Checks one record against the contract and `limits` (its length, the JSON,
/// the contract fields, the time window) and writes the text the lake keeps of
/// it (its name, its payload) at the end of `text`. Needs no writer: it runs on
/// any thread, and [`LakeWriter::accept`] takes the result.
pub fn check_record(record: &[u8], limits: &Limits, text: &mut Vec<u8>) -> Result<CheckedEvent, Rejection> {
    let event = Event::parse_limited(record, limits.max_record_bytes)?;
    limits.window.check(event.time())?;
    let start = text.len();
    text.extend_from_slice(event.name().as_bytes());
    let name = start..text.len();
    let subtype = event.event_subtype_range().map(|range| name.start + range.start..name.start + range.end);
    let start = text.len();
    event.write_payload(text);
    let row = TextRow { uuid: event.uuid(), time: event.time(), name, subtype, payload: start..text.len() };
    Ok(CheckedEvent { row, type_len: event.event_type().len() })
}

/// The text [`check_record`] wrote, as a string, checked once here rather than
/// at each use. It is UTF-8 by construction (copied strings and serialized JSON),
/// and the checked events' ranges point into it byte for byte: text that is not
/// would be a bug in `check_record`, stopped here rather than written as rows with
/// shifted fields.
pub fn checked_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("check_record writes UTF-8 only")
}

impl CheckedEvent {
    fn dedupe_key(&self) -> DedupeKey {
        DedupeKey::new(self.row.uuid, self.row.time)
    }

    fn event_type<'t>(&self, text: &'t str) -> &'t str {
        &text[self.row.name.start..self.row.name.start + self.type_len]
    }

    fn partition<'t>(&self, text: &'t str) -> Partition<&'t str> {
        Partition::of(self.event_type(text), self.row.time)
    }

    fn row<'t>(&self, text: &'t str) -> Row<'t> {
        self.row.row(text)
    }
}

/// Parts being encoded on the blocking pool, oldest first.
struct Encoding {
    parts: VecDeque<EncodingPart>,
    /// One permit per worker thread, shared by checking and encoding.
    permits: Arc<Semaphore>,
}

impl Encoding {
    fn new(workers: usize) -> Self {
        Encoding { parts: VecDeque::new(), permits: Arc::new(Semaphore::new(workers)) }
    }

    /// Buffer bytes of the rows being encoded.
    fn bytes(&self) -> usize {
        self.parts.iter().map(|part| part.bytes).sum()
    }
}

struct EncodingPart {
    partition: Partition,
    key: String,
    rows: usize,
    bytes: usize,
    task: tokio::task::JoinHandle<Result<EncodedPart, EncodeError>>,
}

/// A part's Parquet bytes and, with [`Limits::count_fields`], its rows' counts.
type EncodedPart = (Vec<u8>, Option<PartitionStats>);

/// Writes one run's records into the lake.
pub struct LakeWriter<S> {
    storage: S,
    source: SourceId,
    limits: Limits,
    seen: Seen,
    buffers: HashMap<Partition, Buffer>,
    buffered: usize,
    parts: HashMap<Partition, u32>,
    spill: Option<Spill>,
    spilled: BTreeSet<Partition>,
    rejected: Vec<u8>,
    rejected_parts: u32,
    large_records: u32,
    /// The one spelling of each event type, for a local lake; loaded on first use.
    spellings: Spellings,
    /// Every key this run wrote, to tell an earlier run's files from its own.
    written: BTreeSet<String>,
    /// [`Self::push`]'s checked text, kept for its capacity.
    checked_text: String,
    encoding: Encoding,
    /// Every row's `ingested_at` (CONTRACT section 4), Unix milliseconds.
    ingested_at_millis: i64,
    summary: Summary,
}

impl<S: Storage> LakeWriter<S> {
    /// A writer of the records of `source`. Their `ingested_at` is the window's
    /// processing time (the run's start) unless [`Self::ingested_at`] says otherwise.
    pub fn new(storage: S, source: SourceId, mut limits: Limits) -> Self {
        limits.workers = limits.workers.max(1);
        LakeWriter {
            ingested_at_millis: limits.window.now_millis,
            storage,
            source,
            limits,
            seen: Seen::default(),
            buffers: HashMap::new(),
            buffered: 0,
            parts: HashMap::new(),
            spill: None,
            spilled: BTreeSet::new(),
            rejected: Vec::new(),
            rejected_parts: 0,
            large_records: 0,
            spellings: Spellings::NotLoaded,
            written: BTreeSet::new(),
            checked_text: String::new(),
            encoding: Encoding::new(limits.workers),
            summary: Summary::default(),
        }
    }

    /// Sets every row's `ingested_at`: on AWS, when Firehose delivered the staged
    /// object (its last-modified time), so that a retry writes the same rows.
    pub fn ingested_at(mut self, millis: i64) -> Self {
        self.ingested_at_millis = millis;
        self
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A permit to run one task on the blocking pool, held while it runs: at most
    /// [`Limits::workers`] records are checked or parts encoded at a time.
    pub async fn worker_permit(&self) -> OwnedSemaphorePermit {
        match self.encoding.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the writer's semaphore is never closed"),
        }
    }

    /// Takes one record (one NDJSON line, without its newline): buffers it, counts
    /// it as a duplicate, or keeps it as rejected. Writes files when buffers fill.
    pub async fn push(&mut self, record: &[u8], origin: Origin<'_>) -> Result<(), LakeError> {
        let mut bytes = std::mem::take(&mut self.checked_text).into_bytes();
        bytes.clear();
        let checked = check_record(record, &self.limits, &mut bytes);
        let text = checked_text(bytes);
        let result = self.accept(record, checked, &text, origin).await;
        self.checked_text = text;
        result
    }

    /// Takes one record already checked by [`check_record`] (on any thread, with
    /// the same limits), its checked text ([`checked_text`]) in `text`: what [`Self::push`] does
    /// after the check. Records must come in input order.
    pub async fn accept(
        &mut self,
        record: &[u8],
        checked: Result<CheckedEvent, Rejection>,
        text: &str,
        origin: Origin<'_>,
    ) -> Result<(), LakeError> {
        self.summary.records += 1;
        self.summary.bytes_in += record.len() as u64 + 1;
        let event = match checked {
            Ok(event) => event,
            Err(rejection) => {
                let code = rejection.code();
                return self.reject(record, origin, code, rejection.to_string()).await;
            }
        };
        if self.seen.bytes_after_next_key() > self.limits.total_bytes / 2 {
            // No file may span a restart: a key forgotten here could otherwise
            // reach one file twice (the contract allows that only across files).
            self.write_pending().await?;
            self.seen = Seen::default();
            self.summary.dedupe_resets += 1;
        }
        if !self.seen.first_time(event.dedupe_key()) {
            self.summary.duplicates += 1;
            return Ok(());
        }
        let row = event.row(text);
        // After dedupe: a copy of an event is a duplicate, whatever its type's case.
        if let Some(reason) = self.case_conflict(event.event_type(text))? {
            self.seen.forget(event.dedupe_key());
            return self.reject(record, origin, CASE_CONFLICT, reason).await;
        }
        let partition = event.partition(text).to_owned();
        let buffer = self.buffers.entry(partition.clone()).or_default();
        let before = buffer.bytes();
        buffer.push_row(&row);
        let after = buffer.bytes();
        self.buffered += after - before;
        if after >= self.limits.partition_bytes {
            let buffer = self.take_buffer(&partition);
            self.write_part(&partition, buffer).await?;
        }
        while self.buffered + self.seen.bytes() >= self.limits.total_bytes {
            // The largest buffer; of equal ones the first partition in order, not
            // the first the map happens to list, so a run spills the same rows
            // every time.
            let largest =
                self.buffers.iter().max_by(|(p, a), (q, b)| a.bytes().cmp(&b.bytes()).then(q.cmp(p)));
            let Some(largest) = largest.map(|(partition, _)| partition.clone()) else {
                break;
            };
            let buffer = self.take_buffer(&largest);
            let spill = match &mut self.spill {
                Some(spill) => spill,
                None => self.spill.insert(Spill::new(self.storage.scratch_dir()?)?),
            };
            spill.append(&spill_name(&largest), &buffer)?;
            self.spilled.insert(largest);
        }
        Ok(())
    }

    /// Keeps a record whose bytes were too many to hold (stored at `path`, `len`
    /// bytes) as rejected: the file goes to `_rejected/` as it is, and the
    /// rejection entry names it.
    pub async fn reject_stored(
        &mut self,
        path: &Path,
        len: u64,
        origin: Origin<'_>,
    ) -> Result<(), LakeError> {
        self.summary.records += 1;
        self.summary.bytes_in += len + 1;
        let key = large_record_key(&self.source, self.large_records);
        self.large_records += 1;
        self.storage.put_file(&key, path).await?;
        self.written.insert(key.clone());
        let rejection = Rejection::TooLarge { len, limit: self.limits.max_record_bytes };
        let entry = RejectedEntry {
            source: origin.source,
            line: origin.line,
            code: rejection.code(),
            reason: rejection.to_string(),
            record: None,
            record_base64: None,
            record_key: Some(key),
        };
        self.add_rejection(&entry).await
    }

    /// The reason to refuse `event_type` when it differs only in case from the
    /// spelling a local lake already holds; `None` when it is fine.
    fn case_conflict(&mut self, event_type: &str) -> Result<Option<String>, LakeError> {
        if let Spellings::NotLoaded = self.spellings {
            self.spellings = match self.storage.event_type_spellings()? {
                None => Spellings::CaseSensitive,
                Some(mut types) => {
                    // A lake that already holds two spellings keeps the first in
                    // sort order, whatever order the directory lists them in.
                    types.sort();
                    types.reverse();
                    Spellings::OnePerType(
                        types.into_iter().map(|spelling| (spelling.to_ascii_lowercase(), spelling)).collect(),
                    )
                }
            };
        }
        let Spellings::OnePerType(spellings) = &mut self.spellings else {
            return Ok(None);
        };
        // Called for every record: most types are lowercase already, and are
        // looked up without an allocation.
        let folded: std::borrow::Cow<str> = if event_type.bytes().any(|b| b.is_ascii_uppercase()) {
            event_type.to_ascii_lowercase().into()
        } else {
            event_type.into()
        };
        match spellings.get(folded.as_ref()) {
            Some(spelling) if spelling == event_type => Ok(None),
            Some(spelling) => Ok(Some(case_conflict_reason(event_type, spelling))),
            None => {
                // New to this run: claimed in the lake, where another run may have
                // taken another spelling since this one listed the types.
                let kept = self.storage.claim_event_type(event_type)?;
                let reason = kept.as_deref().map(|spelling| case_conflict_reason(event_type, spelling));
                spellings.insert(folded.into_owned(), kept.unwrap_or_else(|| event_type.to_owned()));
                Ok(reason)
            }
        }
    }

    fn take_buffer(&mut self, partition: &Partition) -> Buffer {
        let buffer = self.buffers.remove(partition).unwrap_or_default();
        self.buffered -= buffer.bytes();
        buffer
    }

    async fn reject(
        &mut self,
        record: &[u8],
        origin: Origin<'_>,
        code: &'static str,
        reason: String,
    ) -> Result<(), LakeError> {
        let text = std::str::from_utf8(record).ok();
        let entry = RejectedEntry {
            source: origin.source,
            line: origin.line,
            code,
            reason,
            record: text,
            record_base64: text.is_none().then(|| base64_simd::STANDARD.encode_to_string(record)),
            record_key: None,
        };
        self.add_rejection(&entry).await
    }

    async fn add_rejection(&mut self, entry: &RejectedEntry<'_>) -> Result<(), LakeError> {
        *self.summary.rejected.entry(entry.code).or_default() += 1;
        // Serializing plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.rejected, entry);
        self.rejected.push(b'\n');
        if self.rejected.len() >= self.limits.rejected_bytes {
            self.flush_rejected().await?;
        }
        Ok(())
    }

    /// Starts encoding `buffer` as the partition's next part file, on the blocking
    /// pool: at most [`Limits::workers`] parts at a time, holding at most
    /// [`Limits::total_bytes`] of rows between them (or one part, if larger). Parts are
    /// stored in the order they were started, so the output does not depend on
    /// which one finishes first; and nothing the writer decides (what to spill,
    /// when to write) depends on how far encoding has got.
    async fn write_part(&mut self, partition: &Partition, buffer: Buffer) -> Result<(), LakeError> {
        if buffer.is_empty() {
            return Ok(());
        }
        let (rows, bytes) = (buffer.len(), buffer.bytes());
        while !self.encoding.parts.is_empty()
            && (self.encoding.parts.len() >= self.limits.workers
                || self.encoding.bytes() + bytes > self.limits.total_bytes)
        {
            self.store_oldest_part().await?;
        }
        let part = self.parts.entry(partition.clone()).or_default();
        let key = part_key(partition, &self.source, *part);
        *part += 1;
        let ingested_at_millis = self.ingested_at_millis;
        let count_fields = self.limits.count_fields;
        let permit = self.worker_permit().await;
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut rows = buffer.rows();
            let encoded = encoder::encode(&mut rows, ingested_at_millis)?;
            Ok((encoded, count_fields.then(|| count_rows(&rows))))
        });
        self.encoding.parts.push_back(EncodingPart { partition: partition.clone(), key, rows, bytes, task });
        Ok(())
    }

    /// Waits for the oldest part being encoded and stores it, with the parts
    /// after it that are encoded already (up to [`Limits::workers`] in all):
    /// their puts run at once (uploads, or files created on the blocking pool),
    /// and the run's record of them follows the order they were started in.
    async fn store_oldest_part(&mut self) -> Result<(), LakeError> {
        // At most `workers` parts are being encoded (`write_part` waits for room).
        let mut ready = Vec::new();
        while let Some(part) = self.encoding.parts.pop_front() {
            if !ready.is_empty() && !part.task.is_finished() {
                self.encoding.parts.push_front(part);
                break;
            }
            let (encoded, counts) = joined(part.task.await)??;
            ready.push((part.partition, part.key, part.rows, encoded.len(), encoded, counts));
        }
        let puts =
            ready.iter_mut().map(|(_, key, _, _, encoded, _)| self.storage.put(key, std::mem::take(encoded)));
        // Every put ends before an error is returned: none lands after the run.
        futures::future::join_all(puts).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        for (partition, key, rows, bytes, _, counts) in ready {
            if let Some(counts) = counts {
                let written = self.summary.counted.entry(partition.clone()).or_default();
                written.files.push(key.rsplit('/').next().unwrap_or(&key).to_owned());
                written.stats.absorb(counts);
            }
            self.summary.written += rows as u64;
            self.summary.bytes_out += bytes as u64;
            self.summary.files += 1;
            tracing::debug!(key, rows, bytes, "writing part");
            self.written.insert(key.clone());
            self.summary.keys.push(key);
            if !self.summary.touched.contains(&partition) {
                self.summary.touched.push(partition);
            }
        }
        Ok(())
    }

    /// Writes a partition's remaining rows, from memory and from its spill file,
    /// in parts of up to the partition limit.
    async fn finish_partition(&mut self, partition: &Partition) -> Result<(), LakeError> {
        let mut chunk = self.take_buffer(partition);
        let mut reader = match &self.spill {
            Some(spill) => spill.reader(&spill_name(partition))?,
            None => None,
        };
        loop {
            let more = match &mut reader {
                Some(reader) => reader.fill(&mut chunk, self.limits.partition_bytes)?,
                None => false,
            };
            if chunk.is_empty() && !more {
                return Ok(());
            }
            self.write_part(partition, std::mem::take(&mut chunk)).await?;
        }
    }

    async fn flush_rejected(&mut self) -> Result<(), LakeError> {
        if self.rejected.is_empty() {
            return Ok(());
        }
        let key = rejected_key(&self.source, self.rejected_parts);
        self.rejected_parts += 1;
        let bytes = std::mem::take(&mut self.rejected);
        self.storage.put(&key, bytes).await?;
        self.written.insert(key);
        Ok(())
    }

    /// Deletes what an earlier run of the same input wrote and this run did not:
    /// its files in the partitions this run wrote to, and its rejected records.
    async fn delete_stale_files(&mut self) -> Result<(), LakeError> {
        let mut directories: Vec<String> = self.summary.touched.iter().map(Partition::directory).collect();
        directories.push("_rejected".to_owned());
        let own = format!("{}-", self.source.as_str());
        for directory in directories {
            for name in self.storage.list(&directory, &own).await? {
                let key = format!("{directory}/{name}");
                if !self.written.contains(&key) {
                    tracing::debug!(key, "deleting a file an earlier run of this input wrote");
                    self.storage.delete(&key).await?;
                    self.summary.stale_files_deleted += 1;
                }
            }
        }
        Ok(())
    }

    /// Writes everything still buffered and returns what the run did.
    pub async fn finish(mut self) -> Result<Summary, LakeError> {
        self.write_pending().await?;
        while !self.encoding.parts.is_empty() {
            self.store_oldest_part().await?;
        }
        self.flush_rejected().await?;
        if self.limits.delete_stale_files {
            self.delete_stale_files().await?;
        }
        self.summary.partitions = self.summary.touched.len();
        self.summary.source = self.source.as_str().to_owned();
        Ok(self.summary)
    }

    /// Writes every partition's rows, from memory and from the spill, and starts
    /// the spill again.
    async fn write_pending(&mut self) -> Result<(), LakeError> {
        // Sorted, so a run writes its files in the same order every time.
        let mut pending: BTreeSet<Partition> = self.buffers.keys().cloned().collect();
        pending.extend(self.spilled.iter().cloned());
        for partition in &pending {
            self.finish_partition(partition).await?;
        }
        if let Some(spill) = self.spill.take() {
            self.summary.spilled_bytes += spill.bytes();
        }
        self.spilled.clear();
        Ok(())
    }
}

/// The payload fields of `rows` counted for the typed views.
fn count_rows(rows: &[encoder::Row<'_>]) -> PartitionStats {
    let mut stats = PartitionStats::default();
    let mut uuid = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    for row in rows {
        let text = row.uuid.hyphenated().encode_lower(&mut uuid);
        stats.observe(row.time.millis(), text, row.payload);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::timestamp::EventTime;

    #[test]
    fn keys_are_deterministic_and_inside_their_partition() {
        let partition = Partition {
            event_type: "payment".into(),
            created_date: EventTime::from_json_number("1710689696").unwrap().created_date(),
        };
        let source = SourceId::from_identity(b"bucket/key@etag");
        assert_eq!(source, SourceId::from_identity(b"bucket/key@etag"));
        assert_ne!(source, SourceId::from_identity(b"bucket/key@other"));
        let key = part_key(&partition, &source, 3);
        assert_eq!(
            key,
            format!("events/event_type=payment/created_date=2024-03-17/{}-00003.parquet", source.as_str())
        );
        assert_eq!(rejected_key(&source, 0), format!("_rejected/{}-00000.ndjson", source.as_str()));
    }
}
