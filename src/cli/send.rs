//! `eventlake send`: NDJSON events to a Kinesis Data Stream, packed several per
//! record, retried until put, and what cannot be put kept in a file to send again.
//!
//! A reader thread reads the inputs line by line (gzip detected, `-` for stdin,
//! `--rate` paced) into a bounded channel; [`crate::producer::send`] packs, batches
//! and puts. Memory stays bounded: the channel holds at most [`CHANNEL_EVENTS`]
//! events of at most 1,000 KiB, and each call in flight at most 5 MiB.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use crate::aws::{self, kinesis::KinesisStream};
use crate::core::event::MAX_RECORD_BYTES;
use crate::cost::rules::{billed, FIREHOSE_RECORD_UNIT, KINESIS_RECORD_UNIT};
use crate::lake::ndjson::{self, LineEnd};
use crate::producer::pack::{DEFAULT_RECORD_BYTES, MAX_PACK_BYTES};
use crate::producer::send::{self, SendOptions, Summary};

/// Put NDJSON events to a Kinesis Data Stream, packed several per record.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream's name or ARN.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// AWS region (default: the SDK's, from AWS_REGION or the profile).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Pack events into records of up to K KiB, newline-separated (0: one event per
    /// record). Default: 5,000 bytes, one 5 KB Firehose billing increment.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pack_kib: Option<u32>,
    /// Send at most N events per second (`N` or `N/s`).
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    rate: Option<f64>,
    /// PutRecords calls in flight at once (each up to 500 records and 5 MiB).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Attempts per record before its events go to the --failed file.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    attempts: u32,
    /// Where events that could not be put are written, as NDJSON to send again
    /// (created only if needed). Default: eventlake-send-failed-<unix time>.ndjson.
    #[arg(long, value_name = "FILE")]
    failed: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// NDJSON inputs, `-` for stdin; gzip is detected and read transparently.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Events read ahead of the puts.
const CHANNEL_EVENTS: usize = 4096;

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate: give events per second, e.g. 1000 or 1000/s")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let config = aws::load_config_in(args.region.clone()).await;
    let stream = Arc::new(KinesisStream::new(&config, &args.stream));
    let failed_path = args.failed.clone().unwrap_or_else(|| {
        let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        PathBuf::from(format!("eventlake-send-failed-{}.ndjson", seconds.as_secs()))
    });
    let failed = Arc::new(Mutex::new(FailedFile::new(failed_path)));
    let options = SendOptions {
        concurrency: usize::from(args.concurrency),
        attempts: args.attempts,
        pack_bytes: args
            .pack_kib
            .map_or(DEFAULT_RECORD_BYTES, |kib| (kib as usize * 1024).min(MAX_PACK_BYTES)),
        seed: crate::telemetry::now_millis() as u64,
        ..SendOptions::default()
    };
    super::interrupt::catch();
    let (sender, receiver) = mpsc::channel(CHANNEL_EVENTS);
    let reader = {
        let (files, rate, failed) = (args.files.clone(), args.rate, Arc::clone(&failed));
        std::thread::spawn(move || read_inputs(&files, rate, &sender, &failed))
    };
    let progress = (!args.quiet && io::stderr().is_terminal()).then(progress_line);
    let started = Instant::now();
    let mut write_error = None;
    let summary = send::send(
        stream,
        receiver,
        options,
        |event, _reason| {
            if let Err(error) = lock(&failed).write(event) {
                write_error.get_or_insert(error);
            }
        },
        |summary| {
            if let Some(bar) = &progress {
                bar.set_message(progress_message(summary));
            }
        },
        || super::interrupt::caught().is_some(),
    )
    .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(signal) = super::interrupt::caught() {
        return interrupted(signal, &summary, reader, &failed, write_error, started.elapsed(), &args.stream);
    }
    let read = reader.join().map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    let failed = Arc::try_unwrap(failed).map_err(|_| anyhow::anyhow!("the input reader is still running"))?;
    let failed = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let failed_path = failed.finish().context("writing the file of events not sent")?;
    if let Some(error) = write_error {
        return Err(error).with_context(|| format!("writing events not sent to {}", failed_path.display()));
    }
    print!("{}", report(&summary, &read, started.elapsed(), &args.stream));
    let not_sent = summary.failed_events() + read.oversized;
    if not_sent > 0 {
        let mut reasons: Vec<String> =
            summary.failed.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        if read.oversized > 0 {
            reasons.push(format!("{} over the contract's limit of 1,000 KiB", read.oversized));
        }
        anyhow::bail!(
            "{not_sent} events were not sent; they are in {} to send again once fixed ({})",
            failed_path.display(),
            reasons.join("; ")
        );
    }
    if let Some(error) = read.error {
        anyhow::bail!("{error:#} (the {} events read before it were sent)", read.events);
    }
    Ok(ExitCode::SUCCESS)
}

