//! Putting events to a stream: packed into records ([`super::pack`]), records
//! into PutRecords calls of at most 500 entries and 5 MiB, several calls in
//! flight, and the entries a call did not put retried alone with exponential
//! backoff and full jitter. Nothing is dropped: an event that cannot be put is
//! handed back with its reason, and the run's [`Summary`] counts it.
//!
//! The stream is a [`RecordSink`]: Kinesis (`crate::aws::kinesis`) or a test's
//! stand-in, so the retries are tested against injected faults.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::pack::{Packer, Record, Unsendable};

/// Most entries in one PutRecords call (Kinesis's limit).
pub const MAX_ENTRIES_PER_CALL: usize = 500;
/// Most bytes of data and partition keys in one PutRecords call (Kinesis's limit: 5 MiB).
pub const MAX_BYTES_PER_CALL: usize = 5 << 20;

/// What the stream answered for one entry of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Stored.
    Put,
    /// Not stored this time (throttled, an internal error): put it again.
    Retry { code: String },
    /// Not stored, and putting it again will not help (a KMS key that is disabled...).
    Refused { reason: String },
}

/// A call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth another try later (throttling, a timeout, a server error).
    #[error("{0}")]
    Retryable(String),
    /// No call will succeed (the stream does not exist, access is denied): the run stops.
    #[error("{0}")]
    Fatal(String),
}

/// A stream that takes records in batches.
pub trait RecordSink: Send + Sync + 'static {
    /// Puts `records` in one call: one result per record, in order.
    fn put(&self, records: &[Record]) -> impl Future<Output = Result<Vec<EntryResult>, SinkError>> + Send;
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Calls in flight at once (each holds at most [`MAX_BYTES_PER_CALL`]).
    pub concurrency: usize,
    /// Attempts per entry, the first included.
    pub attempts: u32,
    /// The first retry's longest wait; each further retry doubles it, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// A record or a call not yet full goes anyway once its first event waited this long
    /// (slow input, `--rate`).
    pub linger: Duration,
    /// Bytes per record (0: one event per record).
    pub pack_bytes: usize,
    /// Seeds the backoff's jitter.
    pub seed: u64,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            concurrency: 4,
            attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            linger: Duration::from_millis(500),
            pack_bytes: super::pack::DEFAULT_RECORD_BYTES,
            seed: 0,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub events_put: u64,
    pub records_put: u64,
    /// Data bytes of the records put.
    pub bytes_put: u64,
    /// Sizes of the records put, for billing estimates: each record's length.
    pub record_sizes: RecordSizes,
    pub calls: u64,
    /// Entries put again after a failed attempt (one entry retried twice counts twice).
    pub retries: u64,
    /// Events not put, by reason.
    pub failed: BTreeMap<String, u64>,
    /// Why the run stopped early, if it did: every event not yet put was handed back.
    pub stopped: Option<String>,
}

impl Summary {
    /// Events handed back instead of put.
    pub fn failed_events(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// The record sizes of a run, kept as a sum over any per-record billing rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordSizes {
    sizes: Vec<u32>,
}

impl RecordSizes {
    /// The sum of `rule` over the records put.
    pub fn sum(&self, rule: impl Fn(u64) -> u64) -> u64 {
        self.sizes.iter().map(|&size| rule(u64::from(size))).sum()
    }

