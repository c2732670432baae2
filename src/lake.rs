//! The lake writer (CONTRACT section 4): records in, Parquet files out, one
//! partition per file, rejected records kept beside the lake with their reasons.
//!
//! Memory is bounded by the row buffers, not by the input: a partition is written
//! as a new part file when its buffer fills, and when all buffers together reach
//! the total limit the largest is spilled to local disk (see [`row_buffer`]), to be
//! written at the end in full-size parts rather than as many small files. Object
//! names depend only on
//! the input (its [`SourceId`]), the partition and the part number, so running the
//! same input again overwrites its own files instead of adding duplicates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::dedupe::Seen;
use crate::event::Event;
use crate::parquet_file::{self, EncodeError};
use crate::row_buffer::{Buffer, Spill};
use crate::storage::{Storage, StorageError};
use crate::timestamp::CreatedDate;

/// Buffer sizes of a writer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A partition's buffered row bytes that trigger writing it as a part file;
    /// also the size of the parts written from spilled rows.
    pub partition_bytes: usize,
    /// All partitions' buffered row bytes that trigger spilling the largest one.
    pub total_bytes: usize,
    /// Buffered rejected-record bytes that trigger writing them as a part file.
    pub rejected_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { partition_bytes: 64 << 20, total_bytes: 96 << 20, rejected_bytes: 8 << 20 }
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
    #[error("spilling rows to local disk: {0}")]
    Spill(#[from] std::io::Error),
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

/// One partition of the lake.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    pub event_type: String,
    pub created_date: CreatedDate,
}

impl Partition {
    /// The partition's directory under the lake root. The event type's charset
    /// (`A-Z a-z 0-9 _ - .`) is enforced by the event contract, so the value cannot
    /// hold a `/`; the storage layer still refuses any `..` segment.
    pub fn directory(&self) -> String {
        format!("events/event_type={}/created_date={}", self.event_type, self.created_date)
    }

    /// The partition named by the two directory names under `events/`
    /// (`event_type=<t>`, `created_date=<d>`); `None` for anything the writer
    /// would not have written.
    pub fn from_directories(event_type_dir: &str, created_date_dir: &str) -> Option<Self> {
        let event_type = event_type_dir.strip_prefix("event_type=")?;
        let created_date = CreatedDate::parse(created_date_dir.strip_prefix("created_date=")?)?;
        crate::event::is_valid_event_type(event_type)
            .then(|| Partition { event_type: event_type.to_owned(), created_date })
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
    /// Keys of the Parquet files written, in order.
    pub keys: Vec<String>,
    /// Partitions that received at least one file.
    #[serde(skip)]
    pub touched: Vec<Partition>,
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
    /// … else its bytes in base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_base64: Option<String>,
}

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
    payload: Vec<u8>,
    summary: Summary,
}

