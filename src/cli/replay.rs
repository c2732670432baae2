//! `eventlake replay`: records that did not reach the lake (Firehose's error
//! output, the lake's `_rejected/` records, or events fixed by hand) validated
//! again with today's rules and written into the lake through the normal writer,
//! minus what the lake already holds, so that replaying twice adds nothing.
//!
//! Three passes, so that memory holds only the target partitions' keys: the
//! sources are read once into a spool file of the events that now pass (with
//! where each came from); the keys of the partitions they belong to are read from
//! the lake; the spool is read again to name the run after exactly the events it
//! adds (a replay never overwrites another replay's files), then to write them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::aws::{self, s3::S3Store};
use crate::catalog::{self, Catalog};
use crate::compactor;
use crate::core::event::{DedupeKey, Event, TimeWindow, MAX_RECORD_BYTES};
use crate::core::partition::Partition;
use crate::lake::ndjson::{self, ContentDigest, LineEnd};
use crate::lake::replay::{self, Held};
use crate::lake::scratch;
use crate::lake::storage::{LocalDir, Location, Storage};
use crate::lake::writer::{LakeWriter, Limits, Origin, SourceId, Summary};
use crate::telemetry;

/// Replay records that did not reach the lake: Firehose's error output, the
/// lake's rejected records, or events fixed by hand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root: a local directory or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|s3://bucket/prefix")]
    lake: String,
    /// Files, directories or s3://bucket/prefix locations of Firehose error records
    /// (`errors/...`), the lake's `_rejected/` records or NDJSON events; gzip is
    /// detected and read transparently.
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    #[command(flatten)]
    window: super::WindowArgs,
    /// Register the partitions the replay adds in this Glue database (S3 lakes).
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// The Glue table.
    #[arg(long, value_name = "NAME", default_value = "events", requires = "database")]
    table: String,
    /// Show what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Longest source line read: a rejection entry holds a record of up to 1,000 KiB,
/// escaped (up to 6 bytes per byte for control characters) in JSON.
const MAX_SOURCE_LINE: usize = 8 << 20;
/// The lock a local lake's replay holds (`_tmp/replay.lock`).
const REPLAY_LOCK: &str = "replay";

/// Examples of each reason still rejected, printed.
const EXAMPLES: usize = 3;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    let window = args.window.at(telemetry::now_millis());
    let config = match (&location, args.sources.iter().any(|source| source.starts_with("s3://"))) {
        (Location::S3 { .. }, _) | (_, true) => Some(aws::load_config().await),
        _ => None,
    };
    let report = match &location {
        Location::Local(dir) => {
            anyhow::ensure!(
                args.database.is_none(),
                "--database needs an s3:// lake: Glue partitions point at S3"
            );
            // One replay at a time: two would each find an event missing and both
            // add it.
            let _lock = scratch::lock_lake(dir, REPLAY_LOCK, false)
                .with_context(|| format!("locking {}", dir.display()))?
                .ok_or_else(|| {
                    anyhow::anyhow!("another replay is running on {}: wait for it to finish", dir.display())
                })?;
            let report =
                replay_into(LocalDir::new(dir), Target::Directories, &args, window, config.as_ref(), None)
                    .await?;
            if args.dry_run {
                report
            } else {
                let (views, changes) = super::views::keep_current(dir, None)?;
                format!("{report}typed views: {views}\n{changes}")
            }
        }
        Location::S3 { bucket, prefix } => {
            let config = config.as_ref().expect("loaded above for an s3:// lake");
            let store = S3Store::new(aws::s3::s3_client(config), bucket, prefix);
            let catalog = args
                .database
                .as_ref()
                .map(|database| Catalog::new(catalog::glue_client(config), database, &args.table));
            if !args.dry_run {
                super::ensure_catalog_for_compacted(&store, args.database.as_deref()).await?;
            }
            let target = match &catalog {
                Some(catalog) => Target::Glue { store: &store, catalog },
                None => Target::Directories,
            };
            replay_into(store.clone(), target, &args, window, Some(config), Some(&store)).await?
        }
    };
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// What the first pass found.
#[derive(Default)]
struct Found {
    /// Events that pass today's rules, spooled.
    passing: u64,
    partitions: BTreeSet<Partition>,
    /// Reason code -> count, and a few examples (where, why).
    still_rejected: BTreeMap<String, (u64, Vec<String>)>,
    /// Lines that claim a wrapper's shape and are broken, or are too long to read.
    unreadable: Vec<String>,
    lines: u64,
}

