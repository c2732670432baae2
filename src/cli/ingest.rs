//! `eventlake ingest`: the whole pipeline on local NDJSON: validate, enrich, dedupe
//! across the run, write the Parquet lake, keep rejected records with reasons.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use crate::aws::{self, s3::S3Store};
use crate::catalog::{self, Catalog};
use crate::compaction;
use crate::lake::ndjson::{self, ContentDigest, LineCounts};
use crate::lake::storage::{LocalDir, Location, Storage};
use crate::lake::writer::{Limits, SourceId, Summary};
use crate::telemetry;

use super::summary::{self, bytes, count};

/// Ingest NDJSON events into a Parquet lake (a directory or s3://bucket/prefix).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root: a local directory or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|s3://bucket/prefix")]
    lake: String,
    /// Register the partitions the run writes in this Glue database, and settle
    /// files into compacted partitions (s3:// lakes; required once the lake has
    /// compacted partitions).
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// The Glue table.
    #[arg(long, value_name = "NAME", default_value = "events", requires = "database")]
    table: String,
    /// NDJSON inputs, `-` for stdin; gzip is detected and read transparently.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write a partition as a part file once this many MiB of rows are buffered
    /// (at most 1024: a Parquet string column's offsets are 32-bit).
    #[arg(long, value_name = "MIB", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=MAX_PARTITION_MIB))]
    partition_mib: u16,
    /// Memory for rows and the dedupe set: the largest partition is spilled to
    /// disk once they hold this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 96,
          value_parser = clap::value_parser!(u32).range(1..=MAX_BUFFER_MIB))]
    buffer_mib: u32,
    /// Threads that parse records and encode files (default: one per core); the
    /// lake written is the same, byte for byte, for any number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    #[command(flatten)]
    window: super::WindowArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Leave the typed views as they are (a local lake): `eventlake views`
    /// brings them up to date later, reading the partitions this run wrote.
    #[arg(long)]
    no_views: bool,
    /// The most bytes, in GiB, kept of inputs that are not regular files (`-`, a
    /// pipe, a FIFO): each is read once into a spool file in the run's scratch
    /// directory, never past the disk's last GiB either.
    #[arg(long, value_name = "GIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    spool_max_gib: u32,
}

/// What a spool never takes of its disk.
const SPOOL_DISK_RESERVE: u64 = 1 << 30;

/// Largest `--partition-mib`: a part's string column stays far below the 2 GiB
/// that Arrow's 32-bit offsets can address.
const MAX_PARTITION_MIB: i64 = 1024;
/// Largest `--buffer-mib` (1 TiB).
const MAX_BUFFER_MIB: i64 = 1 << 20;

/// One input: a regular file, read twice (for its digest, then to write the
/// lake), or anything else (standard input, a pipe, a FIFO, a device), which can
/// be read only once: its bytes are kept in a spool file and read from there.
struct Input {
    name: String,
    source: InputSource,
}

enum InputSource {
    Path(PathBuf),
    /// An unnamed file in the run's scratch directory: the system frees it when
    /// the process ends, however it ends (an interrupt, `kill -9`).
    Spooled(File),
}

impl Input {
    /// The input from its start.
    fn open(&self) -> io::Result<File> {
        match &self.source {
            InputSource::Path(path) => File::open(path),
            InputSource::Spooled(file) => {
                let mut file = file.try_clone()?;
                std::io::Seek::rewind(&mut file)?;
                Ok(file)
            }
        }
    }
}

