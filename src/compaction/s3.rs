//! Compaction of an S3 lake, and the rule every writer to it follows.
//!
//! S3 cannot swap two directories, so on S3 a partition's files are wherever its
//! Glue partition's location says: first `events/<partition>/`, where the writer
//! puts them; after a compaction `compacted/<partition>/compacted-<digest>/`. A
//! compaction ([`compact_lake`]):
//!
//! 1. lists the partition's location, and leaves it alone if it is compact already,
//!    received a file within `older_than`, or the files its last compaction
//!    superseded are still in their grace period;
//! 2. merges its files ([`super::merge`], on local copies) and uploads the
//!    outputs and a manifest (`_inputs.json`; Athena skips names starting with
//!    `_`) naming every writer file whose rows the new location holds, under a new
//!    location named after the inputs;
//! 3. lists the old location again: a file that arrived meanwhile means the
//!    partition was not closed after all; the new location is deleted (unless a
//!    concurrent run made it the partition's location) and the partition is left
//!    for the next run;
//! 4. points the Glue partition at the new location in one `UpdatePartition`,
//!    recording the old one and the time ([`crate::catalog::SUPERSEDED_PARAMETER`]):
//!    Athena reads the old files or the new ones, never both, never neither;
//! 5. hands over ([`hand_over`]) any file that reached the old location after
//!    step 3 (one the manifest does not name) by copying it into the new one;
//! 6. on a later run, once `grace` has passed since the switch, hands over again,
//!    deletes the old location's files and removes the record. Queries planned
//!    before the switch still find the old files meanwhile. Every run does this
//!    for every partition with a record, whatever its date.
//!
//! A run stopped anywhere is finished by the next: before step 4 nothing changed
//! for readers; after it, the record says what is left to do.
//!
//! A writer ([`settle`]) writes into `events/<partition>/` as always, registers the
//! partition, then, for a partition whose location is elsewhere, copies its new
//! files there (unless the location's manifest says their rows are in it already),
//! checks the location again (a compaction may have switched it meanwhile) and
//! deletes them from `events/`. With steps 5 and 6, a file written into an old
//! location at any moment ends up in the current one, once.
//!
//! Nothing else reads `events/<partition>/` of a partition located elsewhere, so
//! every run also sweeps it: a file there that the location does not hold (written
//! by a run without a catalog, or by a writer whose message expired in its
//! dead-letter queue) is handed over whatever its age, and counted as stranded
//! once it is older than any writer's run ([`STRANDED_AFTER`]). A writer that
//! settles a file marks the partition (`_settled/<partition>/<file>`): a marked
//! partition is compacted again whatever its date, so one row per key holds in it
//! again once it is quiet.
//!
//! One compaction runs at a time per lake: each run holds the lake's lease
//! ([`lease`]), the scheduled Lambda and `eventlake compact` alike, and renews it
//! before each partition and each switch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::lease;

use super::merge::{self as compact, CompactError, Merged, COMPACTED_PREFIX};
use crate::aws::s3::{ListedObject, S3Store};
use crate::catalog::{Catalog, CatalogError, PartitionLocation, Superseded};
use crate::core::partition::{Partition, EVENTS_DIR};
use crate::core::timestamp::CreatedDate;
use crate::lake::storage::{Storage, StorageError};

/// The directory under the lake root that holds compacted partitions.
pub const COMPACTED_DIR: &str = "compacted";
/// The manifest of a compacted location: the writer files whose rows it holds.
pub const MANIFEST: &str = "_inputs.json";
/// Where a writer marks a partition it settled a file into:
/// `_settled/<partition>/<file name>`, an empty object (outside `events/`, where
/// Athena reads).
pub const SETTLED_DIR: &str = "_settled";
/// A file in `events/` of a partition located elsewhere is stranded once it is
/// older than this: the longest a writer's run lasts (a Lambda's 15-minute limit),
/// so no writer is still settling it.
pub const STRANDED_AFTER: Duration = Duration::from_secs(15 * 60);
/// How often a writer follows a partition that moved while it copied into it.
const SETTLE_ATTEMPTS: usize = 5;
/// S3 requests a compaction keeps in flight (downloads, uploads, deletes): one
/// request waits tens of milliseconds, most of it for S3.
const REQUESTS_IN_FLIGHT: usize = 8;

/// A compaction or settling failure; what was done before it stays consistent.
#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Compact(#[from] CompactError),
    /// A Glue location that is not one this lake's writer or compactor makes.
    #[error("partition {partition} is located at {location}: {why}")]
    Location { partition: String, location: String, why: &'static str },
    #[error("the manifest {key}: {source}")]
    Manifest { key: String, source: serde_json::Error },
    #[error("local work directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("partition {partition} kept moving while files were copied into it")]
    Unsettled { partition: String },
    /// A new location held files besides the compaction's outputs and manifest
    /// after its upload: another runner is writing there. Not switched.
    #[error("{dir} holds files this compaction did not write, not switched to: {names:?}")]
    Foreign { dir: String, names: Vec<String> },
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
}

