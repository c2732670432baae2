//! `eventlake tail` (CONTRACT section 5), and the console's consumer: a
//! stream's events written as NDJSON, one event a line (packed records split),
//! each shard's events in the order the shard holds them, parents before their
//! children after a reshard ([`crate::shards`]), following new records until
//! stopped.
//!
//! Exactly once across a stop and a restart: the events of a GetRecords call
//! are written and flushed before the checkpoint names its last record, and a
//! stop (the `stop` callback, SIGINT or SIGTERM in the command line) is taken
//! between calls. After a crash (kill -9) between the flush and the checkpoint,
//! the events of that one call come again.

pub mod checkpoint_file;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use crate::aws::dynamodb::{CheckpointTable, CheckpointTableError};
use crate::aws::kinesis::{KinesisStream, ReadError};
use crate::core::event::Event;
use crate::query::EventFilter;
use crate::shards::{is_read_to_end, Checkpoint, Read, Shard, StreamStart};
use checkpoint_file::{CheckpointFile, CheckpointFileError};

/// The scheme of a checkpoint kept in a DynamoDB table.
pub const DYNAMODB_SCHEME: &str = "dynamodb://";
/// Kinesis serves each shard at most five GetRecords calls a second.
const SHARD_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a tail waits when no shard gave a record.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How often an idle tail lists the shards again (a reshard's closed parents
/// and new children).
const RELIST_INTERVAL: Duration = Duration::from_secs(5);
/// Calls in a row that may fail on throttling or the network before the tail gives up.
const MAX_FAILED_CALLS: u32 = 20;
/// The first wait after a failed call; it doubles with each failure in a row of
/// the same shard.
const RETRY_WAIT: Duration = Duration::from_millis(100);
/// The longest wait after a failed call.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Where a tail starts when its checkpoint holds no position (`--from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The oldest record each shard holds.
    TrimHorizon,
    /// What arrives from now on.
    Latest,
    /// What arrived at or after this instant (Unix milliseconds).
    At(i64),
}

impl From {
    /// The stream's start for a checkpoint made at `now_millis`.
    pub fn resolve(self, now_millis: i64) -> StreamStart {
        match self {
            From::TrimHorizon => StreamStart::TrimHorizon,
            From::Latest => StreamStart::At { millis: now_millis },
            From::At(millis) => StreamStart::At { millis },
        }
    }
}

/// Where the positions are kept.
pub enum CheckpointStore {
    /// Nowhere: a restart starts again at `--from`.
    None,
    File(CheckpointFile),
    Table(CheckpointTable),
}

impl CheckpointStore {
    /// `--checkpoint`: `dynamodb://TABLE`, or a file's path.
    pub fn open(spec: Option<&str>, config: &crate::aws::SdkConfig) -> Result<Self, TailError> {
        match spec {
            None => Ok(CheckpointStore::None),
            Some(spec) => match spec.strip_prefix(DYNAMODB_SCHEME) {
                Some(table) if is_table_name(table) => {
                    Ok(CheckpointStore::Table(CheckpointTable::new(config, table)))
                }
                Some(table) => Err(TailError::TableName(table.to_owned())),
                None => Ok(CheckpointStore::File(CheckpointFile::open(std::path::Path::new(spec))?)),
            },
        }
    }

    async fn load(&mut self, stream: &str) -> Result<Option<Checkpoint>, TailError> {
        match self {
            CheckpointStore::None => Ok(None),
            CheckpointStore::File(file) => Ok(file.load()?),
            CheckpointStore::Table(table) => Ok(table.load(stream).await?),
        }
    }

    async fn save(
        &mut self,
        checkpoint: &Checkpoint,
        changed: &[String],
        forgotten: &[String],
    ) -> Result<(), TailError> {
        match self {
            CheckpointStore::None => Ok(()),
            CheckpointStore::File(file) => Ok(file.save(checkpoint)?),
            CheckpointStore::Table(table) => Ok(table.save(checkpoint, changed, forgotten).await?),
        }
    }
}

/// How long a DynamoDB table name is (the service model's `TableName`;
/// `tests/infra/stack_test.py` checks it against botocore's).
const TABLE_NAME_BYTES: std::ops::RangeInclusive<usize> = 3..=255;

/// DynamoDB's table names: [`TABLE_NAME_BYTES`] of `A-Z a-z 0-9 _ - .`.
fn is_table_name(name: &str) -> bool {
    TABLE_NAME_BYTES.contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// How a tail runs.
pub struct Options<'a> {
    pub from: From,
    /// Keep reading new records until stopped; else stop once every shard is read to its newest record.
    pub follow: bool,
    /// `--type` and `--where`.
    pub filter: Option<&'a EventFilter>,
    /// The clock: `--from latest` and the filter's `ingested_at`.
    pub now_millis: fn() -> i64,
}

