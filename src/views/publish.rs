//! An S3 lake's typed views, kept current by the deployed stack: the
//! `parquet-writer` counts the payload fields of the rows it writes into each
//! partition (an *observation*, `_schemas/_observed/<partition>/<source>.json`),
//! the compactor counts the first copies of each partition it merges, and on
//! the compactor's schedule [`publish`] folds both into the schema files and
//! creates or replaces the views that changed in the Glue catalog.
//!
//! A partition's counts are exact once it is compacted (one row per key, what
//! `eventlake views` counts on a local copy). Until then they add up the
//! writers' observations, in which a copy of a key that reached the lake twice
//! (a producer's retry in another Firehose batch) counts twice: its rows and
//! values, never its types (a copy holds the same values). Each observation is
//! counted once: a partition's counts keep the names of the files they hold.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ladder::{ColumnType, Scalar};
use super::schema::{self, Change, Declared, TypeSchema};
use super::stats::PartitionStats;
use super::{declared_file, schema_file, sql, ViewsError, COUNTS_DIR, SCHEMAS_DIR};
use crate::aws::s3::S3Store;
use crate::catalog::Catalog;
use crate::core::partition::Partition;
use crate::lake::storage::Storage;

/// The folder of writers' observations, inside [`SCHEMAS_DIR`].
pub const OBSERVED_DIR: &str = "_observed";

/// What a writer counted of the rows it wrote into one partition from one
/// staged object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The names of the files written, in the partition's directory.
    pub files: Vec<String>,
    pub stats: PartitionStats,
}

/// Where the observation of `source`'s rows in `partition` is kept.
pub fn observation_key(partition: &Partition, source: &str) -> String {
    format!("{SCHEMAS_DIR}/{OBSERVED_DIR}/{partition}/{source}.json")
}

/// Stores what a run that wrote into an S3 lake counted of each partition's
/// rows (its `Summary::counted`), one observation per partition, named after
/// the run's source: a retry writes the same objects.
pub async fn observe(
    store: &S3Store,
    summary: &crate::lake::writer::Summary,
) -> Result<(), crate::lake::storage::StorageError> {
    for (partition, counted) in &summary.counted {
        let observation = Observation { files: counted.files.clone(), stats: counted.stats.clone() };
        let bytes = serde_json::to_vec(&observation).unwrap_or_default();
        store.put(&observation_key(partition, &summary.source), bytes).await?;
    }
    Ok(())
}

/// What a compaction counted of a partition it merged: the first copies of
/// every file its new location holds (`holds`, the writers' file names).
#[derive(Debug, Clone)]
pub struct Compacted {
    pub partition: Partition,
    pub holds: Vec<String>,
    pub stats: PartitionStats,
}