impl CompactorError {
    /// A stable name for metrics and alarms (the `Reason` dimension).
    pub fn code(&self) -> &'static str {
        match self {
            CompactorError::Storage(_) => "storage",
            CompactorError::Catalog(CatalogError::Moved { .. }) => "moved",
            CompactorError::Catalog(_) => "catalog",
            CompactorError::Compact(_) => "merge",
            CompactorError::Location { .. } => "location",
            CompactorError::Manifest { .. } => "manifest",
            CompactorError::Io { .. } => "local_disk",
            CompactorError::Unsettled { .. } => "unsettled",
            CompactorError::Foreign { .. } => "foreign_files",
            CompactorError::Lease(_) => "lease",
        }
    }
}

/// The directory of the lake (relative to its root `lake_url`, `s3://b/p/`) that
/// a Glue `location` of `partition` names: `events/<partition>` or
/// `compacted/<partition>/compacted-<32 hex digits>`. Anything else is refused:
/// the location becomes keys the compactor lists, copies and deletes.
pub fn location_dir(lake_url: &str, location: &str, partition: &Partition) -> Result<String, CompactorError> {
    let refuse = |why| CompactorError::Location {
        partition: partition.to_string(),
        location: location.to_owned(),
        why,
    };
    let relative = location
        .strip_prefix(lake_url.trim_end_matches('/'))
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| refuse("not under the lake"))?
        .trim_end_matches('/');
    if relative == partition.directory() {
        return Ok(relative.to_owned());
    }
    let stem = relative
        .strip_prefix(&format!("{COMPACTED_DIR}/{partition}/"))
        .ok_or_else(|| refuse("neither the partition's directory nor a compaction of it"))?;
    if !is_compaction_dir_name(stem) {
        return Err(refuse("not a compaction's directory name"));
    }
    Ok(relative.to_owned())
}

/// Whether `name` is a compaction's directory name: `compacted-<32 hex digits>`.
fn is_compaction_dir_name(name: &str) -> bool {
    let digest = name.strip_prefix(COMPACTED_PREFIX).unwrap_or_default();
    digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

fn dir_url(store: &S3Store, dir: &str) -> String {
    format!("{}/", store.url(dir))
}

/// What [`compact_lake`] is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Only partitions with no file newer than this.
    pub older_than: Duration,
    /// The size of the files written.
    pub target_bytes: usize,
    /// List what would be compacted, change nothing.
    pub dry_run: bool,
    /// The time the run started, Unix milliseconds.
    pub now_millis: i64,
    /// Only partitions of this day or later are compacted (`None`: every day). A
    /// scheduled run looks back a few days, not over the whole lake's history.
    pub created_since: Option<CreatedDate>,
    /// How long superseded files stay after a switch, for queries planned before it.
    pub grace: Duration,
}

/// What became of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Merged and switched: its input files and bytes, the merge, and the
    /// writers' files the new location holds.
    Compacted { files: usize, bytes: u64, merged: Merged, holds: Vec<String> },
    /// `dry_run`: would be compacted.
    Planned { files: usize, bytes: u64 },
    /// Only compaction outputs, or one file.
    AlreadyCompact,
    /// A file within `older_than`, or the files its last compaction superseded
    /// are still in their grace period.
    TooRecent,
    /// A file arrived while it was merged: left for the next run.
    ChangedMeanwhile,
    /// Not started, or not switched: the run's time was up. Left for the next run.
    Deferred,
    /// Failed; what it did is consistent (see the module's documentation), and
    /// the next run tries again. The error's [`CompactorError::code`] and message.
    Failed { reason: &'static str, message: String },
}

/// What a compaction run did to its partitions, by outcome: the CLI's summary,
/// and the Lambda's log line and EMF metrics
/// ([`crate::lambda::metrics::compactor_documents`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Compacted, or with `dry_run` to compact.
    pub partitions_compacted: u64,
    pub partitions_already_compact: u64,
    pub partitions_too_recent: u64,
    /// Changed while merged, or not started for lack of time: the next run's.
    pub partitions_deferred: u64,
    /// Reason code → partitions.
    pub partitions_failed: BTreeMap<&'static str, u64>,
    pub files_in: u64,
    pub files_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub duplicates_removed: u64,
    /// Files found in `events/` of a partition located elsewhere, older than
    /// [`STRANDED_AFTER`], and handed over to the location.
    pub files_stranded: u64,
    /// The typed views after the run ([`crate::views::publish`]): new fields
    /// and widenings, widenings alone, and types with fields left out of their
    /// view for want of columns.
    pub schema_changes: u64,
    pub fields_widened: u64,
    pub types_at_column_budget: u64,
}

impl Tally {
    /// The tally of a run's outcomes.
    pub fn of(run: &Run) -> Tally {
        let mut tally = Tally { files_stranded: run.files_stranded, ..Tally::default() };
        for (_, outcome) in &run.outcomes {
            tally.add(outcome);
        }
        tally
    }

    pub fn partitions_failed_total(&self) -> u64 {
        self.partitions_failed.values().sum()
    }

