//! Where one event is in a local lake (the console's Trace panel): every row
//! that holds its `event_uuid`, by partition, file and row, with when it was
//! ingested, and every rejected record that names it, with the reason.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMillisecondType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::listing;

/// One row holding the event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Copy {
    pub partition: String,
    pub file: String,
    /// The row's index in its file, from 0.
    pub row: u64,
    /// `ingested_at` in Unix milliseconds (none in files written before the column).
    pub ingested_at: Option<i64>,
}

/// A rejected record that names the event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedCopy {
    pub file: String,
    pub line: u64,
    pub code: String,
    pub reason: String,
}

/// Where the event is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// The canonical form searched for.
    pub event_uuid: String,
    pub copies: Vec<Copy>,
    pub rejected: Vec<RejectedCopy>,
}

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The text is not a UUID in a form the contract takes.
    #[error("{0:?} is not a UUID (hyphenated, 32 hex digits, braced or urn:uuid:)")]
    NotUuid(String),
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Every copy of the event `uuid` (any form the contract takes) in the lake at `root`.
pub fn trace(root: &Path, uuid: &str) -> Result<Trace, TraceError> {
    let parsed = uuid::Uuid::try_parse(uuid.trim()).map_err(|_| TraceError::NotUuid(uuid.to_owned()))?;
    let canonical = parsed.hyphenated().to_string();
    let mut copies = Vec::new();
    for (partition, dir) in listing::partitions(root)? {
        for file in listing::parquet_files(&dir)? {
            let path = dir.join(&file.name);
            let read = |message: String| TraceError::Read { path: path.display().to_string(), message };
            for (row, ingested_at) in rows_of(&path, &canonical).map_err(read)? {
                copies.push(Copy {
                    partition: partition.to_string(),
                    file: file.name.clone(),
                    row,
                    ingested_at,
                });
            }
        }
    }
    Ok(Trace { event_uuid: canonical.clone(), copies, rejected: rejected_naming(root, &parsed)? })
}

/// The rows of the file at `path` whose `event_uuid` is `canonical`, with their `ingested_at`.
fn rows_of(path: &Path, canonical: &str) -> Result<Vec<(u64, Option<i64>)>, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|error| error.to_string())?;
    let schema = builder.schema().clone();
    let wanted: Vec<usize> =
        ["event_uuid", "ingested_at"].iter().filter_map(|name| schema.index_of(name).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder.with_projection(mask).build().map_err(|error| error.to_string())?;
    let mut found = Vec::new();
    let mut offset = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|error| error.to_string())?;
        let uuids = batch.column_by_name("event_uuid").ok_or("no event_uuid column")?.as_string::<i32>();
        let ingested = batch
            .column_by_name("ingested_at")
            .map(|column| column.as_primitive::<TimestampMillisecondType>());
        for index in 0..batch.num_rows() {
            if uuids.value(index) == canonical {
                let at = ingested.filter(|column| column.is_valid(index)).map(|column| column.value(index));
                found.push((offset + index as u64, at));
            }
        }
        offset += batch.num_rows() as u64;
    }
    Ok(found)
}

/// The most rejected records a trace lists.
const MAX_REJECTED_SHOWN: usize = 100;

/// The rejected records whose text holds the UUID in its hyphenated or simple
/// form, in any case.
fn rejected_naming(root: &Path, uuid: &uuid::Uuid) -> Result<Vec<RejectedCopy>, TraceError> {
    let forms = [uuid.hyphenated().to_string(), uuid.simple().to_string()];
    let names_it = |text: &str| {
        let text = text.to_ascii_lowercase();
        forms.iter().any(|form| text.contains(form.as_str()))
    };
    let records = listing::rejected(root, MAX_REJECTED_SHOWN, names_it)?.records;
    Ok(records
        .into_iter()
        .map(|record| RejectedCopy {
            file: record.file,
            line: record.line,
            code: record.code,
            reason: record.reason,
        })
        .collect())
}