/// Whether `path` names something that can be read more than once: a regular
/// file (after symbolic links). `-` and everything else is spooled.
fn is_rereadable(path: &Path) -> bool {
    path.as_os_str() != "-" && std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    anyhow::ensure!(args.buffer_mib >= u32::from(args.partition_mib), "need --partition-mib <= --buffer-mib");
    let limits = Limits {
        partition_bytes: usize::from(args.partition_mib) << 20,
        total_bytes: (args.buffer_mib as usize) << 20,
        window: args.window.at(telemetry::now_millis()),
        workers: args.threads.map_or_else(Limits::all_cores, usize::from),
        count_fields: !args.no_views,
        ..Limits::default()
    };
    let mut catalogued = None;
    let mut views = None;
    let (summary, fed, total_bytes, elapsed) = match &location {
        Location::Local(dir) => {
            anyhow::ensure!(
                args.database.is_none(),
                "--database needs an s3:// lake: Glue partitions point at S3"
            );
            let ingested = ingest(LocalDir::new(dir), limits, &args).await?;
            if !args.no_views {
                // A run that forgot keys (its dedupe set restarted) may have written
                // a key twice: its counts are not the first copies'; read back instead.
                let counted = (ingested.0.dedupe_resets == 0).then_some(&ingested.0.counted);
                views = Some(super::views::keep_current(dir, counted)?);
            }
            ingested
        }
        Location::S3 { bucket, prefix } => {
            let config = aws::load_config().await;
            let store = S3Store::new(aws::s3::s3_client(&config), bucket, prefix);
            super::ensure_catalog_for_compacted(&store, args.database.as_deref()).await?;
            let ingested = ingest(store.clone(), limits, &args).await?;
            if !args.no_views {
                // For the typed views the deployed compactor keeps.
                crate::views::publish::observe(&store, &ingested.0).await?;
            }
            if let Some(database) = &args.database {
                let catalog = Catalog::new(catalog::glue_client(&config), database, &args.table);
                let registered = catalog.register(&ingested.0.touched).await?.created;
                let moved =
                    compaction::settle(&store, &catalog, &ingested.0.touched, &ingested.0.keys).await?;
                catalogued = Some((catalog.name(), registered, moved));
            }
            ingested
        }
    };
    let (views, changes) = views.unzip();
    print!("{}", report(&summary, fed, total_bytes, elapsed, &args.lake, catalogued, views));
    print!("{}", changes.unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

/// Reads the inputs into `storage`: the summary, the line counts, the input bytes
/// and the time it took.
async fn ingest<S: Storage>(
    storage: S,
    limits: Limits,
    args: &Args,
) -> anyhow::Result<(Summary, LineCounts, u64, Duration)> {
    // An input that cannot be read twice is spooled: the run's output names come
    // from a digest of its whole input, taken before the first file is written.
    let mut inputs = Vec::new();
    let spool_limit = (args.spool_max_gib as u64) << 30;
    let mut spooled_bytes = 0;
    for path in &args.files {
        let name = if path.as_os_str() == "-" { "-".to_owned() } else { path.display().to_string() };
        let source = if is_rereadable(path) {
            InputSource::Path(path.clone())
        } else {
            let scratch = storage.scratch_dir()?;
            let mut file = tempfile::tempfile_in(scratch)
                .with_context(|| format!("creating a spool file for {name} in {}", scratch.display()))?;
            let budget = spool_budget(scratch, spool_limit.saturating_sub(spooled_bytes));
            spooled_bytes += if path.as_os_str() == "-" {
                spool(io::stdin().lock(), &mut file, budget, &name)?
            } else {
                spool(open(path)?, &mut file, budget, &name)?
            };
            InputSource::Spooled(file)
        };
        inputs.push(Input { name, source });
    }
    let mut digest = ContentDigest::default();
    let mut total_bytes = 0;
    for input in &inputs {
        let file = input.open().with_context(|| format!("opening {}", input.name))?;
        total_bytes += digest.add(file).with_context(|| format!("reading {}", input.name))?;
    }
    let source = SourceId::from_digest(digest.finish());
    let progress = (!args.quiet && io::stderr().is_terminal()).then(|| progress_bar(total_bytes));
    let started = Instant::now();
    let (summary, fed) = write_lake(storage, source, limits, &inputs, progress.as_ref()).await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok((summary, fed, total_bytes, started.elapsed()))
}

/// What a spool may hold: `limit`, and never the last [`SPOOL_DISK_RESERVE`]
/// of the disk that holds `dir`. The reason names whichever is smaller.
fn spool_budget(dir: &Path, limit: u64) -> (u64, String) {
    let free = free_bytes(dir).map(|free| free.saturating_sub(SPOOL_DISK_RESERVE));
    match free {
        Some(free) if free < limit => (
            free,
            format!("the free space of {} less {} kept free", dir.display(), bytes(SPOOL_DISK_RESERVE)),
        ),
        _ => (limit, "--spool-max-gib".to_owned()),
    }
}

/// Free bytes for this user on the file system that holds `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stats` a writable statvfs.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    (result == 0).then(|| (stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Copies `input` into `spool` once, refusing past `budget` bytes: the bytes
/// copied.
fn spool(
    mut input: impl Read,
    spool: &mut File,
    (budget, why): (u64, String),
    name: &str,
) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let mut buffer = vec![0; 1 << 20];
    let mut copied: u64 = 0;
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error).with_context(|| format!("reading {name}")),
        };
        copied += read as u64;
        anyhow::ensure!(
            copied <= budget,
            "{name} is more than {} ({why}): it is not a regular file, so it is kept in a spool file before \
             it is read (the lake's file names come from a digest of the whole input); save it to a file and \
             ingest that, or raise --spool-max-gib",
            bytes(budget)
        );
        spool.write_all(&buffer[..read]).with_context(|| format!("spooling {name}"))?;
    }
    Ok(copied)
}