/// How long an interrupted run waits for the reader to notice: one that does
/// not is waiting for input, with no event in hand.
const READER_GRACE: Duration = Duration::from_secs(2);

/// The end of a run stopped by `signal`: every event read and not known to be
/// put is in the failed file (the reader puts there the one it held when the
/// channel closed), the summary is printed, and the exit status says the run
/// was stopped (128 + the signal).
fn interrupted(
    signal: i32,
    summary: &Summary,
    reader: std::thread::JoinHandle<Read>,
    failed: &Mutex<FailedFile>,
    write_error: Option<io::Error>,
    elapsed: Duration,
    stream: &str,
) -> anyhow::Result<ExitCode> {
    let waited = Instant::now();
    while !reader.is_finished() && waited.elapsed() < READER_GRACE {
        std::thread::sleep(Duration::from_millis(10));
    }
    let read = if reader.is_finished() {
        reader.join().map_err(|_| anyhow::anyhow!("the input reader panicked"))?
    } else {
        // Blocked on its input (a terminal, a pipe): it holds no event.
        Read { events: summary.events_put + summary.failed_events(), ..Read::default() }
    };
    let (path, written) = {
        let mut failed = lock(failed);
        failed.flush().context("writing the file of events not sent")?;
        (failed.path.clone(), failed.out.is_some())
    };
    if let Some(error) = write_error {
        return Err(error).with_context(|| format!("writing events not sent to {}", path.display()));
    }
    print!("{}", report(summary, &read, elapsed, stream));
    let not_sent = summary.failed_events() + read.oversized + read.unsent;
    let kept = if written { format!("they are in {}", path.display()) } else { "none to keep".to_owned() };
    eprintln!(
        "eventlake: interrupted (signal {signal}): {} events put, {not_sent} read and not put ({kept}); the input \
         after the {} events read was not read",
        summary.events_put,
        read.events + read.oversized
    );
    Ok(ExitCode::from(super::interrupt::exit_status(signal)))
}

fn lock(failed: &Mutex<FailedFile>) -> std::sync::MutexGuard<'_, FailedFile> {
    failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The events not sent, as NDJSON: created on the first one.
struct FailedFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl FailedFile {
    fn new(path: PathBuf) -> Self {
        FailedFile { path, out: None }
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.out.is_none() {
            let file = File::options().write(true).create_new(true).open(&self.path)?;
            self.out = Some(BufWriter::new(file));
        }
        Ok(self.out.as_mut().expect("opened above"))
    }

    fn write(&mut self, event: &[u8]) -> io::Result<()> {
        let out = self.out()?;
        out.write_all(event)?;
        out.write_all(b"\n")
    }

    /// Writes out what is buffered, if any file was written.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(out) = &mut self.out {
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        Ok(())
    }

    /// Flushes the file, if any was written: its path.
    fn finish(self) -> io::Result<PathBuf> {
        if let Some(mut out) = self.out {
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        Ok(self.path)
    }
}

/// What the reader thread did.
#[derive(Debug, Default)]
struct Read {
    events: u64,
    bytes: u64,
    blank: u64,
    /// Lines over 1,000 KiB, copied to the failed file as they came.
    oversized: u64,
    /// Events read after the run was interrupted, written to the failed file.
    unsent: u64,
    /// A read error that ended the reading early.
    error: Option<anyhow::Error>,
}

