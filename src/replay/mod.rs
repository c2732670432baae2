//! Replay (CONTRACT section 5, `eventlake replay`): records that did not reach
//! the lake (Firehose's error output, the lake's `_rejected/` records, or events
//! fixed by hand) validated again with today's rules and written into the lake
//! through the normal writer, minus what the lake already holds, so that
//! replaying twice adds nothing.
//!
//! Three passes, so that memory holds only the target partitions' keys: the
//! sources are read once into a spool file of the events that now pass (with
//! where each came from; [`sources`], [`spool`]); the keys of the partitions they
//! belong to are read from the lake ([`decode::keys_in`]); the spool is read again
//! to name the run after exactly the events it adds (a replay never overwrites
//! another replay's files), then to write them.

pub mod decode;
pub mod sources;
pub mod spool;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write as _;
use std::path::PathBuf;

use crate::aws::{self, s3::S3Store};
use crate::catalog::{Catalog, CatalogError};
use crate::compaction::{self, CompactorError};
use crate::core::event::{DedupeKey, Event, TimeWindow};
use crate::core::partition::Partition;
use crate::lake::ndjson::ContentDigest;
use crate::lake::scratch;
use crate::lake::storage::{Storage, StorageError};
use crate::lake::writer::{LakeError, LakeWriter, Limits, Origin, SourceId, Summary};
use spool::{Spool, SpoolReader};

/// Examples kept of each reason still rejected.
pub const EXAMPLES: usize = 3;

/// Why a replay stopped (a record that does not pass is never one of these:
/// it is counted in [`Found`]).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An `s3://` source names no object.
    #[error("{0}: no object to replay there")]
    NoObjects(String),
    /// An `s3://` source without an AWS configuration to read it with.
    #[error("no AWS configuration for an s3:// source")]
    NoAwsConfig,
    #[error("more inputs than a replay numbers ({})", u32::MAX)]
    TooManyInputs,
    #[error("opening {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("listing {what}: {source}")]
    List { what: String, source: std::io::Error },
    #[error("reading {name}: {source}")]
    Read { name: String, source: std::io::Error },
    /// The spool file in the run's scratch directory.
    #[error("the replay's spool file: {0}")]
    Spool(std::io::Error),
    /// An event read back from the spool no longer parses.
    #[error("the spool file changed: {0}")]
    SpoolChanged(String),
    #[error("reading the lake's keys: {0}")]
    Keys(#[from] decode::KeysError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Compactor(#[from] CompactorError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Another replay holds the local lake's lock.
    #[error("another replay is running on {0}: wait for it to finish")]
    Busy(String),
    /// The local lake's lock could not be taken.
    #[error("locking {path}: {source}")]
    Lock { path: String, source: std::io::Error },
    /// The typed views could not be brought up to date after the replay.
    #[error("typed views: {0}")]
    Views(#[from] crate::views::ViewsError),
}

/// The lock a local lake's replay holds (`_tmp/replay.lock`): two replays would
/// each find an event missing and both add it.
pub const REPLAY_LOCK: &str = "replay";

/// Replays `sources` into the local lake at `dir` (the command line's and the
/// console's replay): one replay at a time, then, unless it is a dry run, the
/// lake's typed views brought up to date (their reports).
pub async fn into_local(
    dir: &std::path::Path,
    sources: &[String],
    options: Options,
    config: Option<&aws::SdkConfig>,
) -> Result<(Replayed, Option<Vec<crate::views::local::TypeReport>>), ReplayError> {
    let _lock = scratch::lock_lake(dir, REPLAY_LOCK, false)
        .map_err(|source| ReplayError::Lock { path: dir.display().to_string(), source })?
        .ok_or_else(|| ReplayError::Busy(dir.display().to_string()))?;
    let storage = crate::lake::storage::LocalDir::new(dir);
    let replayed = replay(storage, &Target::Directories, sources, options, config, None).await?;
    let views = if options.dry_run { None } else { Some(crate::views::local::refresh(dir, None)?) };
    Ok((replayed, views))
}

/// What the first pass found.
#[derive(Debug, Default)]
pub struct Found {
    /// Events that pass today's rules, spooled.
    pub passing: u64,
    pub partitions: BTreeSet<Partition>,
    /// Reason code -> count, and a few examples (where, why).
    pub still_rejected: BTreeMap<String, (u64, Vec<String>)>,
    /// Lines that claim a wrapper's shape and are broken, or are too long to read.
    pub unreadable: Vec<String>,
    pub lines: u64,
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
pub enum Target<'a> {
    /// The partitions' directories (`events/<partition>/`); no catalog.
    Directories,
    /// Where the Glue table locates each partition (a compacted one under
    /// `compacted/`): its keys are read there, new partitions are registered, and
    /// files written to a compacted partition are moved into its location
    /// ([`compaction::settle`]).
    Glue { store: &'a S3Store, catalog: &'a Catalog },
}

impl Target<'_> {
    /// The directory holding each of `partitions`' files.
    async fn directories(&self, partitions: &BTreeSet<Partition>) -> Result<Vec<String>, ReplayError> {
        let Target::Glue { store, catalog } = self else {
            return Ok(partitions.iter().map(Partition::directory).collect());
        };
        let partitions: Vec<Partition> = partitions.iter().cloned().collect();
        let locations = catalog.locations(&partitions).await?;
        let lake_url = store.url("");
        partitions
            .iter()
            .map(|partition| match locations.get(partition) {
                Some(location) => Ok(compaction::location_dir(&lake_url, location, partition)?),
                None => Ok(partition.directory()),
            })
            .collect()
    }

    /// The catalog the replay registers partitions in, if any.
    pub fn catalog(&self) -> Option<&Catalog> {
        match self {
            Target::Glue { catalog, .. } => Some(catalog),
            Target::Directories => None,
        }
    }
}