    pub fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Compacted { files, bytes, merged, .. } => {
                self.add(&Outcome::Planned { files: *files, bytes: *bytes });
                self.files_out += merged.files.len() as u64;
                self.bytes_out += merged.bytes_out;
                self.rows_in += merged.rows_in;
                self.rows_out += merged.rows_out;
                self.duplicates_removed += merged.duplicates;
            }
            Outcome::Planned { files, bytes } => {
                self.partitions_compacted += 1;
                self.files_in += *files as u64;
                self.bytes_in += bytes;
            }
            Outcome::AlreadyCompact => self.partitions_already_compact += 1,
            Outcome::TooRecent => self.partitions_too_recent += 1,
            Outcome::ChangedMeanwhile | Outcome::Deferred => self.partitions_deferred += 1,
            Outcome::Failed { reason, .. } => *self.partitions_failed.entry(reason).or_default() += 1,
        }
    }
}

impl Outcome {
    /// How logs and reports name it.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Compacted { .. } => "compacted",
            Outcome::Planned { .. } => "planned",
            Outcome::AlreadyCompact => "already compact",
            Outcome::TooRecent => "too recent",
            Outcome::ChangedMeanwhile => "changed meanwhile",
            Outcome::Deferred => "deferred",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// What a run did: each partition's outcome, and the stranded files it handed over.
#[derive(Debug, Default)]
pub struct Run {
    pub outcomes: Vec<(Partition, Outcome)>,
    /// See [`Tally::files_stranded`].
    pub files_stranded: u64,
}

/// Compacts the partitions of the Glue table of the lake in `store` (see the
/// module's documentation), one at a time, under `lease` (none only for a dry
/// run, which changes nothing). A partition that fails is reported and the others
/// go on; once `keep_going` says no, or the lease is lost, the partitions not
/// started are deferred, and one merged but not yet switched is abandoned. Fails
/// whole only when the lake cannot be listed.
pub async fn compact_lake(
    store: &S3Store,
    catalog: &Catalog,
    options: Options,
    lease: Option<&lease::Lease>,
    keep_going: impl Fn() -> bool,
) -> Result<Run, CompactorError> {
    let scratch = store.scratch_dir()?.to_owned();
    let sweep = if options.dry_run { Sweep::default() } else { Sweep::read(store).await? };
    let mut run = Run::default();
    let allowance = Allowance { lease, keep_going: &keep_going, lease_lost: std::cell::Cell::new(false) };
    for found in in_run_order(catalog.partition_locations().await?, options.now_millis) {
        let marked = sweep.settled.get(&found.partition);
        let in_window = options.created_since.is_none_or(|since| found.partition.created_date >= since)
            || marked.is_some();
        let stranded = sweep.stranded(store, &found);
        if !in_window && found.superseded.is_none() && stranded.is_empty() {
            continue;
        }
        let work = async {
            if !allowance.renewed().await? {
                return Ok(Some(Outcome::Deferred));
            }
            run.files_stranded += hand_over_stranded(store, &found, stranded, options).await?;
            finish_and_compact(store, catalog, &found, options, &scratch, in_window, &allowance).await
        };
        let outcome = match work.await {
            Ok(Some(outcome)) => outcome,
            Ok(None) => continue,
            Err(error) => {
                let message = crate::telemetry::error_chain(&error);
                tracing::error!(partition = %found.partition, reason = error.code(), error = %message, "partition not compacted");
                Outcome::Failed { reason: error.code(), message }
            }
        };
        if let (Some(markers), Outcome::Compacted { .. } | Outcome::AlreadyCompact) = (marked, &outcome) {
            let dir = format!("{SETTLED_DIR}/{}", found.partition);
            if let Err(error) = delete_names(store, &dir, markers.iter().cloned()).await {
                tracing::warn!(partition = %found.partition, error = %crate::telemetry::error_chain(&error), "settled markers not removed; the partition is compacted again next run");
            }
        }
        tracing::info!(partition = %found.partition, outcome = outcome.name(), "partition");
        run.outcomes.push((found.partition, outcome));
    }
    Ok(run)
}

/// What one listing of `events/` and one of `_settled/` found, at the start of a run.
#[derive(Debug, Default)]
struct Sweep {
    /// The writer's files in `events/<partition>/`, by partition.
    events: HashMap<Partition, Vec<ListedObject>>,
    /// The names marked in `_settled/<partition>/`, by partition.
    settled: HashMap<Partition, Vec<String>>,
}

impl Sweep {
    async fn read(store: &S3Store) -> Result<Sweep, CompactorError> {
        let mut sweep = Sweep::default();
        for object in store.list_tree(EVENTS_DIR).await? {
            if let Some((partition, name)) = in_partition(&object.name) {
                if name.ends_with(".parquet") {
                    let listed = ListedObject { name: name.to_owned(), ..object.clone() };
                    sweep.events.entry(partition).or_default().push(listed);
                }
            }
        }
        for object in store.list_tree(SETTLED_DIR).await? {
            if let Some((partition, name)) = in_partition(&object.name) {
                sweep.settled.entry(partition).or_default().push(name.to_owned());
            }
        }
        Ok(sweep)
    }