impl Found {
    fn reject(&mut self, code: &str, example: String) {
        let (count, examples) = self.still_rejected.entry(code.to_owned()).or_default();
        *count += 1;
        if examples.len() < EXAMPLES {
            examples.push(example);
        }
    }
}

/// Where a replay finds each partition's files, and whom it tells about the
/// partitions it writes.
enum Target<'a> {
    /// The partitions' directories (`events/<partition>/`); no catalog.
    Directories,
    /// Where the Glue table locates each partition (a compacted one under
    /// `compacted/`): its keys are read there, new partitions are registered, and
    /// files written to a compacted partition are moved into its location
    /// ([`compactor::settle`]).
    Glue { store: &'a S3Store, catalog: &'a Catalog },
}

impl Target<'_> {
    /// The directory holding each of `partitions`' files.
    async fn directories(&self, partitions: &BTreeSet<Partition>) -> anyhow::Result<Vec<String>> {
        let Target::Glue { store, catalog } = self else {
            return Ok(partitions.iter().map(Partition::directory).collect());
        };
        let partitions: Vec<Partition> = partitions.iter().cloned().collect();
        let locations = catalog.locations(&partitions).await?;
        let lake_url = store.url("");
        partitions
            .iter()
            .map(|partition| match locations.get(partition) {
                Some(location) => Ok(compactor::location_dir(&lake_url, location, partition)?),
                None => Ok(partition.directory()),
            })
            .collect()
    }

    fn catalog(&self) -> Option<&Catalog> {
        match self {
            Target::Glue { catalog, .. } => Some(catalog),
            Target::Directories => None,
        }
    }
}

async fn replay_into<S: Storage>(
    storage: S,
    target: Target<'_>,
    args: &Args,
    window: TimeWindow,
    config: Option<&aws::SdkConfig>,
    observe_into: Option<&S3Store>,
) -> anyhow::Result<String> {
    let spool_file =
        scratch::new_file_in(storage.scratch_dir()?).context("creating the replay's spool file")?;
    let mut spool = Spool::new(spool_file.reopen()?);
    let mut found = Found::default();
    let mut names = Vec::new();
    for source in &args.sources {
        for input in inputs_of(source, config).await? {
            let index = u32::try_from(names.len()).context("too many sources")?;
            names.push(input.name());
            let bytes = input.open(config).await?;
            read_source(bytes, index, &names, window, &mut spool, &mut found)
                .with_context(|| format!("reading {}", names[index as usize]))?;
        }
    }
    spool.out.flush()?;
    let directories = target.directories(&found.partitions).await.context("locating the partitions")?;
    let in_lake = replay::keys_in(&storage, directories).await.context("reading the lake's keys")?;

    // Name the run after what it adds: the events not in the lake, in order.
    let mut digest = ContentDigest::default();
    let mut adding = 0_u64;
    let mut added_partitions = BTreeSet::new();
    let mut spooled = SpoolReader::open(&spool_file)?;
    while let Some((_, _, event)) = spooled.next_event()? {
        if let Some(partition) = adds(event, &in_lake)? {
            digest.add(event)?;
            adding += 1;
            added_partitions.insert(partition);
        }
    }
    let already = found.passing - adding;
    if args.dry_run {
        let mut out = report_head(&found, already, &names);
        out += &format!("dry run: would write {adding} events into {} partitions:\n", added_partitions.len());
        for partition in &added_partitions {
            out += &format!("  {}\n", partition.directory());
        }
        return Ok(out + &report_rejected(&found));
    }
    let limits = Limits {
        window,
        delete_stale_files: false,
        count_fields: observe_into.is_some(),
        ..Limits::default()
    };
    let mut writer = LakeWriter::new(storage, SourceId::from_digest(digest.finish()), limits);
    let mut spooled = SpoolReader::open(&spool_file)?;
    while let Some((index, line, event)) = spooled.next_event()? {
        if adds(event, &in_lake)?.is_some() {
            writer.push(event, Origin { source: &names[index as usize], line }).await?;
        }
    }
    let summary = writer.finish().await?;
    if let Some(store) = observe_into {
        // For the typed views the deployed compactor keeps.
        crate::views::publish::observe(store, &summary).await?;
    }
    let (registered, moved) = match &target {
        Target::Glue { store, catalog } => (
            catalog.register(&summary.touched).await?.created,
            compactor::settle(store, catalog, &summary.touched, &summary.keys).await?,
        ),
        Target::Directories => (0, 0),
    };
    let mut out = report_head(&found, already, &names);
    out += &report_written(&summary, registered, target.catalog());
    if moved > 0 {
        out += &format!("moved into compacted partitions: {moved} files\n");
    }
    Ok(out + &report_rejected(&found))
}