async fn write_lake<S: Storage>(
    storage: S,
    source: SourceId,
    limits: Limits,
    inputs: &[Input],
    progress: Option<&ProgressBar>,
) -> anyhow::Result<(Summary, LineCounts)> {
    let opened = inputs.iter().map(|input| {
        let file = input.open().map(|inner| Progress { inner, bar: progress });
        (input.name.clone(), file)
    });
    let writing = || {
        if let Some(bar) = progress {
            // Input is read; the partitions still in memory or spilled are written now.
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message("writing partitions");
            bar.enable_steady_tick(Duration::from_millis(100));
        }
    };
    Ok(ndjson::ingest(storage, source, limits, opened, writing).await?)
}

fn progress_bar(total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}

/// Counts bytes read (before decompression) on the progress bar.
struct Progress<'b, R> {
    inner: R,
    bar: Option<&'b ProgressBar>,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if let Some(bar) = self.bar {
            bar.inc(read as u64);
        }
        Ok(read)
    }
}

/// The end-of-run table.
/// `catalogued`: the Glue table, the partitions registered in it and the files
/// settled into compacted partitions.
fn report(
    summary: &Summary,
    fed: LineCounts,
    input_bytes: u64,
    elapsed: Duration,
    lake: &str,
    catalogued: Option<(String, usize, usize)>,
    views: Option<String>,
) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut rows: Vec<(String, String)> = vec![
        ("events read".into(), count(summary.records)),
        ("written".into(), count(summary.written)),
        ("duplicates".into(), count(summary.duplicates)),
        ("rejected".into(), count(summary.rejected_total())),
    ];
    rows.extend(summary.rejected.iter().map(|(code, n)| (format!("  {code}"), count(*n))));
    rows.extend([
        ("blank lines".into(), count(fed.blank)),
        ("partitions".into(), count(summary.partitions as u64)),
        ("files".into(), count(summary.files as u64)),
        ("bytes in".into(), bytes(input_bytes)),
        ("bytes out".into(), bytes(summary.bytes_out)),
        ("spilled".into(), bytes(summary.spilled_bytes)),
        ("elapsed".into(), format!("{seconds:.2} s")),
        (
            "throughput".into(),
            format!(
                "{}/s, {} events/s",
                bytes((input_bytes as f64 / seconds) as u64),
                count((summary.records as f64 / seconds) as u64)
            ),
        ),
        ("lake".into(), lake.to_owned()),
    ]);
    if let Some(views) = views {
        rows.push(("typed views".into(), views));
    }
    if let Some((table, registered, moved)) = catalogued {
        rows.push((format!("registered in {table}"), count(registered as u64)));
        rows.push(("moved to compacted partitions".into(), count(moved as u64)));
    }
    // Only when they happened: both are unusual.
    if summary.dedupe_resets > 0 {
        rows.push(("dedupe restarts".into(), count(summary.dedupe_resets)));
    }
    if summary.stale_files_deleted > 0 {
        rows.push(("stale files deleted".into(), count(summary.stale_files_deleted)));
    }
    summary::table(&rows)
}