/// Reads every input's lines into `sender`, in order, paced to `rate` events per
/// second. A line longer than the contract allows is never held whole: it streams
/// into the failed file. An error (reading, or writing that file) ends the reading.
fn read_inputs(
    files: &[PathBuf],
    rate: Option<f64>,
    sender: &mpsc::Sender<Vec<u8>>,
    failed: &Mutex<FailedFile>,
) -> Read {
    let mut read = Read::default();
    if let Err(error) = read_all(files, rate, sender, failed, &mut read) {
        read.error = Some(error);
    }
    read
}

fn read_all(
    files: &[PathBuf],
    rate: Option<f64>,
    sender: &mpsc::Sender<Vec<u8>>,
    failed: &Mutex<FailedFile>,
    read: &mut Read,
) -> anyhow::Result<()> {
    let started = Instant::now();
    for path in files {
        let name = path.display().to_string();
        let input: Box<dyn io::Read> =
            if path.as_os_str() == "-" { Box::new(io::stdin().lock()) } else { Box::new(open(path)?) };
        let mut reader = ndjson::decompressing_reader(input).with_context(|| format!("reading {name}"))?;
        let mut line = Vec::new();
        loop {
            line.clear();
            match ndjson::next_line(&mut reader, &mut line, MAX_RECORD_BYTES)
                .with_context(|| format!("reading {name}"))?
            {
                LineEnd::Eof => break,
                LineEnd::TooLong => {
                    let mut failed = lock(failed);
                    let out = failed.out().context("creating the file of events not sent")?;
                    out.write_all(&line)?;
                    let rest = ndjson::copy_rest_of_line(&mut reader, out)
                        .with_context(|| format!("reading {name}"))?;
                    out.write_all(b"\n")?;
                    read.oversized += 1;
                    read.bytes += line.len() as u64 + rest.bytes;
                    continue;
                }
                LineEnd::Line if ndjson::is_blank(&line) => {
                    read.blank += 1;
                    continue;
                }
                LineEnd::Line => {}
            }
            read.events += 1;
            read.bytes += line.len() as u64;
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(read.events as f64 / rate);
                while Instant::now() < due && super::interrupt::caught().is_none() {
                    std::thread::sleep(
                        due.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)),
                    );
                }
            }
            // The line moves to the channel; the next one gets a buffer of its own.
            // A closed channel (the run was interrupted) hands it back: it goes to
            // the failed file, and the reading ends.
            if let Err(mpsc::error::SendError(event)) = sender.blocking_send(std::mem::take(&mut line)) {
                lock(failed).write(&event).context("writing the file of events not sent")?;
                read.unsent += 1;
                return Ok(());
            }
            if super::interrupt::caught().is_some() {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

fn progress_line() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn progress_message(summary: &Summary) -> String {
    format!(
        "{} events put in {} records ({:.1} MiB), {} retries",
        summary.events_put,
        summary.records_put,
        summary.bytes_put as f64 / (1 << 20) as f64,
        summary.retries
    )
}

/// The run's summary: what was put, how it was packed, what it costs to ingest.
fn report(summary: &Summary, read: &Read, elapsed: Duration, stream: &str) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let per_record = summary.events_put as f64 / summary.records_put.max(1) as f64;
    let kib = |bytes: u64| bytes.div_ceil(1024);
    let kinesis = summary.record_sizes.sum(|len| billed(len, KINESIS_RECORD_UNIT));
    let firehose = summary.record_sizes.sum(|len| billed(len, FIREHOSE_RECORD_UNIT));
    let mut out = format!(
        "sent to {stream}: {} of {} events in {} records ({per_record:.1} events per record), {} bytes, \
         {:.1} s ({:.0} events/s)\n",
        summary.events_put,
        read.events + read.oversized,
        summary.records_put,
        summary.bytes_put,
        seconds,
        summary.events_put as f64 / seconds,
    );
    out += &format!("  PutRecords calls: {}, records retried: {}\n", summary.calls, summary.retries);
    out += &format!(
        "  billed (estimate): Kinesis on-demand data in {} KiB (1 KiB per record, rounded up), \
         Firehose ingestion {} KiB (5 KiB per record, rounded up)\n",
        kib(kinesis),
        kib(firehose),
    );
    if read.blank > 0 {
        out += &format!("  blank lines skipped: {}\n", read.blank);
    }
    out
}