    /// The files in `events/` of `found`'s partition that nobody else will move:
    /// none when the partition is located there, or when that is the location its
    /// last switch superseded ([`finish_switch`] hands those over).
    fn stranded(&self, store: &S3Store, found: &PartitionLocation) -> &[ListedObject] {
        let lake_url = store.url("");
        let events_dir = found.partition.directory();
        let located_at = |location: &str| location_dir(&lake_url, location, &found.partition).ok();
        let elsewhere = located_at(&found.location).is_some_and(|dir| dir != events_dir)
            && found.superseded.as_ref().and_then(|s| located_at(&s.location)) != Some(events_dir);
        match self.events.get(&found.partition) {
            Some(files) if elsewhere => files,
            _ => &[],
        }
    }
}

/// The partition and the file name of a path `event_type=<t>/created_date=<d>/<name>`.
fn in_partition(path: &str) -> Option<(Partition, &str)> {
    in_partition_path(path).filter(|(_, name)| !name.is_empty() && !name.contains('/'))
}

/// Marks `partition` as holding the writer file `name` settled into its compacted
/// location: a compaction merges it again whatever its date.
async fn mark_settled(store: &S3Store, partition: &Partition, name: &str) -> Result<(), CompactorError> {
    Ok(store.put(&format!("{SETTLED_DIR}/{partition}/{name}"), Vec::new()).await?)
}

/// Hands the stranded files of `found` over to its location (marked, as a
/// writer's settled files are) and deletes them from `events/`: returns how many
/// of them were older than [`STRANDED_AFTER`].
async fn hand_over_stranded(
    store: &S3Store,
    found: &PartitionLocation,
    stranded: &[ListedObject],
    options: Options,
) -> Result<u64, CompactorError> {
    if stranded.is_empty() {
        return Ok(0);
    }
    let (from_dir, to_dir) =
        (found.partition.directory(), location_dir(&store.url(""), &found.location, &found.partition)?);
    for object in stranded {
        mark_settled(store, &found.partition, &object.name).await?;
    }
    let handed = hand_over(store, &found.partition, &from_dir, &to_dir).await?;
    let old = |object: &&ListedObject| {
        object.last_modified_millis.is_some_and(|modified| {
            options.now_millis.saturating_sub(modified) >= STRANDED_AFTER.as_millis() as i64
        })
    };
    let counted =
        stranded.iter().filter(old).filter(|object| handed.copied.contains(&object.name)).count() as u64;
    if counted > 0 {
        tracing::warn!(partition = %found.partition, files = counted, "stranded files handed over to the partition's location");
    }
    delete_names(store, &from_dir, handed.held_here).await?;
    Ok(counted)
}

/// The partitions in the order a run takes them: by day and type, starting at
/// one that moves on by one every hour. A partition that outlasts a run's time
/// cannot keep the ones after it waiting: the next runs start past it (they are
/// counted `deferred` meanwhile).
fn in_run_order(mut found: Vec<PartitionLocation>, now_millis: i64) -> Vec<PartitionLocation> {
    found.sort_by(|a, b| {
        (a.partition.created_date, &a.partition.event_type)
            .cmp(&(b.partition.created_date, &b.partition.event_type))
    });
    if !found.is_empty() {
        let start = now_millis.div_euclid(3_600_000).rem_euclid(found.len() as i64) as usize;
        found.rotate_left(start);
    }
    found
}

/// Finishes the partition's last switch (hands over, and deletes once the grace
/// period is over), then compacts it if it is in the window. `None`: only the
/// switch was finished, the partition is outside the window.
async fn finish_and_compact(
    store: &S3Store,
    catalog: &Catalog,
    found: &PartitionLocation,
    options: Options,
    scratch: &Path,
    in_window: bool,
    allowance: &Allowance<'_>,
) -> Result<Option<Outcome>, CompactorError> {
    if let Some(superseded) = &found.superseded {
        if options.dry_run {
            return Ok(in_window.then_some(Outcome::TooRecent));
        }
        let deleted =
            finish_switch(store, catalog, &found.partition, superseded, &found.location, options).await?;
        if !deleted {
            return Ok(in_window.then_some(Outcome::TooRecent));
        }
    }
    if !in_window {
        return Ok(None);
    }
    compact_partition(store, catalog, found, options, scratch, allowance).await.map(Some)
}

/// A local work directory, removed when dropped, whatever happened in it.
struct WorkDir(PathBuf);

impl WorkDir {
    /// An empty directory at `path` (what a stopped run left there removed).
    fn fresh(path: PathBuf) -> Result<Self, CompactorError> {
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io_at(&path))?;
        }
        std::fs::create_dir_all(&path).map_err(io_at(&path))?;
        Ok(WorkDir(path))
    }
}

/// Where the catalog locates a partition (a directory of the lake) and the
/// Parquet files there.
async fn location_files(
    store: &S3Store,
    found: &PartitionLocation,
) -> Result<(String, Vec<ListedObject>), CompactorError> {
    let dir = location_dir(&store.url(""), &found.location, &found.partition)?;
    let listed = store
        .list_objects(&dir)
        .await?
        .into_iter()
        .filter(|object| object.name.ends_with(".parquet"))
        .collect();
    Ok((dir, listed))
}

