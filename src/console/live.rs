//! The console's Live panel: producers a person starts and stops, each with
//! its colour and state (`running`; `shutting down` while the records in
//! flight finish; `stopped`), events per second by type, and, with a stream, a
//! consumer that reads it from its oldest record in order.
//!
//! Without a stream, a producer feeds the local lake every
//! [`LOCAL_BATCH_INTERVAL`] through the library's ingest path (the lake writer,
//! then the typed views); with one, it sends to Kinesis through `eventlake
//! send`'s sender, and the consumer runs [`crate::tail::tail`] with a checkpoint
//! file under the lake's `_console/`. Producers and the consumer run on
//! threads of their own, each with its own runtime.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::kinesis::KinesisStream;
use crate::core::event::{Event, TimeWindow};
use crate::generate::{self, Generator};
use crate::lake::storage::LocalDir;
use crate::lake::writer::{Limits, SourceId};
use crate::shards::Checkpoint;
use crate::tail::{self, CheckpointStore, Report};

/// How often a producer makes the events due at its rate.
const MAKE_TICK: Duration = Duration::from_millis(50);
/// How often a producer of a local lake writes what it generated.
pub const LOCAL_BATCH_INTERVAL: Duration = Duration::from_secs(2);
/// The most events per second one producer makes.
pub const MAX_RATE: u32 = 5_000;
/// The most producers at once.
pub const MAX_PRODUCERS: usize = 8;
/// Event types a producer's events spread over (a readable chart).
const PRODUCER_TYPES: usize = 8;
/// How long the consumer waits before it reads again after a failure.
const CONSUMER_RESTART: Duration = Duration::from_secs(5);
/// The consumer's newest events shown.
const CONSUMER_EVENTS_SHOWN: usize = 20;
/// The producers' colours, by id.
const COLOURS: [&str; 8] =
    ["#2f6fde", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#5c940d"];

/// Where producers send.
pub enum Target {
    /// The local lake.
    Lake,
    /// A Kinesis stream, read back by the consumer.
    Stream { config: Box<crate::aws::SdkConfig>, name: String },
}

/// A producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum State {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "shutting down")]
    ShuttingDown,
    #[serde(rename = "stopped")]
    Stopped,
}

struct Producer {
    id: usize,
    rate: u32,
    /// The states it went through, in order; the last is its state.
    states: Mutex<Vec<State>>,
    events: AtomicU64,
    rejected: AtomicU64,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Producer {
    fn state(&self) -> State {
        self.states.lock().map(|states| *states.last().unwrap_or(&State::Stopped)).unwrap_or(State::Stopped)
    }

    /// Moves to `state` if `from` allows it (`None`: from any state but
    /// `stopped`, which is final); whether it moved.
    fn enter(&self, state: State, from: Option<State>) -> bool {
        let Ok(mut states) = self.states.lock() else { return false };
        let now = *states.last().unwrap_or(&State::Running);
        let allowed = now != State::Stopped && now != state && from.is_none_or(|from| from == now);
        if allowed {
            states.push(state);
        }
        allowed
    }
}

/// What the consumer shows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsumerView {
    pub state: String,
    pub events: u64,
    pub max_lag_ms: Option<i64>,
    pub shards: Vec<ShardView>,
    pub latest: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardView {
    pub shard: String,
    pub after: Option<String>,
    pub finished: bool,
    pub lag_ms: Option<i64>,
}

/// The live side of one console.
pub struct Live {
    target: Target,
    /// The local lake producers write into (none for an S3 lake).
    lake: Option<PathBuf>,
    /// Where the consumer keeps its checkpoint.
    state_dir: PathBuf,
    producers: Mutex<Vec<Arc<Producer>>>,
    /// Events made since the last sample, by type.
    produced: Mutex<BTreeMap<String, u64>>,
    /// The last second's events by type.
    rates: Mutex<BTreeMap<String, u64>>,
    consumer: Mutex<Option<ConsumerView>>,
    /// One write into the local lake at a time (producers and replays): the
    /// typed views are brought up to date after each.
    pub(super) lake_writes: Mutex<()>,
}

/// What the panel receives every second.
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    pub at: i64,
    pub target: String,
    pub producers: Vec<ProducerView>,
    pub rates: BTreeMap<String, u64>,
    pub consumer: Option<ConsumerView>,
}

