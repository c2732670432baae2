//! The console on an S3 lake (`--lake s3://... --database D`): the Lake panel
//! from the Glue table (each partition where it is, compacted or not), one
//! listing of `events/` and `compacted/` for files and bytes, and the typed
//! views' counts for rows; rejected records from `_rejected/`, read up to a
//! bound; a selection replayed through the Glue table, as `eventlake replay
//! --database` does.

use std::collections::BTreeMap;

use crate::aws::s3::S3Store;
use crate::catalog::Catalog;
use crate::lake::listing::{self, PartitionSummary, Rejected, RejectedRecord, REJECTED_DIR};
use crate::lake::storage::Storage as _;

/// The most bytes of `_rejected/` one listing reads.
pub const MAX_REJECTED_BYTES: u64 = 64 << 20;

/// Every partition of the table with the files of its location, and the
/// newest compacted manifest (when its compaction switched the partition).
pub async fn partitions(
    store: &S3Store,
    catalog: &Catalog,
) -> anyhow::Result<(Vec<PartitionSummary>, Option<(i64, usize)>)> {
    let located = catalog.partition_locations().await?;
    let rows = crate::views::publish::partition_rows(store).await?;
    let lake_url = store.url("");
    let mut files_by_dir: BTreeMap<String, Vec<(String, u64, Option<i64>)>> = BTreeMap::new();
    for top in [crate::core::partition::EVENTS_DIR, crate::compaction::COMPACTED_DIR] {
        for object in store.list_tree(top).await? {
            if let Some((dir, name)) = object.name.rsplit_once('/') {
                files_by_dir.entry(format!("{top}/{dir}")).or_default().push((
                    name.to_owned(),
                    object.size,
                    object.last_modified_millis,
                ));
            }
        }
    }
    let mut summaries = Vec::new();
    let (mut newest_compaction, mut compacted) = (None::<i64>, 0);
    for found in located {
        let dir = crate::compaction::location_dir(&lake_url, &found.location, &found.partition)?;
        let files = files_by_dir.get(&dir).map(Vec::as_slice).unwrap_or_default();
        let parquet: Vec<_> = files.iter().filter(|(name, _, _)| name.ends_with(".parquet")).collect();
        if let Some((_, _, at)) = files.iter().find(|(name, _, _)| name == crate::compaction::MANIFEST) {
            compacted += 1;
            newest_compaction = newest_compaction.max(*at);
        }
        let key = (found.partition.event_type.clone(), found.partition.created_date.to_string());
        summaries.push(PartitionSummary {
            event_type: key.0.clone(),
            created_date: key.1.clone(),
            files: parquet.len(),
            bytes: parquet.iter().map(|(_, size, _)| size).sum(),
            rows: rows.get(&key).copied(),
        });
    }
    Ok((summaries, newest_compaction.map(|at| (at, compacted))))
}

/// Rejected records under `_rejected/` (objects by key, lines numbered as the
/// file's): the first `limit` kept, every entry counted by code, read up to
/// [`MAX_REJECTED_BYTES`].
pub async fn rejected(store: &S3Store, limit: usize) -> anyhow::Result<Rejected> {
    let mut found = Rejected::default();
    let mut read = 0u64;
    for object in store.list_tree(REJECTED_DIR).await? {
        if !object.name.ends_with(".ndjson") || object.name.contains('/') {
            continue;
        }
        if read + object.size > MAX_REJECTED_BYTES {
            found.cut = true;
            break;
        }
        read += object.size;
        let bytes = store.get(&format!("{REJECTED_DIR}/{}", object.name)).await?;
        for (index, line) in bytes.split(|&b| b == b'\n').enumerate().filter(|(_, line)| !line.is_empty()) {
            found.add_line(&object.name, index as u64 + 1, line, limit, |_| true);
        }
    }
    Ok(found)
}

/// The lines a selection names, read from the objects under `_rejected/`.
pub async fn rejected_lines(store: &S3Store, ids: &[String]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
    for (file, lines) in listing::selection_by_file(ids)? {
        let bytes = store
            .get(&format!("{REJECTED_DIR}/{file}"))
            .await
            .map_err(|_| anyhow::anyhow!("{file:?} is no object of {REJECTED_DIR}/"))?;
        listing::pick_lines(&bytes, &lines, &mut found);
    }
    ids.iter()
        .zip(found)
        .map(|(id, line)| line.ok_or_else(|| anyhow::anyhow!("{id:?} names no rejected record")))
        .collect()
}