/// What a tail reports as it goes (the shell renders it).
#[derive(Debug)]
pub enum Report<'a> {
    /// A piece of a record that is not an event of the contract: not written.
    Rejected { shard: &'a str, sequence_number: &'a str, reason: String },
    /// How far each open shard's reading is behind its newest record.
    Lag(&'a BTreeMap<String, Option<i64>>),
    /// A call failed and is made again.
    Retrying(String),
    /// The checkpoint's start differs from `--from`, which is ignored.
    StartKept(StreamStart),
    /// The positions as they were just recorded.
    Saved(&'a Checkpoint),
    /// `--where` could not be evaluated on an event (left out).
    FilterFailed { shard: &'a str, sequence_number: &'a str, reason: String },
}

/// What a tail did.
#[derive(Debug, Clone)]
pub struct Tailed {
    pub records: u64,
    pub events_written: u64,
    pub events_filtered_out: u64,
    pub rejected: u64,
    pub checkpoint: Checkpoint,
}

/// Why a tail stopped short.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    CheckpointTable(#[from] CheckpointTableError),
    #[error(transparent)]
    CheckpointFile(#[from] CheckpointFileError),
    /// The checkpoint was made for another stream.
    #[error("the checkpoint is of stream {held}, not {asked}: give each stream its own checkpoint")]
    OtherStream { held: String, asked: String },
    /// `dynamodb://` names no valid table.
    #[error("{DYNAMODB_SCHEME}{0}: not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ - .)")]
    TableName(String),
    /// Writing the events failed (the checkpoint was not advanced past them).
    #[error("writing the events")]
    Output(#[from] std::io::Error),
}

/// A shard being read.
struct OpenShard {
    shard: Shard,
    iterator: String,
    /// When it may be called next: Kinesis serves a shard 5 calls a second, and
    /// a failed call waits longer each time.
    next_call: Instant,
    /// Calls in a row that gave nothing and were not behind.
    quiet_reads: u32,
    /// Calls in a row that failed and are worth making again.
    failed_calls: u32,
}

impl OpenShard {
    fn new(shard: Shard, iterator: String) -> Self {
        OpenShard { shard, iterator, next_call: Instant::now(), quiet_reads: 0, failed_calls: 0 }
    }
}

/// Reads `stream` into `out` from the checkpoint in `store` (else from
/// `options.from`) until `stop` says so, or, without `follow`, until every shard
/// is read to its newest record.
pub async fn tail(
    stream: &KinesisStream,
    store: &mut CheckpointStore,
    options: Options<'_>,
    out: &mut dyn Write,
    report: &mut dyn FnMut(Report<'_>),
    stop: &dyn Fn() -> bool,
) -> Result<Tailed, TailError> {
    let start = options.from.resolve((options.now_millis)());
    let mut checkpoint = match store.load(stream.name()).await? {
        Some(held) if held.stream != stream.name() => {
            return Err(TailError::OtherStream { held: held.stream, asked: stream.name().to_owned() })
        }
        Some(held) => {
            if held.start != start && options.from != From::Latest {
                report(Report::StartKept(held.start));
            }
            held
        }
        None => Checkpoint::new(stream.name(), start),
    };
    let mut listed = stream.list_shards().await?;
    let mut listed_at = Instant::now();
    let forgotten = checkpoint.forget_unlisted(&listed);
    store.save(&checkpoint, &[], &forgotten).await?;
    let mut tailed = Tailed {
        records: 0,
        events_written: 0,
        events_filtered_out: 0,
        rejected: 0,
        checkpoint: checkpoint.clone(),
    };
    let mut open: BTreeMap<String, OpenShard> = BTreeMap::new();
    let mut lag: BTreeMap<String, Option<i64>> = BTreeMap::new();
    while !stop() {
        let open_ids: BTreeSet<String> = open.keys().cloned().collect();
        for shard in checkpoint.ready(&listed, &open_ids) {
            let iterator = stream.shard_iterator(&shard.id, &checkpoint.start_of(&shard.id)).await?;
            open.insert(shard.id.clone(), OpenShard::new(shard.clone(), iterator));
        }
        let (mut any_records, mut ended) = (false, false);
        let ids: Vec<String> = open.keys().cloned().collect();
        for id in ids {
            if stop() {
                break;
            }
            let Some(reading) = open.get_mut(&id) else { continue };
            tokio::time::sleep_until(reading.next_call.into()).await;
            reading.next_call = Instant::now() + SHARD_CALL_INTERVAL;
            let read = match stream.get_records(&reading.iterator).await {
                Ok(read) => read,
                Err(ReadError::IteratorExpired) => {
                    reading.iterator = stream.shard_iterator(&id, &checkpoint.start_of(&id)).await?;
                    continue;
                }
                Err(ReadError::Retryable(message)) if reading.failed_calls < MAX_FAILED_CALLS => {
                    // The SDK retried already; this shard waits longer each time.
                    reading.failed_calls += 1;
                    report(Report::Retrying(message));
                    let doubled = RETRY_WAIT.saturating_mul(1 << reading.failed_calls.min(8));
                    reading.next_call = Instant::now() + doubled.min(MAX_RETRY_WAIT);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            reading.failed_calls = 0;
            let written =
                write_events(&id, &read.records, options.filter, (options.now_millis)(), out, report)?;
            tailed.records += read.records.len() as u64;
            tailed.events_written += written.written;
            tailed.events_filtered_out += written.filtered_out;
            tailed.rejected += written.rejected;
            let mut changed = false;
            if let Some(last) = read.records.last() {
                checkpoint.advance(&id, &last.sequence_number);
                changed = true;
                any_records = true;
            }
            let summary = Read {
                records: read.records.len(),
                has_next: read.next_iterator.is_some(),
                millis_behind_latest: read.millis_behind_latest,
            };
            reading.quiet_reads = if summary.is_quiet() { reading.quiet_reads + 1 } else { 0 };
            if is_read_to_end(&reading.shard, &summary, reading.quiet_reads) {
                checkpoint.finish(&id);
                changed = true;
                open.remove(&id);
                lag.remove(&id);
                ended = true;
            } else {
                reading.iterator = read.next_iterator.unwrap_or_default();
                lag.insert(id.clone(), read.millis_behind_latest);
            }
            if changed {
                // This shard's events are out before its position is recorded, and
                // its position is recorded before the next shard is read: a failure
                // later in the pass writes nothing twice.
                out.flush()?;
                store.save(&checkpoint, std::slice::from_ref(&id), &[]).await?;
                report(Report::Saved(&checkpoint));
            }
        }
        report(Report::Lag(&lag));
        let idle = !any_records && open.values().all(|reading| reading.quiet_reads > 0);
        if ended || idle && listed_at.elapsed() >= RELIST_INTERVAL {
            listed = stream.list_shards().await?;
            listed_at = Instant::now();
            for reading in open.values_mut() {
                if let Some(shard) = listed.iter().find(|shard| shard.id == reading.shard.id) {
                    reading.shard = shard.clone();
                }
            }
            continue;
        }
        let open_ids: BTreeSet<String> = open.keys().cloned().collect();
        if idle && !options.follow && checkpoint.ready(&listed, &open_ids).is_empty() {
            let closed_left = open.values().any(|reading| reading.shard.ending_sequence_number.is_some());
            if !closed_left {
                break;
            }
        }
        if idle {
            let waited = Instant::now();
            while waited.elapsed() < IDLE_WAIT && !stop() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    out.flush()?;
    tailed.checkpoint = checkpoint;
    Ok(tailed)
}

/// Counts of one call's events.
struct Written {
    written: u64,
    filtered_out: u64,
    rejected: u64,
}

/// Writes the events of `records` that are events of the contract and pass the
/// filter, in order, into `out` in one write (nothing of a call is written
/// unless all of it is). An event the filter cannot evaluate (a strict CAST of
/// a value that does not fit) is left out and reported, not fatal.
fn write_events(
    shard: &str,
    records: &[crate::aws::kinesis::StreamRecord],
    filter: Option<&EventFilter>,
    now_millis: i64,
    out: &mut dyn Write,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<Written, TailError> {
    let (mut pieces, mut events, mut sources): (Vec<&[u8]>, Vec<Event<'_>>, Vec<&str>) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut rejected = 0;
    for record in records {
        for piece in crate::producer::pack::unpack(&record.data) {
            match Event::parse(piece) {
                Ok(event) => {
                    pieces.push(piece);
                    events.push(event);
                    sources.push(&record.sequence_number);
                }
                Err(rejection) => {
                    rejected += 1;
                    report(Report::Rejected {
                        shard,
                        sequence_number: &record.sequence_number,
                        reason: rejection.to_string(),
                    });
                }
            }
        }
    }
    let keep: Vec<bool> = match filter {
        Some(filter) => filter
            .matches_each(&events, now_millis)
            .into_iter()
            .zip(&sources)
            .map(|(kept, sequence_number)| {
                kept.unwrap_or_else(|reason| {
                    report(Report::FilterFailed { shard, sequence_number, reason });
                    false
                })
            })
            .collect(),
        None => vec![true; events.len()],
    };
    let mut lines = Vec::new();
    let mut written = 0;
    for (piece, keep) in pieces.iter().zip(&keep) {
        if *keep {
            lines.extend_from_slice(piece);
            lines.push(b'\n');
            written += 1;
        }
    }
    out.write_all(&lines)?;
    Ok(Written { written, filtered_out: events.len() as u64 - written, rejected })
}