impl<S: Storage> LakeWriter<S> {
    pub fn new(storage: S, source: SourceId, limits: Limits) -> Self {
        LakeWriter {
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
            payload: Vec::new(),
            summary: Summary::default(),
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Takes one record (one NDJSON line, without its newline): buffers it, counts
    /// it as a duplicate, or keeps it as rejected. Writes files when buffers fill.
    pub async fn push(&mut self, record: &[u8], origin: Origin<'_>) -> Result<(), LakeError> {
        self.summary.records += 1;
        self.summary.bytes_in += record.len() as u64 + 1;
        let event = match Event::parse(record) {
            Ok(event) => event,
            Err(rejection) => {
                let code = rejection.code();
                return self.reject(record, origin, code, rejection.to_string()).await;
            }
        };
        if !self.seen.first_time(event.dedupe_key()) {
            self.summary.duplicates += 1;
            return Ok(());
        }
        self.payload.clear();
        event.write_payload(&mut self.payload);
        let keys = event.partition_keys();
        let partition = Partition { event_type: keys.event_type.to_owned(), created_date: keys.created_date };
        let buffer = self.buffers.entry(partition.clone()).or_default();
        let before = buffer.bytes();
        // The payload was written by the event's own serializer: UTF-8 JSON.
        buffer.push_event(&event, std::str::from_utf8(&self.payload).unwrap_or_default());
        let after = buffer.bytes();
        self.buffered += after - before;
        if after >= self.limits.partition_bytes {
            let buffer = self.take_buffer(&partition);
            self.write_part(&partition, buffer).await?;
        }
        while self.buffered >= self.limits.total_bytes {
            let Some(largest) = self.buffers.iter().max_by_key(|(_, b)| b.bytes()).map(|(p, _)| p.clone())
            else {
                break;
            };
            let buffer = self.take_buffer(&largest);
            let spill = match &mut self.spill {
                Some(spill) => spill,
                None => self.spill.insert(Spill::new()?),
            };
            spill.append(&spill_name(&largest), &buffer)?;
            self.spilled.insert(largest);
        }
        Ok(())
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
        *self.summary.rejected.entry(code).or_default() += 1;
        let text = std::str::from_utf8(record).ok();
        let entry = RejectedEntry {
            source: origin.source,
            line: origin.line,
            code,
            reason,
            record: text,
            record_base64: text.is_none().then(|| base64_simd::STANDARD.encode_to_string(record)),
        };
        // Serializing plain strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.rejected, &entry);
        self.rejected.push(b'\n');
        if self.rejected.len() >= self.limits.rejected_bytes {
            self.flush_rejected().await?;
        }
        Ok(())
    }

    /// Encodes `buffer` as the partition's next part file and stores it.
    async fn write_part(&mut self, partition: &Partition, buffer: Buffer) -> Result<(), LakeError> {
        if buffer.is_empty() {
            return Ok(());
        }
        let mut rows = buffer.rows();
        let bytes = parquet_file::encode(&mut rows)?;
        let part = self.parts.entry(partition.clone()).or_default();
        let key = part_key(partition, &self.source, *part);
        *part += 1;
        self.summary.written += rows.len() as u64;
        self.summary.bytes_out += bytes.len() as u64;
        self.summary.files += 1;
        tracing::debug!(key, rows = rows.len(), bytes = bytes.len(), "writing part");
        self.storage.put(&key, bytes).await?;
        self.summary.keys.push(key);
        if !self.summary.touched.contains(partition) {
            self.summary.touched.push(partition.clone());
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
        Ok(())
    }

    /// Writes everything still buffered and returns what the run did.
    pub async fn finish(mut self) -> Result<Summary, LakeError> {
        // Every partition with rows in memory or on disk, sorted, so a run writes
        // its files in the same order every time.
        let mut pending: BTreeSet<Partition> = self.buffers.keys().cloned().collect();
        pending.extend(self.spilled.iter().cloned());
        for partition in &pending {
            self.finish_partition(partition).await?;
        }
        self.flush_rejected().await?;
        self.summary.partitions = self.summary.touched.len();
        self.summary.spilled_bytes = self.spill.as_ref().map_or(0, Spill::bytes);
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::EventTime;

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

    #[test]
    fn partitions_are_read_back_only_from_names_the_writer_writes() {
        let partition =
            Partition::from_directories("event_type=pay.ment-2", "created_date=2024-03-17").unwrap();
        assert_eq!(partition.directory(), "events/event_type=pay.ment-2/created_date=2024-03-17");
        for (t, d) in [
            ("event_type=", "created_date=2024-03-17"),
            ("event_type=a:b", "created_date=2024-03-17"),
            ("event_type=a b", "created_date=2024-03-17"),
            ("type=a", "created_date=2024-03-17"),
            ("event_type=a", "created_date=2024-3-17"),
            ("event_type=a", "created_date=2024-02-30"),
            ("event_type=a", "created_date=1969-12-31"),
            ("event_type=a", "created_date=+2024-03-17"),
            ("event_type=a", "created_date=2024-03-17x"),
        ] {
            assert_eq!(Partition::from_directories(t, d), None, "{t}/{d}");
        }
    }
}