    fn add(&mut self, size: usize) {
        self.sizes.push(u32::try_from(size).unwrap_or(u32::MAX));
    }
}

/// Why a run that `interrupted` stopped says it stopped.
pub const INTERRUPTED: &str = "interrupted";
/// How often a run looks at `interrupted` while it waits.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// Sends every event received on `events` (one NDJSON line each, without its line
/// end) to `sink`. `hand_back(event, reason)` receives each event not put, and
/// `progress` the summary after each call. Returns once `events` is closed and
/// every call is done; after a fatal error it keeps receiving, handing every
/// further event back, so that nothing read is lost. Once `interrupted()` says
/// so, it starts no call, waits for the calls in flight, closes `events` and
/// hands back every event not put, those waiting in `events` included
/// ([`INTERRUPTED`]).
pub async fn send<S: RecordSink>(
    sink: Arc<S>,
    mut events: mpsc::Receiver<Vec<u8>>,
    options: SendOptions,
    mut hand_back: impl FnMut(&[u8], &str),
    mut progress: impl FnMut(&Summary),
    interrupted: impl Fn() -> bool,
) -> Summary {
    let mut summary = Summary::default();
    let mut packer = Packer::new(options.pack_bytes);
    let mut batch = Batch::default();
    let mut in_flight = JoinSet::new();
    let mut seeds = ChaCha8Rng::seed_from_u64(options.seed);
    let mut input_open = true;
    // When the oldest event of the open record or batch has waited long enough.
    let mut due: Option<Instant> = None;
    let concurrency = options.concurrency.max(1);
    loop {
        if interrupted() {
            summary.stopped = Some(INTERRUPTED.to_owned());
            events.close();
            return stop(summary, in_flight, packer, batch, events, &mut hand_back, &mut progress).await;
        }
        if packer.is_empty() && batch.is_empty() {
            due = None;
        }
        let linger_over = due.is_some_and(|due| Instant::now() >= due);
        // A record or call not full goes only when a call can start now: while
        // every slot is busy, events keep filling the open record.
        let can_send = in_flight.len() < concurrency;
        if (linger_over || !input_open) && !batch.is_full() && can_send {
            if let Some(record) = packer.finish() {
                batch.push(record);
            }
        }
        let ready = batch.is_full() || ((linger_over || !input_open) && !batch.is_empty());
        if ready && can_send {
            let records = batch.take();
            let sink = Arc::clone(&sink);
            let rng = ChaCha8Rng::seed_from_u64(seeds.random());
            in_flight.spawn(async move { put_with_retries(&*sink, records, options, rng).await });
            continue;
        }
        if !input_open && batch.is_empty() && packer.is_empty() && in_flight.is_empty() {
            return summary;
        }
        tokio::select! {
            Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                absorb(joined_outcome(joined), &mut summary, &mut hand_back);
                progress(&summary);
            }
            received = events.recv(), if input_open && !batch.is_full() => match received {
                None => input_open = false,
                Some(event) => match packer.push(&event) {
                    Ok(closed) => {
                        due.get_or_insert_with(|| Instant::now() + options.linger);
                        if let Some(record) = closed {
                            batch.push(record);
                        }
                    }
                    Err(unsendable) => refuse(&event, unsendable, &mut summary, &mut hand_back),
                },
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() && !linger_over => {}
            _ = tokio::time::sleep(INTERRUPT_POLL) => {}
        }
        if summary.stopped.is_some() {
            return stop(summary, in_flight, packer, batch, events, &mut hand_back, &mut progress).await;
        }
    }
}

/// After a fatal error: waits for the calls in flight, then hands back every
/// event not put, those still to come on `events` included.
async fn stop(
    mut summary: Summary,
    mut in_flight: JoinSet<BatchOutcome>,
    mut packer: Packer,
    mut batch: Batch,
    mut events: mpsc::Receiver<Vec<u8>>,
    hand_back: &mut impl FnMut(&[u8], &str),
    progress: &mut impl FnMut(&Summary),
) -> Summary {
    while let Some(joined) = in_flight.join_next().await {
        absorb(joined_outcome(joined), &mut summary, hand_back);
    }
    let reason = format!("not sent: the run stopped ({})", summary.stopped.as_deref().unwrap_or_default());
    let held = batch.take().into_iter().chain(batch.take()).chain(packer.finish());
    for record in held {
        hand_back_record(&record, &reason, &mut summary, hand_back);
    }
    while let Some(event) = events.recv().await {
        hand_back(&event, &reason);
        *summary.failed.entry(reason.clone()).or_default() += 1;
    }
    progress(&summary);
    summary
}

fn joined_outcome(joined: Result<BatchOutcome, tokio::task::JoinError>) -> BatchOutcome {
    joined.unwrap_or_else(|error| BatchOutcome::panicked(error.to_string()))
}

fn refuse(
    event: &[u8],
    unsendable: Unsendable,
    summary: &mut Summary,
    hand_back: &mut impl FnMut(&[u8], &str),
) {
    let reason = unsendable.to_string();
    hand_back(event, &reason);
    let category = match unsendable {
        Unsendable::TooLarge { .. } => "over the contract's limit of 1,000 KiB".to_owned(),
        Unsendable::LineBreak => reason,
    };
    *summary.failed.entry(category).or_default() += 1;
}

fn hand_back_record(
    record: &Record,
    reason: &str,
    summary: &mut Summary,
    hand_back: &mut impl FnMut(&[u8], &str),
) {
    for event in record.events() {
        hand_back(event, reason);
    }
    *summary.failed.entry(reason.to_owned()).or_default() += u64::from(record.events);
}

fn absorb(outcome: BatchOutcome, summary: &mut Summary, hand_back: &mut impl FnMut(&[u8], &str)) {
    summary.calls += outcome.calls;
    summary.retries += outcome.retries;
    for record in &outcome.put {
        summary.events_put += u64::from(record.events);
        summary.records_put += 1;
        summary.bytes_put += record.data.len() as u64;
        summary.record_sizes.add(record.data.len());
    }
    for (record, reason) in &outcome.failed {
        hand_back_record(record, reason, summary, hand_back);
    }
    if summary.stopped.is_none() {
        summary.stopped = outcome.fatal;
    }
}

/// Records gathered for one call.
#[derive(Debug, Default)]
struct Batch {
    records: Vec<Record>,
    bytes: usize,
    /// A record that did not fit: it opens the next batch.
    carried: Option<Record>,
}

impl Batch {
    fn push(&mut self, record: Record) {
        let size = entry_bytes(&record);
        if self.records.len() < MAX_ENTRIES_PER_CALL && self.bytes + size <= MAX_BYTES_PER_CALL {
            self.bytes += size;
            self.records.push(record);
        } else {
            debug_assert!(self.carried.is_none(), "pushed to a full batch");
            self.carried = Some(record);
        }
    }