/// One input a source names, opened only when its turn comes.
enum Input {
    File(PathBuf),
    Object { bucket: String, key: String },
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Object { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// The input's bytes (an object is read whole, one at a time).
    async fn open(&self, config: Option<&aws::SdkConfig>) -> anyhow::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Input::File(path) => {
                Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
            }
            Input::Object { bucket, key } => {
                let config = config.context("no AWS configuration for an s3:// source")?;
                let store = S3Store::new(aws::s3::s3_client(config), bucket, "");
                Box::new(store.read_object(key).await?.body)
            }
        })
    }
}

/// The inputs a source names: a file, every file under a directory, or every
/// object under an `s3://bucket/prefix`.
async fn inputs_of(source: &str, config: Option<&aws::SdkConfig>) -> anyhow::Result<Vec<Input>> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let config = config.context("no AWS configuration for an s3:// source")?;
        let store = S3Store::new(aws::s3::s3_client(config), bucket, "");
        let keys = store.list_keys(prefix).await?;
        let inputs: Vec<Input> = keys
            .into_iter()
            .filter(|key| replayable_name(key))
            .map(|key| Input::Object { bucket: bucket.to_owned(), key })
            .collect();
        anyhow::ensure!(!inputs.is_empty(), "{source}: no object to replay there");
        return Ok(inputs);
    }
    let path = Path::new(source);
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, &mut files).with_context(|| format!("listing {source}"))?;
    } else {
        files.push(path.to_owned());
    }
    Ok(files.into_iter().map(Input::File).collect())
}

/// Names replay reads in a directory or prefix: not the lake's Parquet files,
/// the large records that rejection entries point to, or run work files.
fn replayable_name(key: &str) -> bool {
    let skipped = key.ends_with(".parquet") || key.ends_with(".record") || key.ends_with('/');
    !skipped && !key.split('/').any(|part| part == "_tmp")
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "_tmp" {
                walk(&path, files)?;
            }
        } else if replayable_name(&path.to_string_lossy()) {
            files.push(path);
        }
    }
    Ok(())
}

/// Pass one over one input: each line decoded, each event in it validated; the
/// passing ones spooled, the others counted with their reason.
fn read_source(
    input: Box<dyn Read + Send>,
    index: u32,
    names: &[String],
    window: TimeWindow,
    spool: &mut Spool,
    found: &mut Found,
) -> anyhow::Result<()> {
    let name = &names[index as usize];
    let mut reader = ndjson::decompressing_reader(input)?;
    let mut line = Vec::new();
    let mut number = 0_u64;
    loop {
        line.clear();
        let end = ndjson::next_line(&mut reader, &mut line, MAX_SOURCE_LINE)?;
        if end == LineEnd::Eof {
            return Ok(());
        }
        number += 1;
        found.lines += 1;
        if end == LineEnd::TooLong {
            ndjson::copy_rest_of_line(&mut reader, &mut io::sink())?;
            found.unreadable.push(format!("{name}:{number}: longer than {MAX_SOURCE_LINE} bytes"));
            continue;
        }
        if ndjson::is_blank(&line) {
            continue;
        }
        let decoded = match replay::decode_line(&line) {
            Ok(decoded) => decoded,
            Err(error) => {
                found.unreadable.push(format!("{name}:{number}: {error}"));
                continue;
            }
        };
        let record = match decoded.record {
            Held::Bytes(bytes) => bytes,
            Held::Stored(key) => {
                let why = format!("the record is stored at {key}: over the contract's 1,000 KiB");
                found.reject("too_large", format!("{name}:{number}: {why}"));
                continue;
            }
        };
        for event in replay::events_of(&record) {
            let checked = Event::parse_limited(event, MAX_RECORD_BYTES)
                .and_then(|parsed| window.check(parsed.time()).map(|()| parsed.partition().to_owned()));
            match checked {
                Ok(partition) => {
                    spool.write(index, number, event)?;
                    found.passing += 1;
                    found.partitions.insert(partition);
                }
                Err(rejection) => found.reject(rejection.code(), format!("{name}:{number}: {rejection}")),
            }
        }
    }
}

