//! A local lake's typed views kept current: the partitions whose files changed
//! since the last run are read again (their first copies, as compaction would
//! keep them), their counts kept under `_schemas/_counts/`, and every type's
//! schema file folded anew from its partitions' counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::schema::{self, Change, Declared, TypeSchema};
use super::stats::{self, PartitionStats, WrittenCounts};
use super::{declared_file, schema_file, ViewsError, COUNTS_DIR, SCHEMAS_DIR};
use crate::compaction::merge;
use crate::core::partition::Partition;
use crate::lake::{listing, scratch};

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ViewsError + '_ {
    move |source| ViewsError::Io { path: path.to_owned(), source }
}

/// What a run did for one type.
#[derive(Debug, Clone)]
pub struct TypeReport {
    pub schema: TypeSchema,
    pub changes: Vec<Change>,
    /// Partitions read in this run (the others' counts were kept).
    pub partitions_read: usize,
    pub partitions: usize,
}

/// Each partition's counts and the files (name, bytes) they were read from.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    partitions: BTreeMap<String, CountedPartition>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CountedPartition {
    files: Vec<(String, u64)>,
    stats: PartitionStats,
}

/// The lock `eventlake views` (and the commands that run it) hold on a lake.
const VIEWS_LOCK: &str = "views";

/// Brings the views of the lake at `root` up to date: reads what changed,
/// writes `_schemas/`, and returns each type's schema and changes, by type.
///
/// `written`: what a run that just wrote into the lake counted of its rows: a
/// writer's (`Summary::counted`, from a run that held every key of the run at
/// once), for the partitions that held nothing before it; a compaction's, for
/// the partitions it rewrote whole. A partition that holds exactly the files
/// counted takes those counts instead of being read back.
pub fn refresh(
    root: &Path,
    written: Option<&BTreeMap<Partition, WrittenCounts>>,
) -> Result<Vec<TypeReport>, ViewsError> {
    let partitions = listing::partitions(root).map_err(ViewsError::Listing)?;
    let schemas = root.join(SCHEMAS_DIR);
    if partitions.is_empty() && !schemas.is_dir() {
        return Ok(Vec::new());
    }
    let _lock = scratch::lock_lake(root, VIEWS_LOCK, true).map_err(io_at(root))?;
    let counts_dir = schemas.join(COUNTS_DIR);
    std::fs::create_dir_all(&counts_dir).map_err(io_at(&counts_dir))?;
    let mut by_type: BTreeMap<String, Vec<(Partition, PathBuf)>> = BTreeMap::new();
    for (partition, dir) in partitions {
        by_type.entry(partition.event_type.clone()).or_default().push((partition, dir));
    }
    // Counts first, for every type: the view names depend on every type's first event.
    let mut counted: BTreeMap<String, (Counts, usize)> = BTreeMap::new();
    for (event_type, partitions) in &by_type {
        let path = counts_dir.join(format!("{event_type}.json"));
        let mut counts: Counts = read_json(&path).unwrap_or_default();
        let (mut read, mut taken) = (0, 0);
        let mut kept = BTreeMap::new();
        for (partition, dir) in partitions {
            let date = partition.created_date.to_string();
            let files: Vec<(String, u64)> = listing::parquet_files(dir)
                .map_err(io_at(dir))?
                .into_iter()
                .map(|file| (file.name, file.bytes))
                .collect();
            let known = counts.partitions.remove(&date);
            let from_run = written.and_then(|written| written.get(partition)).filter(|run| {
                let mut names: Vec<&str> = run.files.iter().map(String::as_str).collect();
                names.sort_unstable();
                (run.whole_partition || known.is_none())
                    && names.iter().copied().eq(files.iter().map(|(name, _)| name.as_str()))
            });
            let counted = match (known, from_run) {
                (Some(known), _) if known.files == files => known,
                (_, Some(run)) => {
                    taken += 1;
                    CountedPartition { files, stats: run.stats.clone() }
                }
                _ => {
                    read += 1;
                    let stats = count_partition(dir, &files).map_err(|source| ViewsError::Read {
                        partition: dir.display().to_string(),
                        source,
                    })?;
                    CountedPartition { files, stats }
                }
            };
            kept.insert(date, counted);
        }
        // Partitions left in `counts` are gone from the lake.
        let changed = read + taken > 0 || !counts.partitions.is_empty();
        let counts = Counts { partitions: kept };
        if changed || !path.exists() {
            write_json(&path, &counts)?;
        }
        counted.insert(event_type.clone(), (counts, read));
    }
    let first_events = counted.iter().map(|(event_type, (counts, _))| {
        let first = counts.partitions.values().filter_map(|p| p.stats.first_event_millis).min();
        (event_type.as_str(), first)
    });
    let views = schema::view_names(first_events);
    let mut reports = Vec::new();
    for (event_type, (counts, read)) in &counted {
        let declared = read_declared(&root.join(declared_file(event_type)))?;
        let stats: BTreeMap<String, PartitionStats> =
            counts.partitions.iter().map(|(date, p)| (date.clone(), p.stats.clone())).collect();
        let schema = schema::fold(event_type, &views[event_type], &stats, &declared);
        let path = root.join(schema_file(event_type));
        let before: Option<TypeSchema> = read_json(&path);
        let changes = schema::changes(before.as_ref(), &schema);
        if before.as_ref() != Some(&schema) {
            write_json(&path, &schema)?;
        }
        reports.push(TypeReport {
            schema,
            changes,
            partitions_read: *read,
            partitions: counts.partitions.len(),
        });
    }
    remove_gone_types(&schemas, &counts_dir, &by_type)?;
    Ok(reports)
}

