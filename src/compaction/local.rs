//! A local lake's partitions compacted: those with no file newer than a
//! duration, each merged by one thread ([`super::merge::compact_directory`]), one
//! compaction of the lake at a time (`_tmp/compaction.lock`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::merge;
use super::{Outcome, Run};
use crate::core::partition::Partition;
use crate::lake::storage::{LocalDir, Storage, StorageError};
use crate::lake::{listing, scratch};

/// The lock a local compaction holds (`_tmp/compaction.lock`).
pub const COMPACTION_LOCK: &str = "compaction";

/// Why a local compaction did not run (a partition that fails is an
/// [`Outcome::Failed`], not one of these).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("another compaction is running on {0}: wait for it to finish")]
    Busy(PathBuf),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("a compaction thread panicked")]
    Panicked,
}

/// What a local compaction does.
#[derive(Debug, Clone, Copy)]
pub struct LocalOptions {
    /// Partitions with a file newer than this are left for later.
    pub older_than: Duration,
    /// The size of the files written.
    pub target_bytes: usize,
    /// Find what would be compacted; change nothing.
    pub dry_run: bool,
}

/// Compacts the lake at `root` (see the module's documentation); each
/// partition's outcome, by partition.
pub fn compact_dir(root: &Path, options: LocalOptions) -> Result<Run, LocalError> {
    let io = |what: String| move |source| LocalError::Io { what, source };
    let found = listing::partitions(root).map_err(io(format!("listing {}", root.display())))?;
    // One compaction at a time: a second would find the first's half-made files.
    let _lock = scratch::lock_lake(root, COMPACTION_LOCK, false)
        .map_err(io(format!("locking {}", root.display())))?
        .ok_or_else(|| LocalError::Busy(root.to_owned()))?;
    let now = SystemTime::now();
    let mut outcomes = Vec::new();
    let mut work = Vec::new();
    for (partition, dir) in found {
        let files = listing::parquet_files(&dir).map_err(io(format!("listing {}", dir.display())))?;
        let newest = files.iter().map(|file| file.modified).max().unwrap_or(now);
        let (count, size) = (files.len(), files.iter().map(|file| file.bytes).sum());
        let outcome = if merge::is_compact(files.iter().map(|file| file.name.as_str())) {
            Outcome::AlreadyCompact
        } else if now.duration_since(newest).unwrap_or_default() < options.older_than {
            Outcome::TooRecent
        } else if options.dry_run {
            Outcome::Planned { files: count, bytes: size }
        } else {
            work.push((partition, dir, count, size));
            continue;
        };
        outcomes.push((partition, outcome));
    }
    if !work.is_empty() {
        let store = LocalDir::new(root);
        outcomes.extend(compact_all(&work, store.scratch_dir()?, options.target_bytes)?);
    }
    Ok(Run { outcomes, files_stranded: 0 })
}

/// Compacts the partitions of `work` on every core, each partition by one thread:
/// for each, its input file count and bytes and what the merge did.
fn compact_all(
    work: &[(Partition, PathBuf, usize, u64)],
    staging: &Path,
    target_bytes: usize,
) -> Result<Vec<(Partition, Outcome)>, LocalError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(work.len());
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((partition, dir, files, size)) = work.get(index) else { return done };
                        // A partition that cannot be merged (a damaged file) is
                        // reported; the others go on.
                        let outcome = match merge::compact_directory(dir, staging, target_bytes) {
                            Ok(Some(merged)) => {
                                Outcome::Compacted { files: *files, bytes: *size, merged, holds: Vec::new() }
                            }
                            Ok(None) => Outcome::AlreadyCompact,
                            Err(error) => Outcome::Failed {
                                reason: "merge",
                                message: crate::telemetry::error_chain(&error),
                            },
                        };
                        done.push((partition.clone(), outcome));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().map_err(|_| LocalError::Panicked))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(results.into_iter().flatten().collect())
}

/// The newest compacted file of the lake at `root` (its modification time: when
/// that compaction swapped it in) and how many partitions hold compacted files.
pub fn last_compaction(root: &Path) -> std::io::Result<Option<(std::time::SystemTime, usize)>> {
    let mut newest = None;
    let mut partitions = 0;
    for (_, dir) in crate::lake::listing::partitions(root)? {
        let compacted: Vec<_> = crate::lake::listing::parquet_files(&dir)?
            .into_iter()
            .filter(|file| file.name.starts_with(super::merge::COMPACTED_PREFIX))
            .collect();
        if !compacted.is_empty() {
            partitions += 1;
        }
        newest = compacted.iter().map(|file| file.modified).chain(newest).max();
    }
    Ok(newest.map(|at| (at, partitions)))
}