/// Downloads the files `listed` in the lake's `dir` into the local `into`
/// (created), several at once.
async fn download(
    store: &S3Store,
    dir: &str,
    listed: &[ListedObject],
    into: &Path,
) -> Result<(), CompactorError> {
    std::fs::create_dir_all(into).map_err(io_at(into))?;
    let downloads = listed.iter().map(|object| (format!("{dir}/{}", object.name), into.join(&object.name)));
    in_parallel(downloads, |(key, path)| {
        let store = store.clone();
        async move { store.download(&key, &path).await }
    })
    .await
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> CompactorError {
    let path = path.to_owned();
    move |source| CompactorError::Io { path, source }
}

async fn compact_partition(
    store: &S3Store,
    catalog: &Catalog,
    found: &PartitionLocation,
    options: Options,
    scratch: &Path,
    allowance: &Allowance<'_>,
) -> Result<Outcome, CompactorError> {
    let partition = &found.partition;
    let (dir, listed) = location_files(store, found).await?;
    if compact::is_compact(listed.iter().map(|object| object.name.as_str())) {
        return Ok(Outcome::AlreadyCompact);
    }
    let newest =
        listed.iter().filter_map(|object| object.last_modified_millis).max().unwrap_or(options.now_millis);
    if options.now_millis.saturating_sub(newest) < options.older_than.as_millis() as i64 {
        return Ok(Outcome::TooRecent);
    }
    let (files, bytes) = (listed.len(), listed.iter().map(|object| object.size).sum());
    if options.dry_run {
        return Ok(Outcome::Planned { files, bytes });
    }

    // Merge local copies.
    let work =
        WorkDir::fresh(scratch.join(format!("compact-{}-{}", partition.event_type, partition.created_date)))?;
    let inputs_dir = work.0.join("inputs");
    download(store, &dir, &listed, &inputs_dir).await?;
    let Some(prepared) = compact::prepare(&inputs_dir, &work.0, options.target_bytes)? else {
        return Ok(Outcome::AlreadyCompact);
    };
    let new_dir = format!("{COMPACTED_DIR}/{partition}/{}", prepared.stem());
    // The directory is named after the inputs, so a run of the same inputs that
    // stopped before its switch, with another target size or another build, may
    // have left parts there that this run does not write: cleared first.
    let stale = store.list_objects(&new_dir).await?.into_iter().map(|object| object.name);
    delete_names(store, &new_dir, stale).await?;
    let outputs: Vec<String> = prepared
        .merged
        .files
        .iter()
        .map(|path| path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned())
        .collect();
    let uploads = outputs
        .iter()
        .zip(&prepared.merged.files)
        .map(|(name, path)| (format!("{new_dir}/{name}"), path.clone()));
    in_parallel(uploads, |(key, path)| {
        let store = store.clone();
        async move { store.put_file(&key, &path).await }
    })
    .await?;
    // The writer files whose rows the new location holds: the inputs, and what
    // the inputs held if they are a compaction's outputs.
    let mut holds: BTreeSet<String> = listed.iter().map(|object| object.name.clone()).collect();
    if dir.starts_with(COMPACTED_DIR) {
        holds.extend(read_manifest(store, &dir).await?.holds);
    }
    let manifest = Manifest { from: found.location.clone(), holds: holds.into_iter().collect() };
    let holds = manifest.holds.clone();
    store.put(&format!("{new_dir}/{MANIFEST}"), serde_json::to_vec(&manifest).unwrap_or_default()).await?;
    let merged = prepared.merged.clone();
    drop(work);
    // Before a switch the directory holds exactly this run's outputs and manifest.
    let expected: BTreeSet<&str> = outputs.iter().map(String::as_str).chain([MANIFEST]).collect();
    let foreign: Vec<String> = store
        .list_objects(&new_dir)
        .await?
        .into_iter()
        .map(|object| object.name)
        .filter(|name| !expected.contains(name.as_str()))
        .collect();
    if !foreign.is_empty() {
        return Err(CompactorError::Foreign { dir: store.url(&new_dir), names: foreign });
    }

    // Switch, unless the partition received a file meanwhile or time is up.
    let now_listed: BTreeSet<String> = store
        .list_objects(&dir)
        .await?
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    let merged_names: BTreeSet<String> = listed.iter().map(|object| object.name.clone()).collect();
    let outcome = if now_listed != merged_names {
        Outcome::ChangedMeanwhile
    } else if !allowance.renewed().await? {
        Outcome::Deferred
    } else {
        let new_location = dir_url(store, &new_dir);
        let switched_at = crate::telemetry::now_millis();
        catalog.switch_location(partition, &found.location, &new_location, switched_at).await?;
        hand_over(store, partition, &dir, &new_dir).await?;
        return Ok(Outcome::Compacted { files, bytes, merged, holds });
    };
    // Abandoned: the new location goes, unless a run at the same time made it
    // the partition's location.
    let current = catalog.locations(std::slice::from_ref(partition)).await?.remove(partition);
    if current.is_none_or(|location| {
        location_dir(&store.url(""), &location, partition).ok() != Some(new_dir.clone())
    }) {
        let names = store.list_objects(&new_dir).await?.into_iter().map(|object| object.name);
        delete_names(store, &new_dir, names).await?;
    }
    Ok(outcome)
}

/// What lets a run go on: time left, and the lease still its own.
struct Allowance<'a> {
    lease: Option<&'a lease::Lease>,
    keep_going: &'a dyn Fn() -> bool,
    lease_lost: std::cell::Cell<bool>,
}