/// The prefix of a selection's ids that name a failed record (one of
/// Firehose's error records under `--failed`): `failed:<object>:<line>`.
pub const FAILED_ID: &str = "failed:";

/// Firehose's error records under `source` (`--failed s3://bucket/errors/`),
/// gzip read transparently, each with Firehose's `errorCode` and
/// `errorMessage`: the first `limit`, how many were read, their counts by code,
/// and whether the reading stopped at [`MAX_REJECTED_BYTES`].
pub async fn failed(config: &crate::aws::SdkConfig, source: &str, limit: usize) -> anyhow::Result<Rejected> {
    use std::io::BufRead as _;
    let mut found = Rejected::default();
    let inputs = match crate::replay::sources::inputs_of(source, Some(config)).await {
        Ok(inputs) => inputs,
        Err(crate::replay::ReplayError::NoObjects(_)) => return Ok(found),
        Err(error) => return Err(error.into()),
    };
    let mut read = 0u64;
    for input in inputs {
        let name = input.name();
        let reader = crate::lake::ndjson::decompressing_reader(input.open(Some(config)).await?)?;
        for (index, line) in reader.split(b'\n').enumerate() {
            let line = line?;
            read += line.len() as u64 + 1;
            if read > MAX_REJECTED_BYTES {
                found.cut = true;
                return Ok(found);
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            found.add(failed_entry(&name, index as u64 + 1, &line), limit);
        }
    }
    Ok(found)
}

/// One of Firehose's error records as the console lists it.
fn failed_entry(name: &str, line: u64, bytes: &[u8]) -> Option<RejectedRecord> {
    use crate::replay::decode::{decode_line, Held};
    let decoded = decode_line(bytes).ok()?;
    let earlier = decoded.earlier?;
    let (code, reason) = earlier.split_once(": ").unwrap_or((earlier.as_str(), ""));
    let record = match decoded.record {
        Held::Bytes(bytes) => {
            String::from_utf8_lossy(&bytes).chars().take(listing::SHOWN_RECORD_CHARS).collect()
        }
        Held::Stored(key) => format!("(stored at {key})"),
    };
    Some(RejectedRecord {
        id: format!("{FAILED_ID}{name}:{line}"),
        file: name.to_owned(),
        line,
        code: code.to_owned(),
        reason: reason.to_owned(),
        record,
    })
}

/// The lines of Firehose's error records that `ids` (`failed:<object>:<line>`)
/// name, each object found again under `source` (an id naming anything else is refused).
pub async fn failed_lines(
    config: &crate::aws::SdkConfig,
    source: &str,
    ids: &[String],
) -> anyhow::Result<Vec<Vec<u8>>> {
    use std::io::Read as _;
    let invalid = |id: &str| anyhow::anyhow!("{id:?} names no failed record under {source}");
    let mut wanted: BTreeMap<&str, Vec<(u64, usize)>> = BTreeMap::new();
    for (position, id) in ids.iter().enumerate() {
        let rest = id.strip_prefix(FAILED_ID).ok_or_else(|| invalid(id))?;
        let (name, line) = rest.rsplit_once(':').ok_or_else(|| invalid(id))?;
        let line: u64 = line.parse().map_err(|_| invalid(id))?;
        wanted.entry(name).or_default().push((line, position));
    }
    let inputs = crate::replay::sources::inputs_of(source, Some(config)).await?;
    let mut found: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
    for (name, lines) in wanted {
        let input = inputs.iter().find(|input| input.name() == name).ok_or_else(|| invalid(name))?;
        let mut bytes = Vec::new();
        crate::lake::ndjson::decompressing_reader(input.open(Some(config)).await?)?
            .read_to_end(&mut bytes)?;
        listing::pick_lines(&bytes, &lines, &mut found);
    }
    ids.iter().zip(found).map(|(id, line)| line.ok_or_else(|| invalid(id))).collect()
}