/// A partition's counts: its first copies, read as compaction would keep them.
fn count_partition(dir: &Path, files: &[(String, u64)]) -> Result<PartitionStats, merge::CompactError> {
    let inputs: Vec<(String, PathBuf)> =
        files.iter().map(|(name, _)| (name.clone(), dir.join(name))).collect();
    let mut stats = PartitionStats::default();
    merge::read_first_copies(&inputs, |chunk: &RecordBatch| stats::observe_chunk(&mut stats, chunk))?;
    Ok(stats)
}

/// Schema and count files of types the lake no longer holds are removed.
fn remove_gone_types(
    schemas: &Path,
    counts_dir: &Path,
    types: &BTreeMap<String, Vec<(Partition, PathBuf)>>,
) -> Result<(), ViewsError> {
    for dir in [schemas, counts_dir] {
        for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else { continue };
            if stem.ends_with(".declared") && !types.contains_key(stem) {
                continue; // a declaration is the user's, kept whatever the lake holds
            }
            if entry.file_type().map_err(io_at(dir))?.is_file() && !types.contains_key(stem) {
                std::fs::remove_file(entry.path()).map_err(io_at(&entry.path()))?;
            }
        }
    }
    Ok(())
}

fn read_declared(path: &Path) -> Result<Declared, ViewsError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|source| ViewsError::Declared { path: path.to_owned(), source }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Declared::default()),
        Err(source) => Err(ViewsError::Io { path: path.to_owned(), source }),
    }
}

/// A file this module wrote; `None` when missing or unreadable (it is then
/// rebuilt from the lake).
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed).
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ViewsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let text = super::file_bytes(value);
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io_at(dir))?;
    std::io::Write::write_all(&mut file, &text).map_err(io_at(path))?;
    file.persist(path).map_err(|e| ViewsError::Io { path: path.to_owned(), source: e.error })?;
    Ok(())
}

/// The schema files of the lake at `root` (what `eventlake query` makes views
/// of), by type.
pub fn read_schemas(root: &Path) -> Result<Vec<TypeSchema>, ViewsError> {
    let dir = root.join(SCHEMAS_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ViewsError::Io { path: dir, source }),
    };
    let mut schemas = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(&dir))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(stem) = name.strip_suffix(".json") else { continue };
        if stem.ends_with(".declared") || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io_at(&path))?;
        let schema: TypeSchema = serde_json::from_slice(&bytes).map_err(|e| ViewsError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("{e}; delete it and run `eventlake views` to rebuild it")),
        })?;
        schemas.push(schema);
    }
    schemas.sort_by(|a, b| a.view.cmp(&b.view));
    Ok(schemas)
}