impl Allowance<'_> {
    /// Whether the run may start a partition, or switch one, now: there is time
    /// left, and the lease is renewed (`false` from the moment another runner
    /// took it over).
    async fn renewed(&self) -> Result<bool, CompactorError> {
        if self.lease_lost.get() || !(self.keep_going)() {
            return Ok(false);
        }
        let Some(lease) = self.lease else { return Ok(true) };
        match lease.renew(crate::telemetry::now_millis()).await {
            Ok(()) => Ok(true),
            Err(error @ lease::LeaseError::Lost { .. }) => {
                tracing::error!(error = %error, "compaction stopped");
                self.lease_lost.set(true);
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// The newest complete compaction of each partition in a listing of `compacted/`
/// ([`S3Store::list_tree`]): the directory (`compacted/<partition>/compacted-…`)
/// whose manifest is the newest (a compaction writes its manifest after its
/// outputs, so a directory without one is a run that stopped before). What
/// `catalog repair` locates a partition at when the Glue table lost it.
pub fn newest_compactions(listing: &[ListedObject]) -> BTreeMap<Partition, String> {
    let mut newest: BTreeMap<Partition, (Option<i64>, String)> = BTreeMap::new();
    for object in listing {
        let Some((partition, rest)) = in_partition_path(&object.name) else { continue };
        let Some((stem, MANIFEST)) = rest.split_once('/') else { continue };
        if !is_compaction_dir_name(stem) {
            continue;
        }
        let candidate = (object.last_modified_millis, format!("{COMPACTED_DIR}/{partition}/{stem}"));
        match newest.get(&partition) {
            Some(current) if *current >= candidate => {}
            _ => {
                newest.insert(partition, candidate);
            }
        }
    }
    newest.into_iter().map(|(partition, (_, dir))| (partition, dir)).collect()
}

/// The partition of a path `event_type=<t>/created_date=<d>/<rest>`, and the rest.
fn in_partition_path(path: &str) -> Option<(Partition, &str)> {
    let mut parts = path.splitn(3, '/');
    let (type_dir, date_dir, rest) = (parts.next()?, parts.next()?, parts.next()?);
    Some((Partition::from_directories(type_dir, date_dir)?, rest))
}

/// The manifest a compaction leaves in its new location.
#[derive(serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// The location the inputs were read from.
    from: String,
    /// The names of the writer's files whose rows the location holds.
    holds: Vec<String>,
}

/// The files of a partition where the catalog locates it, counted as a
/// compaction counts what it merges (their first copies), without writing
/// anything: what the typed views need of a partition no writer or compaction
/// counted (a lake from before them). Its counts and the writers' files they
/// hold (a compacted location's manifest, else the files themselves).
pub async fn count_partition(
    store: &S3Store,
    found: &PartitionLocation,
    scratch: &Path,
) -> Result<(crate::views::stats::PartitionStats, Vec<String>), CompactorError> {
    let partition = &found.partition;
    let (dir, listed) = location_files(store, found).await?;
    let work =
        WorkDir::fresh(scratch.join(format!("count-{}-{}", partition.event_type, partition.created_date)))?;
    download(store, &dir, &listed, &work.0).await?;
    let inputs: Vec<(String, std::path::PathBuf)> =
        listed.iter().map(|object| (object.name.clone(), work.0.join(&object.name))).collect();
    let mut stats = crate::views::stats::PartitionStats::default();
    compact::read_first_copies(&inputs, |chunk| crate::views::stats::observe_chunk(&mut stats, chunk))?;
    let mut holds: Vec<String> = listed.into_iter().map(|object| object.name).collect();
    if dir.starts_with(COMPACTED_DIR) {
        holds.extend(read_manifest(store, &dir).await?.holds);
    }
    Ok((stats, holds))
}

async fn read_manifest(store: &S3Store, dir: &str) -> Result<Manifest, CompactorError> {
    let key = format!("{dir}/{MANIFEST}");
    serde_json::from_slice(&store.get(&key).await?)
        .map_err(|source| CompactorError::Manifest { key: store.url(&key), source })
}

/// Copies into the location `to_dir` each writer file in `from_dir` whose rows
/// `to_dir` does not hold (not in its manifest, not there already): one that
/// reached the old location after the compaction listed it. A file deleted since
/// it was listed (a writer moved it itself) is skipped. (Names never collide: the
/// writer's are hex digests, a compaction's start with `compacted-`.)
async fn hand_over(
    store: &S3Store,
    partition: &Partition,
    from_dir: &str,
    to_dir: &str,
) -> Result<HandedOver, CompactorError> {
    let mut held: BTreeSet<String> = read_manifest(store, to_dir).await?.holds.into_iter().collect();
    held.extend(store.list_objects(to_dir).await?.into_iter().map(|o| o.name));
    let mut handed = HandedOver::default();
    for object in store.list_objects(from_dir).await? {
        let name = object.name;
        let late = name.ends_with(".parquet") && !held.contains(&name);
        if late {
            if !store.copy(&format!("{from_dir}/{name}"), &format!("{to_dir}/{name}")).await? {
                continue; // deleted since it was listed
            }
            tracing::info!(partition = %partition, file = %name, "a file the location did not hold copied into it");
            handed.copied.push(name.clone());
        }
        if late || held.contains(&name) || (name == MANIFEST && from_dir.starts_with(COMPACTED_DIR)) {
            handed.held_here.push(name);
        }
    }
    Ok(handed)
}

/// What [`hand_over`] did.
#[derive(Debug, Default)]
struct HandedOver {
    /// The names in the old directory whose rows the location now holds.
    held_here: Vec<String>,
    /// The names it copied (the location held their rows nowhere before).
    copied: Vec<String>,
}

/// Finishes the switch of `partition` from `superseded` to `location`: hands over
/// any late file, and once the grace period has passed deletes the superseded
/// location's files whose rows the new location holds (and its manifest), then
/// removes the record. Nothing else is deleted: `events/<partition>/` is where
/// writers land new files, which they move themselves ([`settle`]). `true`: all
/// done. Running it again does the same.
async fn finish_switch(
    store: &S3Store,
    catalog: &Catalog,
    partition: &Partition,
    superseded: &Superseded,
    location: &str,
    options: Options,
) -> Result<bool, CompactorError> {
    let lake_url = store.url("");
    let (from_dir, to_dir) = (
        location_dir(&lake_url, &superseded.location, partition)?,
        location_dir(&lake_url, location, partition)?,
    );
    let held = hand_over(store, partition, &from_dir, &to_dir).await?;
    if options.now_millis.saturating_sub(superseded.at_millis) < options.grace.as_millis() as i64 {
        return Ok(false);
    }
    if from_dir != to_dir {
        delete_names(store, &from_dir, held.held_here).await?;
    }
    catalog.forget_superseded(partition, location).await?;
    Ok(true)
}

/// Deletes the objects `names` in `dir`.
async fn delete_names(
    store: &S3Store,
    dir: &str,
    names: impl IntoIterator<Item = String>,
) -> Result<(), CompactorError> {
    let keys = names.into_iter().map(|name| format!("{dir}/{name}"));
    in_parallel(keys, |key| {
        let store = store.clone();
        async move { store.delete(&key).await }
    })
    .await
}

/// Runs `request` on every item, [`REQUESTS_IN_FLIGHT`] at a time; the first
/// error ends it (the requests in flight are dropped).
async fn in_parallel<T, F, Fut>(items: impl IntoIterator<Item = T>, request: F) -> Result<(), CompactorError>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), StorageError>> + Send + 'static,
{
    let mut items = items.into_iter();
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.len() < REQUESTS_IN_FLIGHT {
            let Some(item) = items.next() else { break };
            in_flight.spawn(request(item));
        }
        match in_flight.join_next().await {
            None => return Ok(()),
            Some(Ok(result)) => result?,
            Some(Err(join)) => {
                return Err(CompactorError::Io {
                    path: PathBuf::from("(an S3 request's task)"),
                    source: std::io::Error::other(join),
                })
            }
        }
    }
}