    fn is_full(&self) -> bool {
        self.carried.is_some() || self.records.len() == MAX_ENTRIES_PER_CALL
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.carried.is_none()
    }

    /// The records of the call to make now; a carried record opens the next batch.
    fn take(&mut self) -> Vec<Record> {
        let records = std::mem::take(&mut self.records);
        self.bytes = 0;
        if let Some(record) = self.carried.take() {
            self.push(record);
        }
        records
    }
}

/// The bytes an entry counts for in a call's 5 MiB: its data and partition key.
fn entry_bytes(record: &Record) -> usize {
    record.data.len() + 16
}

/// What one batch's calls did.
#[derive(Debug, Default)]
struct BatchOutcome {
    put: Vec<Record>,
    failed: Vec<(Record, String)>,
    calls: u64,
    retries: u64,
    fatal: Option<String>,
}

impl BatchOutcome {
    /// A put task that panicked (a bug): its records are lost to this run, so the
    /// run stops and says so rather than report success.
    fn panicked(error: String) -> Self {
        BatchOutcome { fatal: Some(format!("a put task failed: {error}")), ..Default::default() }
    }
}

/// Puts `records`, then again those not put, until all are or `attempts` is spent.
async fn put_with_retries<S: RecordSink>(
    sink: &S,
    records: Vec<Record>,
    options: SendOptions,
    mut rng: ChaCha8Rng,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    // The records still to put, and beside each the last reason it was not.
    let mut pending = records;
    let mut last: Vec<String> = vec![String::new(); pending.len()];
    let mut call_failed = false;
    for attempt in 1..=options.attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1, &options, &mut rng)).await;
            outcome.retries += pending.len() as u64;
        }
        outcome.calls += 1;
        call_failed = false;
        match sink.put(&pending).await {
            Ok(results) if results.len() == pending.len() => {
                let (mut again, mut reasons) = (Vec::new(), Vec::new());
                for (record, result) in pending.into_iter().zip(results) {
                    match result {
                        EntryResult::Put => outcome.put.push(record),
                        EntryResult::Retry { code } => {
                            again.push(record);
                            reasons.push(code);
                        }
                        EntryResult::Refused { reason } => outcome.failed.push((record, reason)),
                    }
                }
                (pending, last) = (again, reasons);
            }
            Ok(results) => {
                let reason = format!("the stream answered {} entries for {}", results.len(), pending.len());
                last.iter_mut().for_each(|last| last.clone_from(&reason));
            }
            Err(SinkError::Retryable(reason)) => {
                call_failed = true;
                last.iter_mut().for_each(|last| last.clone_from(&reason));
            }
            Err(SinkError::Fatal(reason)) => {
                let handed = format!("not sent: {reason}");
                outcome.failed.extend(pending.into_iter().map(|record| (record, handed.clone())));
                outcome.fatal = Some(reason);
                return outcome;
            }
        }
        if pending.is_empty() {
            return outcome;
        }
    }
    let attempts = options.attempts.max(1);
    if call_failed {
        // The stream itself is out of reach (or the credentials are): the next
        // calls would fail the same way, so the run stops.
        outcome.fatal = last.first().map(|last| format!("no answer after {attempts} attempts: {last}"));
    }
    outcome.failed.extend(
        pending
            .into_iter()
            .zip(last)
            .map(|(record, last)| (record, format!("not put after {attempts} attempts, the last: {last}"))),
    );
    outcome
}