/// The events that pass, with where each came from: source index, line, length, bytes.
struct Spool {
    out: BufWriter<File>,
}

impl Spool {
    fn new(file: File) -> Self {
        Spool { out: BufWriter::new(file) }
    }

    fn write(&mut self, source: u32, line: u64, event: &[u8]) -> io::Result<()> {
        self.out.write_all(&source.to_le_bytes())?;
        self.out.write_all(&line.to_le_bytes())?;
        self.out.write_all(&(event.len() as u32).to_le_bytes())?;
        self.out.write_all(event)
    }
}

/// The spooled events, in order.
struct SpoolReader {
    reader: BufReader<File>,
    event: Vec<u8>,
}

impl SpoolReader {
    fn open(spool: &tempfile::NamedTempFile) -> io::Result<Self> {
        let mut file = spool.reopen()?;
        file.rewind()?;
        Ok(SpoolReader { reader: BufReader::with_capacity(1 << 20, file), event: Vec::new() })
    }

    /// The next event: its source index, line and bytes.
    fn next_event(&mut self) -> io::Result<Option<(u32, u64, &[u8])>> {
        let mut head = [0_u8; 16];
        match self.reader.read_exact(&mut head) {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            result => result?,
        }
        let [s0, s1, s2, s3, l0, l1, l2, l3, l4, l5, l6, l7, n0, n1, n2, n3] = head;
        self.event.resize(u32::from_le_bytes([n0, n1, n2, n3]) as usize, 0);
        self.reader.read_exact(&mut self.event)?;
        let line = u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
        Ok(Some((u32::from_le_bytes([s0, s1, s2, s3]), line, &self.event)))
    }
}

/// The partition of a spooled event the lake does not hold yet; `None` if it does.
fn adds(event: &[u8], in_lake: &HashSet<DedupeKey>) -> anyhow::Result<Option<Partition>> {
    let parsed =
        Event::parse(event).map_err(|rejection| anyhow::anyhow!("the spool file changed: {rejection}"))?;
    Ok((!in_lake.contains(&parsed.dedupe_key())).then(|| parsed.partition().to_owned()))
}

fn report_head(found: &Found, already: u64, names: &[String]) -> String {
    let rejected: u64 = found.still_rejected.values().map(|(count, _)| count).sum();
    format!(
        "replay: {} lines in {} inputs: {} events pass today's rules ({} already in the lake), {} still rejected, \
         {} lines unreadable\n",
        found.lines,
        names.len(),
        found.passing,
        already,
        rejected,
        found.unreadable.len(),
    )
}

fn report_written(summary: &Summary, registered: usize, catalog: Option<&Catalog>) -> String {
    let mut out = format!(
        "written: {} events into {} partitions ({} files){}\n",
        summary.written,
        summary.touched.len(),
        summary.files,
        if summary.duplicates > 0 {
            format!(", {} duplicates among the replayed", summary.duplicates)
        } else {
            String::new()
        },
    );
    if let Some(catalog) = catalog {
        out += &format!("registered: {registered} new partitions in {}\n", catalog.name());
    }
    if summary.rejected_total() > 0 {
        out += &format!("rejected while writing (kept under _rejected/): {:?}\n", summary.rejected);
    }
    out
}

fn report_rejected(found: &Found) -> String {
    let mut out = String::new();
    for (code, (count, examples)) in &found.still_rejected {
        out += &format!("still rejected, {code}: {count}\n");
        for example in examples {
            out += &format!("  {example}\n");
        }
    }
    for line in found.unreadable.iter().take(EXAMPLES) {
        out += &format!("unreadable: {line}\n");
    }
    out
}