/// For a writer that wrote the files `keys` (under `events/<partition>/`) into the
/// lake in `store` and registered `touched`: moves the files of each partition the
/// Glue table locates elsewhere (a compacted one) there, following it if it moves
/// meanwhile, and skipping a file whose rows the location holds already (a
/// redelivered object written again after its file was merged), and marks the
/// partition for the compactor (see the module's documentation). Returns how
/// many files it moved.
pub async fn settle(
    store: &S3Store,
    catalog: &Catalog,
    touched: &[Partition],
    keys: &[String],
) -> Result<usize, CompactorError> {
    let lake_url = store.url("");
    let mut locations: HashMap<Partition, String> = catalog.locations(touched).await?;
    let mut moved = 0;
    for partition in touched {
        let base = partition.directory();
        let Some(mut location) = locations.remove(partition) else { continue };
        if location_dir(&lake_url, &location, partition)? == base {
            continue;
        }
        let prefix = format!("{base}/");
        let files: Vec<&str> = keys.iter().filter_map(|key| key.strip_prefix(&prefix)).collect();
        let mut settled = false;
        for _ in 0..SETTLE_ATTEMPTS {
            let target = location_dir(&lake_url, &location, partition)?;
            let holds: BTreeSet<String> = read_manifest(store, &target).await?.holds.into_iter().collect();
            for name in files.iter().filter(|name| !holds.contains(**name)) {
                // Marked first: a mark without its file costs a compaction that
                // finds nothing to merge; a file without its mark could stay
                // unmerged beside a copy of its keys.
                mark_settled(store, partition, name).await?;
                store.copy(&format!("{base}/{name}"), &format!("{target}/{name}")).await?;
            }
            let now = catalog.locations(std::slice::from_ref(partition)).await?.remove(partition);
            match now {
                Some(now) if now != location => location = now,
                _ => {
                    settled = true;
                    break;
                }
            }
        }
        if !settled {
            return Err(CompactorError::Unsettled { partition: partition.to_string() });
        }
        for name in &files {
            store.delete(&format!("{base}/{name}")).await?;
        }
        moved += files.len();
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_kind_and_failures_by_reason() {
        let mut report = Tally::default();
        for outcome in [
            Outcome::AlreadyCompact,
            Outcome::TooRecent,
            Outcome::Deferred,
            Outcome::ChangedMeanwhile,
            Outcome::Failed { reason: "storage", message: "x".into() },
            Outcome::Failed { reason: "storage", message: "y".into() },
        ] {
            report.add(&outcome);
        }
        assert_eq!(
            (report.partitions_already_compact, report.partitions_too_recent, report.partitions_deferred),
            (1, 1, 2)
        );
        assert_eq!(report.partitions_failed, BTreeMap::from([("storage", 2)]));
    }

    fn partition() -> Partition {
        Partition::from_directories("event_type=payment", "created_date=2024-03-17").unwrap()
    }

    #[test]
    fn each_hour_a_run_starts_one_partition_further() {
        let located = |event_type: &str, day: &str| PartitionLocation {
            partition: Partition::from_directories(
                &format!("event_type={event_type}"),
                &format!("created_date={day}"),
            )
            .unwrap(),
            location: String::new(),
            superseded: None,
        };
        let catalog_order =
            || vec![located("b", "2024-03-18"), located("a", "2024-03-18"), located("z", "2024-03-17")];
        let order = |hour: i64| -> Vec<String> {
            in_run_order(catalog_order(), hour * 3_600_000 + 59_000)
                .into_iter()
                .map(|found| found.partition.to_string())
                .collect()
        };
        let (z, a, b) = (
            "event_type=z/created_date=2024-03-17",
            "event_type=a/created_date=2024-03-18",
            "event_type=b/created_date=2024-03-18",
        );
        assert_eq!(order(0), [z, a, b]);
        assert_eq!(order(1), [a, b, z]);
        assert_eq!(order(2), [b, z, a]);
        assert_eq!(order(3), [z, a, b]);
        assert!(in_run_order(Vec::new(), 0).is_empty());
    }

    #[test]
    fn the_newest_complete_compaction_of_each_partition_is_chosen() {
        let object = |name: &str, at: i64| ListedObject {
            name: name.to_owned(),
            size: 1,
            last_modified_millis: Some(at),
        };
        let (a, b, c) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        let p = "event_type=payment/created_date=2024-03-17";
        let listing = [
            object(&format!("{p}/compacted-{a}/compacted-{a}-00000.parquet"), 10),
            object(&format!("{p}/compacted-{a}/_inputs.json"), 11),
            object(&format!("{p}/compacted-{b}/_inputs.json"), 20),
            // Newer, but stopped before its manifest.
            object(&format!("{p}/compacted-{c}/compacted-{c}-00000.parquet"), 30),
            // Not a compaction's directory name, not a partition.
            object(&format!("{p}/compacted-zz/_inputs.json"), 40),
            object("event_type=/created_date=2024-03-17/compacted-{a}/_inputs.json", 40),
        ];
        let chosen = newest_compactions(&listing);
        assert_eq!(chosen.len(), 1, "{chosen:?}");
        assert_eq!(chosen[&partition()], format!("compacted/{p}/compacted-{b}"));
    }

    #[test]
    fn locations_are_the_partition_directory_or_a_compaction_of_it() {
        let lake = "s3://b/lake/";
        let p = partition();
        let base = "s3://b/lake/events/event_type=payment/created_date=2024-03-17/";
        assert_eq!(
            location_dir(lake, base, &p).unwrap(),
            "events/event_type=payment/created_date=2024-03-17"
        );
        let compacted = format!(
            "s3://b/lake/compacted/event_type=payment/created_date=2024-03-17/{COMPACTED_PREFIX}{}/",
            "0123456789abcdef0123456789abcdef"
        );
        assert!(location_dir(lake, &compacted, &p).unwrap().starts_with("compacted/event_type=payment/"));
        for foreign in [
            "s3://other/lake/events/event_type=payment/created_date=2024-03-17/",
            "s3://b/lake/events/event_type=order/created_date=2024-03-17/",
            "s3://b/lake/compacted/event_type=payment/created_date=2024-03-17/../../x/",
            "s3://b/lake/compacted/event_type=payment/created_date=2024-03-17/compacted-zz/",
            "s3://b/lakehouse/events/event_type=payment/created_date=2024-03-17/",
        ] {
            assert!(location_dir(lake, foreign, &p).is_err(), "{foreign}");
        }
    }
}