/// What the compactions of `run` counted (its partitions compacted).
pub fn compacted_in(run: &crate::compaction::Run) -> Vec<Compacted> {
    run.outcomes
        .iter()
        .filter_map(|(partition, outcome)| match outcome {
            crate::compaction::Outcome::Compacted { merged, holds, .. } => Some(Compacted {
                partition: partition.clone(),
                holds: holds.clone(),
                stats: merged.counts.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Every partition of the catalog's table counted from its files as they are
/// (one at a time, on local disk): what [`publish`] takes to rebuild the
/// counts from scratch, as compactions' counts.
pub async fn count_every_partition(store: &S3Store, catalog: &Catalog) -> Result<Vec<Compacted>, ViewsError> {
    let scratch = store.scratch_dir()?.to_owned();
    let mut counted = Vec::new();
    for found in catalog.partition_locations().await? {
        let (stats, holds) = crate::compaction::count_partition(store, &found, &scratch).await?;
        counted.push(Compacted { partition: found.partition, holds, stats });
    }
    Ok(counted)
}

/// A type's partitions' counts in an S3 lake (`_schemas/_counts/<type>.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counts {
    partitions: BTreeMap<String, CountedPartition>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CountedPartition {
    /// The writers' files whose rows the counts hold.
    files: BTreeSet<String>,
    stats: PartitionStats,
}

/// What a run of [`publish`] did.
#[derive(Debug, Default)]
pub struct Published {
    /// Each type's schema and its changes since the last run, by type.
    pub types: Vec<(TypeSchema, Vec<Change>)>,
    /// Views created or replaced in Glue.
    pub views_published: u64,
    pub observations_read: u64,
}

impl Published {
    /// New fields and widenings.
    pub fn schema_changes(&self) -> u64 {
        self.types.iter().map(|(_, changes)| changes.len() as u64).sum()
    }

    pub fn fields_widened(&self) -> u64 {
        let widened = |change: &&Change| matches!(change, Change::Widened { .. });
        self.types.iter().map(|(_, changes)| changes.iter().filter(widened).count() as u64).sum()
    }

    /// Types with fields left out of their view for want of columns.
    pub fn types_at_column_budget(&self) -> u64 {
        let over = |schema: &TypeSchema| {
            schema
                .fields
                .iter()
                .filter(|f| f.column.is_none())
                .any(|f| f.why.as_deref().is_some_and(is_budget))
        };
        self.types.iter().filter(|(schema, _)| over(schema)).count() as u64
    }
}

/// Each type's counts files among `names` (the listing of `_schemas/`), read.
async fn read_counts(
    store: &S3Store,
    names: &BTreeSet<&str>,
) -> Result<BTreeMap<String, Counts>, ViewsError> {
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for name in names {
        let Some(event_type) =
            name.strip_prefix(&format!("{COUNTS_DIR}/")).and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let key = format!("{SCHEMAS_DIR}/{name}");
        counts.insert(event_type.to_owned(), read_json(store, &key).await?.unwrap_or_default());
    }
    Ok(counts)
}

/// The rows of each partition (event type, date) as the counts under `_schemas/`
/// hold them: as of the last run of the compactor or `eventlake views` (exact
/// once a partition is compacted; the writers' observations since are not in it).
pub async fn partition_rows(store: &S3Store) -> Result<BTreeMap<(String, String), u64>, ViewsError> {
    let listing = store.list_tree(SCHEMAS_DIR).await?;
    let names: BTreeSet<&str> = listing.iter().map(|object| object.name.as_str()).collect();
    let mut rows = BTreeMap::new();
    for (event_type, counts) in read_counts(store, &names).await? {
        for (date, counted) in counts.partitions {
            rows.insert((event_type.clone(), date), counted.stats.rows);
        }
    }
    Ok(rows)
}

fn is_budget(why: &str) -> bool {
    why.starts_with(&format!("the view has {} columns", schema::MAX_COLUMNS))
}

/// Folds the observations and `compacted`'s counts into the lake's counts and
/// schema files, and with `catalog`, creates or replaces in its database the
/// views whose definition changed (or that it lacks).
pub async fn publish(
    store: &S3Store,
    catalog: Option<&Catalog>,
    compacted: &[Compacted],
) -> Result<Published, ViewsError> {
    let listing = store.list_tree(SCHEMAS_DIR).await?;
    let names: BTreeSet<&str> = listing.iter().map(|object| object.name.as_str()).collect();
    let mut counts = read_counts(store, &names).await?;
    let mut changed_types: BTreeSet<String> = BTreeSet::new();
    for compaction in compacted {
        let partition = &compaction.partition;
        let entry = counts.entry(partition.event_type.clone()).or_default();
        let counted = entry.partitions.entry(partition.created_date.to_string()).or_default();
        counted.files.extend(compaction.holds.iter().cloned());
        counted.stats = compaction.stats.clone();
        changed_types.insert(partition.event_type.clone());
    }
    let mut read = Vec::new();
    let prefix = format!("{OBSERVED_DIR}/");
    for name in names.iter().filter_map(|name| name.strip_prefix(&prefix)) {
        let key = format!("{SCHEMAS_DIR}/{OBSERVED_DIR}/{name}");
        read.push(key.clone());
        let mut parts = name.splitn(3, '/');
        let partition = match (parts.next(), parts.next()) {
            (Some(t), Some(d)) => Partition::from_directories(t, d),
            _ => None,
        };
        let Some(partition) = partition else {
            tracing::warn!(key, "not an observation of a partition; removed");
            continue;
        };
        let observation = match read_json::<Observation>(store, &key).await {
            Ok(Some(observation)) => observation,
            Ok(None) => continue,
            Err(ViewsError::Damaged { key, source }) => {
                tracing::warn!(key, error = %source, "not an observation; removed");
                continue;
            }
            Err(error) => return Err(error),
        };
        let entry = counts.entry(partition.event_type.clone()).or_default();
        let counted = entry.partitions.entry(partition.created_date.to_string()).or_default();
        let covered = observation.files.iter().filter(|file| counted.files.contains(*file)).count();
        if covered == 0 {
            counted.stats.absorb(observation.stats);
            changed_types.insert(partition.event_type.clone());
        } else if covered < observation.files.len() {
            // A compaction merged part of what one staged object wrote (it listed
            // the partition while the writer was storing its parts): those rows are
            // counted; the others will be by the partition's next compaction.
            tracing::warn!(partition = %partition, "observation partly merged already; counted at the next compaction");
            changed_types.insert(partition.event_type.clone());
        }
        counted.files.extend(observation.files);
    }
    let first_events = counts.iter().map(|(event_type, counts)| {
        let first = counts.partitions.values().filter_map(|p| p.stats.first_event_millis).min();
        (event_type.as_str(), first)
    });
    let views = schema::view_names(first_events);
    let mut published = Published { observations_read: read.len() as u64, ..Published::default() };
    for (event_type, type_counts) in &counts {
        let declared_key = declared_file(event_type);
        let declared: Declared = if names.contains(&declared_key[SCHEMAS_DIR.len() + 1..]) {
            read_json(store, &declared_key).await?.unwrap_or_default()
        } else {
            Declared::default()
        };
        let stats: BTreeMap<String, PartitionStats> =
            type_counts.partitions.iter().map(|(date, p)| (date.clone(), p.stats.clone())).collect();
        let schema = schema::fold(event_type, &views[event_type], &stats, &declared);
        let key = schema_file(event_type);
        let before: Option<TypeSchema> = if names.contains(&key[SCHEMAS_DIR.len() + 1..]) {
            read_json(store, &key).await.ok().flatten()
        } else {
            None
        };
        let changes = schema::changes(before.as_ref(), &schema);
        for change in &changes {
            if let Change::Widened { name, from, to, count, .. } = change {
                // The field's name and types only: an example is a payload value.
                tracing::info!(event_type = %event_type, field = %name, from = %from.name(), to = %to.name(), values = count, "typed view column widened");
            }
        }
        if before.as_ref() != Some(&schema) {
            store.put(&key, super::file_bytes(&schema)).await?;
        }
        let definition_changed =
            before.as_ref().is_none_or(|before| catalog_view(before) != catalog_view(&schema));
        if let (Some(catalog), true) = (catalog, definition_changed) {
            catalog.put_view(&catalog_view(&schema)).await?;
            published.views_published += 1;
        }
        if changed_types.contains(event_type) {
            store
                .put(&format!("{SCHEMAS_DIR}/{COUNTS_DIR}/{event_type}.json"), super::file_bytes(type_counts))
                .await?;
        }
        published.types.push((schema, changes));
    }
    // The observations are in the counts now (saved above): they go.
    for key in read {
        store.delete(&key).await?;
    }
    Ok(published)
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    store: &S3Store,
    key: &str,
) -> Result<Option<T>, ViewsError> {
    match store.get_if_present(key).await? {
        None => Ok(None),
        Some((_, bytes)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ViewsError::Damaged { key: key.to_owned(), source }),
    }
}

/// The view as the Glue catalog stores it for Athena.
pub fn catalog_view(schema: &TypeSchema) -> crate::catalog::View {
    use crate::catalog::ViewColumn;
    use crate::views::naming::{LEADING_COLUMNS, RESCUED_COLUMN};
    let lake_columns: Vec<_> =
        crate::lake::schema::columns().into_iter().chain(crate::lake::schema::partition_columns()).collect();
    let mut columns: Vec<ViewColumn> = LEADING_COLUMNS
        .iter()
        .map(|name| {
            let hive = lake_columns.iter().find(|c| c.name == *name).map_or("string", |c| c.athena_type);
            ViewColumn {
                name: (*name).to_owned(),
                trino_type: trino_of_hive(hive),
                hive_type: hive.to_owned(),
            }
        })
        .collect();
    for field in &schema.fields {
        if let Some(column) = &field.column {
            columns.push(ViewColumn {
                name: column.clone(),
                trino_type: trino_type(field.column_type),
                hive_type: hive_type(field.column_type),
            });
        }
    }
    if schema.rescued {
        columns.push(ViewColumn {
            name: RESCUED_COLUMN.to_owned(),
            trino_type: "varchar".to_owned(),
            hive_type: "string".to_owned(),
        });
    }
    crate::catalog::View {
        name: schema.view.clone(),
        description: format!(
            "Events of type {} with their payload as typed columns (eventlake typed views; _schemas/{}.json)",
            schema.event_type, schema.event_type
        ),
        select_sql: sql::select(schema),
        columns,
    }
}

/// A lake column's Trino type, from its Hive type (as Athena engine v3 stores them).
fn trino_of_hive(hive: &str) -> String {
    match hive {
        "string" => "varchar",
        "timestamp" => "timestamp(3)",
        other => other,
    }
    .to_owned()
}

fn scalar_trino(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Timestamp => "timestamp(3)",
        other => other.sql(),
    }
}

fn scalar_hive(scalar: Scalar) -> &'static str {
    match scalar {
        Scalar::Varchar => "string",
        other => other.sql(),
    }
}

/// A column's type in the view definition (Trino).
pub fn trino_type(column_type: ColumnType) -> String {
    match column_type {
        ColumnType::Scalar(scalar) => scalar_trino(scalar).to_owned(),
        ColumnType::Array(scalar) => format!("array({})", scalar_trino(scalar)),
        ColumnType::Json => "varchar".to_owned(),
    }
}

/// A column's type in the Glue table (Hive).
pub fn hive_type(column_type: ColumnType) -> String {
    match column_type {
        ColumnType::Scalar(scalar) => scalar_hive(scalar).to_owned(),
        ColumnType::Array(scalar) => format!("array<{}>", scalar_hive(scalar)),
        ColumnType::Json => "string".to_owned(),
    }
}