/// Full jitter: a uniform wait up to the retry's ceiling, which doubles per retry.
fn backoff(retry: u32, options: &SendOptions, rng: &mut ChaCha8Rng) -> Duration {
    let ceiling =
        options.base_backoff.saturating_mul(1 << retry.saturating_sub(1).min(20)).min(options.max_backoff);
    ceiling.mul_f64(rng.random::<f64>())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A stream in memory that fails as told: entries whose event starts with
    /// "retry" fail (retryably) on their first `retry_times` attempts, those with
    /// "refuse" always, and calls number `failing_calls` fail whole.
    #[derive(Default)]
    struct Faulty {
        stored: Mutex<Vec<Vec<u8>>>,
        attempts: Mutex<BTreeMap<Vec<u8>, u32>>,
        calls: Mutex<u32>,
        retry_times: u32,
        failing_calls: Vec<u32>,
        fatal_from_call: Option<u32>,
    }

    impl RecordSink for Faulty {
        async fn put(&self, records: &[Record]) -> Result<Vec<EntryResult>, SinkError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            assert!(records.len() <= MAX_ENTRIES_PER_CALL);
            assert!(records.iter().map(entry_bytes).sum::<usize>() <= MAX_BYTES_PER_CALL);
            if self.fatal_from_call.is_some_and(|from| call >= from) {
                return Err(SinkError::Fatal("ResourceNotFoundException: no such stream".into()));
            }
            if self.failing_calls.contains(&call) {
                return Err(SinkError::Retryable("connection reset".into()));
            }
            let mut results = Vec::new();
            for record in records {
                let tried = {
                    let mut attempts = self.attempts.lock().unwrap();
                    let tried = attempts.entry(record.data.clone()).or_default();
                    *tried += 1;
                    *tried
                };
                results.push(if record.data.starts_with(b"refuse") {
                    EntryResult::Refused { reason: "KMSDisabledException: key disabled".into() }
                } else if record.data.starts_with(b"retry") && tried <= self.retry_times {
                    EntryResult::Retry { code: "ProvisionedThroughputExceededException".into() }
                } else {
                    self.stored.lock().unwrap().push(record.data.clone());
                    EntryResult::Put
                });
            }
            Ok(results)
        }
    }

    /// Fast retries; a linger far longer than any test, so that records and calls
    /// are cut by size and by the end of the input alone, however slowly the test
    /// machine feeds them (the linger's own tests set theirs).
    fn quick(pack_bytes: usize) -> SendOptions {
        SendOptions {
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            linger: Duration::from_secs(600),
            pack_bytes,
            ..SendOptions::default()
        }
    }

    /// Runs `send` over `events`: the summary, what the sink stored (unpacked) and
    /// what was handed back.
    async fn run(
        sink: Faulty,
        events: Vec<Vec<u8>>,
        options: SendOptions,
    ) -> (Summary, Vec<Vec<u8>>, Vec<(Vec<u8>, String)>) {
        let sink = Arc::new(sink);
        let (sender, receiver) = mpsc::channel(16);
        let feeder = tokio::spawn(async move {
            for event in events {
                sender.send(event).await.unwrap();
            }
        });
        let mut handed = Vec::new();
        let summary = send(
            Arc::clone(&sink),
            receiver,
            options,
            |event, reason| {
                handed.push((event.to_vec(), reason.to_owned()));
            },
            |_| {},
            || false,
        )
        .await;
        feeder.await.unwrap();
        let stored = sink
            .stored
            .lock()
            .unwrap()
            .iter()
            .flat_map(|data| data.split(|&byte| byte == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>())
            .collect();
        (summary, stored, handed)
    }

    fn numbered(count: usize, prefix: &str) -> Vec<Vec<u8>> {
        (0..count).map(|i| format!("{prefix}{{\"n\":{i:05}}}").into_bytes()).collect()
    }

    #[tokio::test]
    async fn every_event_is_put_once_packed_or_not() {
        for pack_bytes in [0, 100, 5_000] {
            let events = numbered(3000, "");
            let (summary, mut stored, handed) =
                run(Faulty::default(), events.clone(), quick(pack_bytes)).await;
            stored.sort();
            assert_eq!(stored, events, "pack {pack_bytes}");
            assert!(handed.is_empty());
            assert_eq!(summary.events_put, 3000);
            assert_eq!(summary.retries, 0);
            assert_eq!(summary.stopped, None);
            let per_record = if pack_bytes == 0 { 1 } else { pack_bytes / 12 };
            assert_eq!(summary.records_put as usize, 3000_usize.div_ceil(per_record), "pack {pack_bytes}");
        }
    }

    #[tokio::test]
    async fn failed_entries_alone_are_put_again_until_they_succeed() {
        let mut events = numbered(1000, "");
        events.extend(numbered(10, "retry"));
        let sink = Faulty { retry_times: 3, failing_calls: vec![2], ..Faulty::default() };
        let (summary, mut stored, handed) = run(sink, events.clone(), quick(0)).await;
        stored.sort();
        events.sort();
        assert_eq!(stored, events, "each event stored exactly once");
        assert!(handed.is_empty());
        // The 10 "retry" entries fail three times each; the second call fails whole.
        let second_call_entries = summary.retries - 30;
        assert!(second_call_entries > 0 && second_call_entries <= MAX_ENTRIES_PER_CALL as u64, "{summary:?}");
    }

    #[tokio::test]
    async fn what_cannot_be_put_is_handed_back_with_its_reason() {
        let mut events = numbered(100, "");
        events.extend(numbered(3, "refuse"));
        events.extend(numbered(2, "retry"));
        events.push(vec![b'x'; 1_024_001]);
        let sink = Faulty { retry_times: u32::MAX, ..Faulty::default() };
        let options = SendOptions { attempts: 4, ..quick(0) };
        let (summary, stored, handed) = run(sink, events, options).await;
        assert_eq!(stored.len(), 100);
        assert_eq!(summary.failed_events(), 6);
        let reasons: BTreeMap<&str, usize> =
            handed.iter().fold(BTreeMap::new(), |mut counts, (event, reason)| {
                *counts.entry(reason.as_str()).or_default() += 1;
                assert!(!event.is_empty());
                counts
            });
        assert_eq!(reasons["KMSDisabledException: key disabled"], 3);
        assert_eq!(reasons["not put after 4 attempts, the last: ProvisionedThroughputExceededException"], 2);
        assert_eq!(
            reasons["the event is 1024001 bytes, over the contract's limit of 1024000 bytes (1,000 KiB)"],
            1
        );
        assert_eq!(summary.retries, 2 * 3);
    }

    #[tokio::test]
    async fn a_fatal_error_stops_the_run_and_hands_back_every_event_not_put() {
        let events = numbered(5000, "");
        let sink = Faulty { fatal_from_call: Some(3), ..Faulty::default() };
        let options = SendOptions { concurrency: 1, ..quick(0) };
        let (summary, stored, handed) = run(sink, events.clone(), options).await;
        assert_eq!(stored.len(), 2 * MAX_ENTRIES_PER_CALL, "two calls went through");
        assert_eq!(handed.len() + stored.len(), 5000, "every event is stored or handed back");
        let mut all: Vec<Vec<u8>> =
            stored.into_iter().chain(handed.into_iter().map(|(event, _)| event)).collect();
        all.sort();
        assert_eq!(all, events);
        assert_eq!(summary.stopped.as_deref(), Some("ResourceNotFoundException: no such stream"));
    }

    #[tokio::test]
    async fn a_slow_input_is_sent_without_waiting_for_a_full_record() {
        let sink = Arc::new(Faulty::default());
        let (sender, receiver) = mpsc::channel(16);
        let options = SendOptions { linger: Duration::from_millis(5), ..quick(5_000) };
        let task = tokio::spawn(send(Arc::clone(&sink), receiver, options, |_, _| {}, |_| {}, || false));
        sender.send(b"{\"first\":1}".to_vec()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sink.stored.lock().unwrap().len(), 1, "sent after the linger, before the input ends");
        drop(sender);
        assert_eq!(task.await.unwrap().events_put, 1);
    }

    /// A stream that answers only when told, to hold calls in flight.
    struct Gated {
        open: tokio::sync::Semaphore,
        called: tokio::sync::Notify,
        records: Mutex<Vec<Record>>,
    }

    impl RecordSink for Gated {
        async fn put(&self, records: &[Record]) -> Result<Vec<EntryResult>, SinkError> {
            self.called.notify_one();
            self.open.acquire().await.unwrap().forget();
            self.records.lock().unwrap().extend_from_slice(records);
            Ok(vec![EntryResult::Put; records.len()])
        }
    }

    #[tokio::test]
    async fn while_every_call_is_in_flight_events_keep_filling_records() {
        let sink = Arc::new(Gated {
            open: tokio::sync::Semaphore::new(0),
            called: tokio::sync::Notify::new(),
            records: Mutex::new(Vec::new()),
        });
        let (sender, receiver) = mpsc::channel(16);
        let options = SendOptions { concurrency: 1, linger: Duration::from_millis(5), ..quick(5_000) };
        let task = tokio::spawn(send(Arc::clone(&sink), receiver, options, |_, _| {}, |_| {}, || false));
        sender.send(b"{\"first\":1}".to_vec()).await.unwrap();
        sink.called.notified().await; // past the linger: the first call started, and waits
        for event in numbered(100, "") {
            sender.send(event).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await; // each event past the linger of the one before
        }
        drop(sender);
        sink.open.add_permits(1000);
        let summary = task.await.unwrap();
        assert_eq!(summary.events_put, 101);
        assert_eq!(summary.records_put, 2, "the 100 events that waited share one record");
    }

    #[test]
    fn backoff_stays_under_a_doubling_ceiling() {
        let options = SendOptions::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for retry in 1..12 {
            let ceiling = (options.base_backoff * (1 << (retry - 1))).min(options.max_backoff);
            for _ in 0..50 {
                assert!(backoff(retry, &options, &mut rng) <= ceiling);
            }
        }
    }
}