/// How a replay runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The plausibility window the events are checked against.
    pub window: TimeWindow,
    /// Find what would be written, write nothing.
    pub dry_run: bool,
}

/// What a replay did.
#[derive(Debug)]
pub struct Replayed {
    pub found: Found,
    /// The inputs read, in order (`source:line` examples name them).
    pub inputs: Vec<String>,
    /// Passing events the lake holds already.
    pub already: u64,
    /// Passing events the lake lacks: written, or with a dry run, to write.
    pub adding: u64,
    pub added_partitions: BTreeSet<Partition>,
    /// What was written (none for a dry run).
    pub written: Option<Written>,
}

/// What a replay that wrote did.
#[derive(Debug)]
pub struct Written {
    pub summary: Summary,
    /// New partitions registered in the catalog.
    pub registered: usize,
    /// Files moved into compacted partitions' locations.
    pub moved: usize,
}

/// Replays `sources` into the lake in `storage` (see the module's documentation).
/// `observe_into`: an S3 lake, where the writer's field counts are stored for the
/// typed views the deployed compactor keeps.
pub async fn replay<S: Storage>(
    storage: S,
    target: &Target<'_>,
    sources: &[String],
    options: Options,
    config: Option<&aws::SdkConfig>,
    observe_into: Option<&S3Store>,
) -> Result<Replayed, ReplayError> {
    let spool_file = scratch::new_file_in(storage.scratch_dir()?).map_err(ReplayError::Spool)?;
    let mut spool = Spool::new(spool_file.reopen().map_err(ReplayError::Spool)?);
    let mut found = Found::default();
    let mut inputs = Vec::new();
    for source in sources {
        for input in sources::inputs_of(source, config).await? {
            let index = u32::try_from(inputs.len()).map_err(|_| ReplayError::TooManyInputs)?;
            inputs.push(input.name());
            let bytes = input.open(config).await?;
            sources::read_source(bytes, index, &inputs, options.window, &mut spool, &mut found)
                .map_err(|source| ReplayError::Read { name: inputs[index as usize].clone(), source })?;
        }
    }
    spool.out.flush().map_err(ReplayError::Spool)?;
    let directories = target.directories(&found.partitions).await?;
    let in_lake = decode::keys_in(&storage, directories).await?;

    // Name the run after what it adds: the events not in the lake, in order.
    let mut digest = ContentDigest::default();
    let mut adding = 0_u64;
    let mut added_partitions = BTreeSet::new();
    let mut spooled = SpoolReader::open(&spool_file).map_err(ReplayError::Spool)?;
    while let Some((_, _, event)) = spooled.next_event().map_err(ReplayError::Spool)? {
        if let Some(partition) = adds(event, &in_lake)? {
            digest.add(event).map_err(ReplayError::Spool)?;
            adding += 1;
            added_partitions.insert(partition);
        }
    }
    let already = found.passing - adding;
    let mut replayed = Replayed { found, inputs, already, adding, added_partitions, written: None };
    if options.dry_run {
        return Ok(replayed);
    }
    let limits = Limits {
        window: options.window,
        delete_stale_files: false,
        count_fields: observe_into.is_some(),
        ..Limits::default()
    };
    let mut writer = LakeWriter::new(storage, SourceId::from_digest(digest.finish()), limits);
    let mut spooled = SpoolReader::open(&spool_file).map_err(ReplayError::Spool)?;
    while let Some((index, line, event)) = spooled.next_event().map_err(ReplayError::Spool)? {
        if adds(event, &in_lake)?.is_some() {
            writer.push(event, Origin { source: &replayed.inputs[index as usize], line }).await?;
        }
    }
    let summary = writer.finish().await?;
    if let Some(store) = observe_into {
        // For the typed views the deployed compactor keeps.
        crate::views::publish::observe(store, &summary).await?;
    }
    let (registered, moved) = match target {
        Target::Glue { store, catalog } => (
            catalog.register(&summary.touched).await?.created,
            compaction::settle(store, catalog, &summary.touched, &summary.keys).await?,
        ),
        Target::Directories => (0, 0),
    };
    replayed.written = Some(Written { summary, registered, moved });
    Ok(replayed)
}

/// The partition of a spooled event the lake does not hold yet; `None` if it does.
fn adds(event: &[u8], in_lake: &HashSet<DedupeKey>) -> Result<Option<Partition>, ReplayError> {
    let parsed = Event::parse(event).map_err(|rejection| ReplayError::SpoolChanged(rejection.to_string()))?;
    Ok((!in_lake.contains(&parsed.dedupe_key())).then(|| parsed.partition().to_owned()))
}