#[derive(Debug, serde::Serialize)]
pub struct ProducerView {
    pub id: usize,
    pub colour: &'static str,
    pub rate: u32,
    pub state: State,
    /// Every state it went through, in order.
    pub states: Vec<State>,
    pub events: u64,
    pub rejected: u64,
    pub error: Option<String>,
}

/// Why a producer was not started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("a producer makes 1 to {MAX_RATE} events per second, not {0}")]
    Rate(u32),
    #[error("{MAX_PRODUCERS} producers run already: stop one first")]
    TooMany,
    #[error("no producer #{0}")]
    NoProducer(usize),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
    /// An S3 lake is written by the deployed pipeline, from its stream.
    #[error("an S3 lake is written by the deployed pipeline: start the console with --stream NAME to produce into its stream")]
    NoTarget,
}

impl Live {
    pub fn new(target: Target, lake: Option<PathBuf>, state_dir: PathBuf) -> Arc<Self> {
        let live = Arc::new(Live {
            target,
            lake,
            state_dir,
            producers: Mutex::new(Vec::new()),
            produced: Mutex::new(BTreeMap::new()),
            rates: Mutex::new(BTreeMap::new()),
            consumer: Mutex::new(None),
            lake_writes: Mutex::new(()),
        });
        let sampled = Arc::clone(&live);
        // Once a second: the last second's counts become the rates shown.
        let _ = std::thread::Builder::new().name("console-rates".into()).spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let counts =
                sampled.produced.lock().map(|mut made| std::mem::take(&mut *made)).unwrap_or_default();
            if let Ok(mut rates) = sampled.rates.lock() {
                *rates = counts;
            }
        });
        live
    }

    /// Starts the consumer of the stream, if there is one.
    pub fn start_consumer(self: &Arc<Self>) -> Result<(), LiveError> {
        let Target::Stream { config, name } = &self.target else { return Ok(()) };
        let (config, name, live) = (config.clone(), name.clone(), Arc::clone(self));
        let checkpoint = self.state_dir.join(format!("{}.tail.json", file_safe(&name)));
        std::thread::Builder::new()
            .name("console-consumer".into())
            .spawn(move || live.consume(&config, &name, &checkpoint))
            .map_err(LiveError::Thread)?;
        Ok(())
    }

    /// Starts a producer of `rate` events a second.
    pub fn start(self: &Arc<Self>, rate: u32) -> Result<usize, LiveError> {
        if rate == 0 || rate > MAX_RATE {
            return Err(LiveError::Rate(rate));
        }
        if matches!(self.target, Target::Lake) && self.lake.is_none() {
            return Err(LiveError::NoTarget);
        }
        let producer = {
            let mut producers = self.producers.lock().map_err(|_| LiveError::TooMany)?;
            if producers.iter().filter(|p| p.state() != State::Stopped).count() >= MAX_PRODUCERS {
                return Err(LiveError::TooMany);
            }
            let producer = Arc::new(Producer {
                id: producers.len() + 1,
                rate,
                states: Mutex::new(vec![State::Running]),
                events: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                error: Mutex::new(None),
            });
            producers.push(Arc::clone(&producer));
            producer
        };
        let (live, running) = (Arc::clone(self), Arc::clone(&producer));
        std::thread::Builder::new()
            .name(format!("console-producer-{}", producer.id))
            .spawn(move || {
                let outcome = match &live.target {
                    Target::Lake => live.produce_into_lake(&running),
                    Target::Stream { config, name } => live.produce_into_stream(&running, config, name),
                };
                if let (Err(error), Ok(mut slot)) = (outcome, running.error.lock()) {
                    *slot = Some(error);
                }
                running.enter(State::Stopped, None);
            })
            .map_err(LiveError::Thread)?;
        Ok(producer.id)
    }

    /// Asks producer `id` to stop: it finishes the records in flight first.
    pub fn stop(&self, id: usize) -> Result<(), LiveError> {
        let producers = self.producers.lock().map_err(|_| LiveError::NoProducer(id))?;
        let producer = producers.iter().find(|p| p.id == id).ok_or(LiveError::NoProducer(id))?;
        // One step under the states' lock: a producer that stopped by itself
        // (an error) meanwhile stays stopped.
        if producer.enter(State::ShuttingDown, Some(State::Running)) {
            producer.stop.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// What the panel shows now.
    pub fn snapshot(&self) -> Snapshot {
        let producers = self
            .producers
            .lock()
            .map(|producers| {
                producers
                    .iter()
                    .map(|p| ProducerView {
                        id: p.id,
                        colour: COLOURS[(p.id - 1) % COLOURS.len()],
                        rate: p.rate,
                        state: p.state(),
                        states: p.states.lock().map(|s| s.clone()).unwrap_or_default(),
                        events: p.events.load(Ordering::Relaxed),
                        rejected: p.rejected.load(Ordering::Relaxed),
                        error: p.error.lock().ok().and_then(|e| e.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let target = match &self.target {
            Target::Lake => match &self.lake {
                Some(lake) => format!(
                    "producers write into the local lake {} every {} s",
                    lake.display(),
                    LOCAL_BATCH_INTERVAL.as_secs()
                ),
                None => "no producers on an S3 lake without --stream".to_owned(),
            },
            Target::Stream { name, .. } => format!("producers send to the Kinesis stream {name}"),
        };
        Snapshot {
            at: crate::telemetry::now_millis(),
            target,
            producers,
            rates: self.rates.lock().map(|r| r.clone()).unwrap_or_default(),
            consumer: self.consumer.lock().ok().and_then(|c| c.clone()),
        }
    }

    /// Counts a batch's events by type (and the records that are not events).
    fn count(&self, producer: &Producer, records: &[Vec<u8>]) {
        let mut rejected = 0;
        if let Ok(mut made) = self.produced.lock() {
            for record in records {
                match Event::parse(record) {
                    Ok(event) => *made.entry(event.event_type().to_owned()).or_insert(0) += 1,
                    Err(_) => rejected += 1,
                }
            }
        }
        producer.events.fetch_add(records.len() as u64 - rejected, Ordering::Relaxed);
        producer.rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    /// Makes events at the producer's rate, created now, every [`MAKE_TICK`]
    /// until the producer is asked to stop or `deliver` refuses them; each
    /// tick's events are counted, then delivered.
    fn make_until_stopped(&self, producer: &Producer, mut deliver: impl FnMut(Vec<Vec<u8>>) -> bool) {
        let mut generator = generator_for(producer.id);
        let started = Instant::now();
        let mut made: u64 = 0;
        while !producer.stop.load(Ordering::SeqCst) {
            let due = (started.elapsed().as_secs_f64() * f64::from(producer.rate)) as u64;
            generator.created_at_second(crate::telemetry::now_millis() / 1000);
            let fresh: Vec<Vec<u8>> = (made..due).map(|_| generator.next_record().data).collect();
            made = made.max(due);
            self.count(producer, &fresh);
            if !deliver(fresh) {
                return;
            }
            std::thread::sleep(MAKE_TICK);
        }
    }

    /// Events made at the producer's rate on this thread, handed to a writer
    /// thread that writes what it holds into the lake every
    /// [`LOCAL_BATCH_INTERVAL`] (so a write never holds back the making); on
    /// stop, what was made since the last write is written before it is stopped.
    fn produce_into_lake(&self, producer: &Producer) -> Result<(), String> {
        let (made_events, to_write) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || self.write_every_interval(producer.id, &to_write));
            // A send fails once the writer failed: its error is the producer's.
            self.make_until_stopped(producer, |fresh| made_events.send(fresh).is_ok());
            drop(made_events);
            writer.join().unwrap_or_else(|_| Err("the writer thread panicked".to_owned()))
        })
    }

    /// Writes what arrives on `made` every [`LOCAL_BATCH_INTERVAL`], and the rest once it closes.
    fn write_every_interval(
        &self,
        producer: usize,
        made: &std::sync::mpsc::Receiver<Vec<Vec<u8>>>,
    ) -> Result<(), String> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut batch_started = Instant::now();
        loop {
            let open = match made.recv_timeout(Duration::from_millis(100)) {
                Ok(events) => {
                    pending.extend(events);
                    true
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => true,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => false,
            };
            if (!open || batch_started.elapsed() >= LOCAL_BATCH_INTERVAL) && !pending.is_empty() {
                let batch = std::mem::take(&mut pending);
                let _one_at_a_time =
                    self.lake_writes.lock().map_err(|_| "the lake's write lock is poisoned".to_owned())?;
                runtime.block_on(self.write_batch(producer, batch))?;
                batch_started = Instant::now();
            }
            if !open {
                return Ok(());
            }
        }
    }

    /// One batch through the library's ingest path: the lake writer, then the
    /// typed views (under [`Live::lake_writes`], taken by the caller).
    async fn write_batch(&self, producer: usize, batch: Vec<Vec<u8>>) -> Result<(), String> {
        let mut ndjson = batch.join(&b'\n');
        ndjson.push(b'\n');
        let now = crate::telemetry::now_millis();
        let source = SourceId::from_digest(xxhash_rust::xxh3::xxh3_128(&ndjson));
        let limits = Limits {
            window: TimeWindow { now_millis: now, ..TimeWindow::default() },
            workers: 1,
            count_fields: true,
            ..Limits::default()
        };
        let Some(lake) = &self.lake else { return Err("no local lake".to_owned()) };
        let input = (format!("console producer #{producer}"), Ok(Cursor::new(ndjson)));
        let (summary, _) = crate::lake::ndjson::ingest(LocalDir::new(lake), source, limits, [input], || {})
            .await
            .map_err(|e| format!("{e:#}"))?;
        let counted = (summary.dedupe_resets == 0).then_some(&summary.counted);
        crate::views::local::refresh(lake, counted).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Events at the producer's rate into `eventlake send`'s sender; on stop, the
    /// sender finishes the calls in flight before the producer is stopped.
    fn produce_into_stream(
        &self,
        producer: &Producer,
        config: &crate::aws::SdkConfig,
        name: &str,
    ) -> Result<(), String> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let stream = Arc::new(KinesisStream::new(config, name));
        let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(4096);
        let id = producer.id;
        let generating = std::thread::scope(|scope| {
            let generator_thread = scope.spawn(|| {
                // Owned here: the channel closes when generating ends, and the
                // sender then finishes the calls in flight.
                let sender = sender;
                self.make_until_stopped(producer, |fresh| {
                    fresh.into_iter().all(|record| sender.blocking_send(record).is_ok())
                });
            });
            let options =
                crate::producer::send::SendOptions { concurrency: 1, seed: id as u64, ..Default::default() };
            let summary = runtime.block_on(crate::producer::send::send(
                stream,
                receiver,
                options,
                |_, _| {},
                |_| {},
                || false,
            ));
            let _ = generator_thread.join();
            summary
        });
        match generating.stopped {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Reads the stream from its oldest record until the process ends,
    /// checkpointing in `checkpoint`.
    fn consume(&self, config: &crate::aws::SdkConfig, name: &str, checkpoint: &Path) {
        let set = |view: ConsumerView| {
            if let Ok(mut slot) = self.consumer.lock() {
                *slot = Some(view);
            }
        };
        let fail = |message: String| {
            set(ConsumerView { state: format!("stopped: {message}"), ..ConsumerView::default() })
        };
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return fail("no runtime".into());
        };
        if let Some(parent) = checkpoint.parent() {
            if let Err(error) = std::fs::create_dir_all(parent) {
                return fail(error.to_string());
            }
        }
        let store = tail::checkpoint_file::CheckpointFile::open(checkpoint);
        let mut store = match store {
            Ok(file) => CheckpointStore::File(file),
            Err(error) => return fail(error.to_string()),
        };
        let stream = KinesisStream::new(config, name);
        let view = Mutex::new(ConsumerView { state: "reading".into(), ..ConsumerView::default() });
        let mut sink = ConsumerSink { view: &view, pending: Vec::new() };
        let mut lags: BTreeMap<String, Option<i64>> = BTreeMap::new();
        let mut positions: Option<Checkpoint> = None;
        let mut report = |report: Report<'_>| {
            match report {
                Report::Lag(lag) => lags = lag.clone(),
                Report::Saved(checkpoint) => positions = Some(checkpoint.clone()),
                _ => {}
            }
            if let Ok(mut shown) = view.lock() {
                shown.max_lag_ms = lags.values().flatten().copied().max();
                shown.shards = shard_views(positions.as_ref(), &lags);
                set(shown.clone());
            }
        };
        // It follows the stream until the console ends; after a failure (the
        // stream out of reach, throttled past the retries) it starts again from
        // its checkpoint.
        loop {
            let options = tail::Options {
                from: tail::From::TrimHorizon,
                follow: true,
                filter: None,
                now_millis: crate::telemetry::now_millis,
            };
            let result =
                runtime.block_on(tail::tail(&stream, &mut store, options, &mut sink, &mut report, &|| false));
            let why = match result {
                Ok(_) => "the stream ended".to_owned(),
                Err(error) => error.to_string(),
            };
            if let Ok(mut shown) = view.lock() {
                shown.state = format!("stopped: {why}; reading again in {} s", CONSUMER_RESTART.as_secs());
                set(shown.clone());
            }
            std::thread::sleep(CONSUMER_RESTART);
            if let Ok(mut shown) = view.lock() {
                shown.state = "reading".to_owned();
            }
        }
    }
}

/// Each shard's checkpoint and lag.
fn shard_views(checkpoint: Option<&Checkpoint>, lags: &BTreeMap<String, Option<i64>>) -> Vec<ShardView> {
    let mut shards: BTreeMap<String, ShardView> = BTreeMap::new();
    if let Some(checkpoint) = checkpoint {
        for (shard, position) in &checkpoint.shards {
            shards.insert(
                shard.clone(),
                ShardView {
                    shard: shard.clone(),
                    after: position.after.clone(),
                    finished: position.finished,
                    lag_ms: None,
                },
            );
        }
    }
    for (shard, lag) in lags {
        shards
            .entry(shard.clone())
            .or_insert_with(|| ShardView { shard: shard.clone(), after: None, finished: false, lag_ms: None })
            .lag_ms = *lag;
    }
    shards.into_values().collect()
}

/// The consumer's output: counted, the newest lines kept.
struct ConsumerSink<'a> {
    view: &'a Mutex<ConsumerView>,
    pending: Vec<u8>,
}

impl std::io::Write for ConsumerSink<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Ok(mut view) = self.view.lock() {
                view.events += 1;
                view.latest.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
                if view.latest.len() > CONSUMER_EVENTS_SHOWN {
                    view.latest.remove(0);
                }
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A producer's generator: 1% duplicates and 1% records that break a rule, as
/// a real producer's stream has.
fn generator_for(id: usize) -> Generator {
    let seed = crate::telemetry::now_millis() as u64 ^ ((id as u64) << 48);
    Generator::new(generate::Options {
        seed,
        types: PRODUCER_TYPES,
        duplicates: 0.01,
        invalid: 0.01,
        ..generate::Options::default()
    })
}

/// A stream name as a file name: its characters outside `A-Z a-z 0-9 _ - .` as `_`.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producer() -> Producer {
        Producer {
            id: 1,
            rate: 10,
            states: Mutex::new(vec![State::Running]),
            events: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        }
    }

    #[test]
    fn a_producer_goes_running_shutting_down_stopped_and_stopped_is_final() {
        let p = producer();
        assert!(p.enter(State::ShuttingDown, Some(State::Running)));
        assert!(!p.enter(State::ShuttingDown, Some(State::Running)), "asked twice");
        assert!(p.enter(State::Stopped, None));
        assert_eq!(*p.states.lock().unwrap(), [State::Running, State::ShuttingDown, State::Stopped]);

        // Stopped by itself (an error) before a stop arrives: it stays stopped.
        let p = producer();
        assert!(p.enter(State::Stopped, None));
        assert!(!p.enter(State::ShuttingDown, Some(State::Running)));
        assert_eq!(p.state(), State::Stopped);
        assert_eq!(*p.states.lock().unwrap(), [State::Running, State::Stopped]);
    }
}
