//! Compaction of one partition (CONTRACT section 4): its files merged into as few
//! files of about a target size as it takes, sorted by `created_ts`, one row per
//! dedupe key: the row with the earliest `ingested_at` (rows of files written
//! before the column count as earliest; a tie goes to the file whose name sorts
//! first; one file never holds a key twice).
//!
//! A streaming k-way merge: every lake file is sorted by creation time (the
//! encoder sorts it), so the merge reads each input a batch at a time and holds
//! one batch per input, the rows of one millisecond being merged, and the output
//! row group being built. Copies of an event share their creation millisecond, so
//! deduplication happens within each millisecond's rows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::TimestampMillisecondType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use uuid::Uuid;

use crate::core::timestamp::EventTime;
use crate::lake::{encoder, schema};
use crate::views::stats::PartitionStats;

/// Rows read from an input at a time: fewer when there are many inputs, so that
/// the batches held at once stay near `BATCH_ROWS_IN_ALL` rows whatever the count.
const BATCH_ROWS: usize = 4096;
const MIN_BATCH_ROWS: usize = 128;
const BATCH_ROWS_IN_ALL: usize = 256 * 1024;
/// Output rows gathered before they are appended to the file being written.
const CHUNK_ROWS: usize = 8192;
/// A file's row group is written out once it holds this many encoded bytes, so
/// memory does not grow with the target file size.
const ROW_GROUP_BYTES: usize = 64 << 20;

/// Why a partition could not be compacted; its files are left as they are.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("reading {file}: {source}")]
    Read { file: String, source: parquet::errors::ParquetError },
    #[error("reading {file}: {source}")]
    Arrow { file: String, source: arrow::error::ArrowError },
    #[error("{file}: {what}: not a file of this lake")]
    Foreign { file: String, what: String },
    #[error("{file} is not sorted by creation time (row {row}): not a file this lake's writer wrote")]
    NotSorted { file: String, row: usize },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("encoding {path}: {source}")]
    Encode { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("merging: {0}")]
    Merge(arrow::error::ArrowError),
}

/// What a merge did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Merged {
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows dropped: a copy of a key kept from another row.
    pub duplicates: u64,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    pub bytes_out: u64,
    /// The payload fields of the rows written, counted for the typed views (the
    /// partition's first copies: what `eventlake views` would count).
    pub counts: PartitionStats,
}

/// A file at most this large is read whole when the merge starts, while the
/// files read so far add up to at most `EAGER_BYTES` (decoded, several times
/// that).
const SMALL_FILE_BYTES: u64 = 1 << 20;
const EAGER_BYTES: u64 = 32 << 20;

/// Which inputs a merge reads whole at once: files of at most `SMALL_FILE_BYTES`,
/// in order, while they add up to at most `EAGER_BYTES`.
#[derive(Debug, Default)]
struct EagerBudget {
    used: u64,
}

impl EagerBudget {
    /// Whether a file of `size` bytes is read whole (and counted if so).
    fn takes(&mut self, size: u64) -> bool {
        let takes = size <= SMALL_FILE_BYTES && self.used + size <= EAGER_BYTES;
        self.used += if takes { size } else { 0 };
        takes
    }
}

/// An input's batches: read ahead (a small file), or from its reader.
enum Batches {
    Read(std::collections::VecDeque<RecordBatch>),
    Streaming(ParquetRecordBatchReader),
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, arrow::error::ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Batches::Read(batches) => batches.pop_front().map(Ok),
            Batches::Streaming(reader) => reader.next(),
        }
    }
}

/// One input, being read.
struct Input {
    name: String,
    batches: Batches,
    /// The current batch's index in the pool, and the next row to take.
    batch: usize,
    row: usize,
    rows: usize,
    rows_read: usize,
    done: bool,
}

/// Merges `files` (local Parquet files of one partition, named so that their
/// names sort as the contract's tie rule wants) into files of about
/// `target_bytes` under `out_dir`, named `{stem}-{part:05}.parquet`.
pub fn merge(
    files: &[(String, PathBuf)],
    out_dir: &Path,
    stem: &str,
    target_bytes: usize,
) -> Result<Merged, CompactError> {
    merge_into(files, &mut Output::new(out_dir, stem, target_bytes, true))
}

/// Reads the rows a compaction of `files` would keep (one per dedupe key, the
/// contract's first copy), in the order it would write them (creation time,
/// then key), and hands them to `visit` a chunk at a time; nothing is written.
/// Memory as [`merge`]'s: a batch per input, the rows of one millisecond.
pub fn read_first_copies(
    files: &[(String, PathBuf)],
    visit: impl FnMut(&RecordBatch),
) -> Result<Merged, CompactError> {
    struct Visit<F>(F);
    impl<F: FnMut(&RecordBatch)> Sink for Visit<F> {
        fn write(&mut self, chunk: &RecordBatch, _merged: &mut Merged) -> Result<(), CompactError> {
            (self.0)(chunk);
            Ok(())
        }
        fn finish(&mut self, _merged: &mut Merged) -> Result<(), CompactError> {
            Ok(())
        }
    }
    merge_into(files, &mut Visit(visit))
}

/// Where a merge's rows go, a chunk at a time.
trait Sink {
    fn write(&mut self, chunk: &RecordBatch, merged: &mut Merged) -> Result<(), CompactError>;
    fn finish(&mut self, merged: &mut Merged) -> Result<(), CompactError>;
}

fn merge_into(files: &[(String, PathBuf)], output: &mut dyn Sink) -> Result<Merged, CompactError> {
    let mut pool: Vec<RecordBatch> = Vec::new();
    let mut inputs = Vec::with_capacity(files.len());
    let batch_rows = (BATCH_ROWS_IN_ALL / files.len().max(1)).clamp(MIN_BATCH_ROWS, BATCH_ROWS);
    let mut eager = EagerBudget::default();
    for (name, path) in files {
        let read = |source| CompactError::Read { file: name.clone(), source };
        let file = File::open(path).map_err(|source| CompactError::Write { path: path.clone(), source })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(read)?
            .with_batch_size(batch_rows)
            .build()
            .map_err(read)?;
        // A reader keeps a decompression context per column for as long as it
        // lives (about 150 KiB each): a small file is read whole at once instead,
        // so that hundreds of them do not hold thousands of contexts.
        let batches = if eager.takes(size) {
            let all = reader.by_ref().collect::<Result<_, _>>();
            Batches::Read(all.map_err(|source| CompactError::Arrow { file: name.clone(), source })?)
        } else {
            Batches::Streaming(reader)
        };
        inputs.push(Input {
            name: name.clone(),
            batches,
            batch: 0,
            row: 0,
            rows: 0,
            rows_read: 0,
            done: false,
        });
    }
    let mut merged = Merged::default();
    for input in &mut inputs {
        load_next(input, &mut pool)?;
    }
    // The inputs by their next row's creation millisecond.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (index, input) in inputs.iter().enumerate() {
        if !input.done {
            heap.push(Reverse((created_millis(&pool[input.batch], input.row), index)));
        }
    }
    let mut group: Vec<GroupRow> = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::new();
    while let Some(&Reverse((millis, _))) = heap.peek() {
        group.clear();
        while let Some(&Reverse((next, index))) = heap.peek() {
            if next != millis {
                break;
            }
            heap.pop();
            let input = &mut inputs[index];
            loop {
                let batch = &pool[input.batch];
                let row_millis = created_millis(batch, input.row);
                if row_millis != millis {
                    heap.push(Reverse((row_millis, index)));
                    break;
                }
                group.push(GroupRow::of(batch, input.batch, input.row, index)?);
                input.row += 1;
                input.rows_read += 1;
                merged.rows_in += 1;
                if input.row == input.rows {
                    // Rows gathered so far may point into the batch being left:
                    // the pool keeps every batch until the next flush.
                    load_next(input, &mut pool)?;
                    if input.done {
                        break;
                    }
                }
                if created_millis(&pool[input.batch], input.row) < millis {
                    return Err(CompactError::NotSorted { file: input.name.clone(), row: input.rows_read });
                }
            }
        }
        group.sort_unstable_by(|a, b| a.order(b));
        let mut previous: Option<u128> = None;
        for row in &group {
            if previous == Some(row.uuid) {
                merged.duplicates += 1;
                continue;
            }
            previous = Some(row.uuid);
            pending.push((row.batch, row.row));
        }
        // Batches stay in the pool until a flush: flush often enough that the
        // pool holds about one batch per input, duplicates or not.
        if pending.len() >= CHUNK_ROWS || pool.len() > 2 * inputs.len() + 8 {
            flush(&mut pending, &mut pool, &mut inputs, output, &mut merged)?;
        }
    }
    flush(&mut pending, &mut pool, &mut inputs, output, &mut merged)?;
    output.finish(&mut merged)?;
    Ok(merged)
}

/// The name every compaction output begins with.
pub const COMPACTED_PREFIX: &str = "compacted-";

/// Whether a partition holding the files `names` needs no compaction: it holds
/// one file at most (a file never holds a key twice, and is sorted), or only
/// compaction outputs.
pub fn is_compact<'n>(names: impl IntoIterator<Item = &'n str>) -> bool {
    let mut count = 0;
    let mut all_compacted = true;
    for name in names {
        count += 1;
        all_compacted &= name.starts_with(COMPACTED_PREFIX);
    }
    count <= 1 || all_compacted
}

/// Compacts the partition directory `dir` of a local lake: [`prepare`] then
/// [`Prepared::commit`]. `None`: the partition holds no file, or only compaction
/// outputs.
pub fn compact_directory(
    dir: &Path,
    staging_parent: &Path,
    target_bytes: usize,
) -> Result<Option<Merged>, CompactError> {
    match prepare(dir, staging_parent, target_bytes)? {
        Some(prepared) => prepared.commit(dir).map(Some),
        None => Ok(None),
    }
}

/// A partition's compacted files, written beside the lake, not yet in place.
#[derive(Debug)]
pub struct Prepared {
    staging: PathBuf,
    inputs: Vec<String>,
    pub merged: Merged,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> CompactError {
    let path = path.to_owned();
    move |source| CompactError::Write { path, source }
}

/// Merges the Parquet files of the partition directory `dir` into a directory
/// under `staging_parent` (on the same file system as `dir`). The outputs are
/// named after the inputs (their names and sizes): a compaction that stopped
/// half-way writes the same files when it runs again. `None`: nothing to do.
pub fn prepare(
    dir: &Path,
    staging_parent: &Path,
    target_bytes: usize,
) -> Result<Option<Prepared>, CompactError> {
    let inputs = parquet_files(dir).map_err(io_at(dir))?;
    if is_compact(inputs.iter().map(|(name, _)| name.as_str())) {
        return Ok(None);
    }
    let mut digest = xxhash_rust::xxh3::Xxh3::new();
    for (name, path) in &inputs {
        let size = std::fs::metadata(path).map_err(io_at(path))?.len();
        digest.update(name.as_bytes());
        digest.update(&size.to_le_bytes());
    }
    let stem = format!("{COMPACTED_PREFIX}{:032x}", digest.digest128());
    let staging = staging_parent.join(&stem);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_at(&staging))?;
    }
    std::fs::create_dir_all(&staging).map_err(io_at(&staging))?;
    let merged = merge_in_passes(&inputs, &staging, &stem, target_bytes, MERGE_BYTES)?;
    Ok(Some(Prepared { staging, inputs: inputs.into_iter().map(|(name, _)| name).collect(), merged }))
}

impl Prepared {
    /// The outputs' common stem (`compacted-<digest of the inputs>`): the same
    /// inputs give the same stem.
    pub fn stem(&self) -> &str {
        self.staging.file_name().and_then(|name| name.to_str()).unwrap_or_default()
    }

    /// The names of the inputs merged.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Removes the outputs, once they are stored elsewhere (an S3 lake).
    pub fn discard(self) -> Result<(), CompactError> {
        std::fs::remove_dir_all(&self.staging).map_err(io_at(&self.staging))
    }

    /// Puts the compacted files in the partition's place in one atomic exchange
    /// of directories, so that a reader lists all the old files or all the new
    /// ones (one that listed the old files and opens one after the exchange gets
    /// "not found" and must read again; it never sees rows twice or none). Files
    /// that arrived in the partition since [`prepare`] listed it are moved into it
    /// again; the old files are deleted.
    pub fn commit(self, dir: &Path) -> Result<Merged, CompactError> {
        let staging = &self.staging;
        crate::lake::storage::exchange_dirs(staging, dir).map_err(io_at(dir))?;
        // `staging` now holds the old files, and any that arrived meanwhile.
        for entry in std::fs::read_dir(staging).map_err(io_at(staging))? {
            let entry = entry.map_err(io_at(staging))?;
            let name = entry.file_name();
            if !self.inputs.iter().any(|input| name.to_str() == Some(input)) {
                std::fs::rename(entry.path(), dir.join(&name)).map_err(io_at(dir))?;
            }
        }
        std::fs::remove_dir_all(staging).map_err(io_at(staging))?;
        Ok(self.merged)
    }
}

/// Memory one merge may take for its inputs: a file read through an open reader
/// costs about its size (the reader buffers a column chunk, at most the file) and
/// `STREAM_OVERHEAD_BYTES` (decompression contexts, a batch); small files read
/// whole have their own budget (`EAGER_BYTES`).
pub const MERGE_BYTES: u64 = 256 << 20;
const STREAM_OVERHEAD_BYTES: u64 = 3 << 20;

/// [`merge`], within `budget` bytes of inputs at a time: a partition whose files
/// cost more is first merged in groups of consecutive names into intermediate
/// files (beside `out_dir`), named so that they sort as their groups did, and so
/// on until one merge takes the rest. A group's output holds each key once, and
/// every file of a group sorts before every file of the next: the tie rule
/// between copies holds across passes.
fn merge_in_passes(
    inputs: &[(String, PathBuf)],
    out_dir: &Path,
    stem: &str,
    target_bytes: usize,
    budget: u64,
) -> Result<Merged, CompactError> {
    let parent = out_dir.parent().unwrap_or(out_dir);
    let mut current = inputs.to_vec();
    let (mut rows_in, mut duplicates) = (None, 0);
    let mut previous_pass: Option<PathBuf> = None;
    let mut pass = 0;
    loop {
        let groups = groups_within(&current, budget);
        if groups.len() <= 1 {
            break;
        }
        pass += 1;
        let dir = parent.join(format!("{stem}-pass{pass}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_at(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let mut next = Vec::new();
        let mut read = 0;
        for (group, range) in groups.into_iter().enumerate() {
            // One file per group, whatever its size: each pass leaves fewer files;
            // their fields are counted by the last pass only.
            let name = format!("{stem}-pass{pass}-{group:05}");
            let merged = merge_into(&current[range], &mut Output::new(&dir, &name, usize::MAX, false))?;
            read += merged.rows_in;
            duplicates += merged.duplicates;
            for path in merged.files {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                next.push((name, path));
            }
        }
        rows_in.get_or_insert(read);
        if let Some(done) = previous_pass.replace(dir) {
            std::fs::remove_dir_all(&done).map_err(io_at(&done))?;
        }
        current = next;
    }
    let mut merged = merge(&current, out_dir, stem, target_bytes)?;
    if let Some(done) = previous_pass {
        std::fs::remove_dir_all(&done).map_err(io_at(&done))?;
    }
    merged.rows_in = rows_in.unwrap_or(merged.rows_in);
    merged.duplicates += duplicates;
    Ok(merged)
}

/// `files` cut into runs of consecutive files whose merge costs at most `budget`
/// (see [`MERGE_BYTES`]); every run but a lone last one holds two files at least,
/// so each pass leaves fewer files.
fn groups_within(files: &[(String, PathBuf)], budget: u64) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut cost, mut eager) = (0, 0, EagerBudget::default());
    for (index, (_, path)) in files.iter().enumerate() {
        let size = std::fs::metadata(path).map_or(u64::MAX / 4, |m| m.len());
        let mut file_cost = if eager.takes(size) { 0 } else { size + STREAM_OVERHEAD_BYTES };
        if index - start >= 2 && cost + file_cost > budget {
            groups.push(start..index);
            (start, cost, eager) = (index, 0, EagerBudget::default());
            file_cost = if eager.takes(size) { 0 } else { size + STREAM_OVERHEAD_BYTES };
        }
        cost += file_cost;
    }
    if start < files.len() {
        groups.push(start..files.len());
    }
    groups
}

/// The Parquet files directly in `dir`, by name: (name, path).
fn parquet_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".parquet") && entry.file_type()?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// A row of the millisecond being merged, with what decides which copy stays.
struct GroupRow {
    uuid: u128,
    /// `None` (a file written before the column) sorts first: earliest.
    ingested: Option<i64>,
    input: usize,
    batch: usize,
    row: usize,
}

impl GroupRow {
    fn of(batch: &RecordBatch, pool_index: usize, row: usize, input: usize) -> Result<Self, CompactError> {
        let uuids = batch.column(0).as_string::<i32>();
        let uuid = Uuid::parse_str(uuids.value(row)).map_err(|_| {
            CompactError::Merge(arrow::error::ArrowError::ParseError(format!(
                "event_uuid {:?} is not a UUID",
                uuids.value(row)
            )))
        })?;
        let ingested = batch.column(7).as_primitive::<TimestampMillisecondType>();
        Ok(GroupRow {
            uuid: uuid.as_u128(),
            ingested: ingested.is_valid(row).then(|| ingested.value(row)),
            input,
            batch: pool_index,
            row,
        })
    }

    /// By key, then the contract's order of copies: earliest `ingested_at`, then
    /// the input whose name sorts first, then the row.
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        (self.uuid, self.ingested, self.input, self.row).cmp(&(
            other.uuid,
            other.ingested,
            other.input,
            other.row,
        ))
    }
}

fn created_millis(batch: &RecordBatch, row: usize) -> i64 {
    batch.column(6).as_primitive::<TimestampMillisecondType>().value(row)
}

/// Reads `input`'s next non-empty batch into the pool, or marks it done.
fn load_next(input: &mut Input, pool: &mut Vec<RecordBatch>) -> Result<(), CompactError> {
    loop {
        match input.batches.next() {
            None => {
                input.done = true;
                return Ok(());
            }
            Some(batch) => {
                let batch =
                    batch.map_err(|source| CompactError::Arrow { file: input.name.clone(), source })?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let batch = normalize(&batch, &input.name)?;
                input.rows = batch.num_rows();
                input.row = 0;
                input.batch = pool.len();
                pool.push(batch);
                return Ok(());
            }
        }
    }
}

/// A batch in today's eight columns: a file written before `created_ts` and
/// `ingested_at` gets `created_ts` from `created_datetime` and a null
/// `ingested_at`.
fn normalize(batch: &RecordBatch, file: &str) -> Result<RecordBatch, CompactError> {
    let foreign = |what: String| CompactError::Foreign { file: file.to_owned(), what };
    let target = schema::arrow_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = batch.column_by_name(field.name());
        let column = match (field.name().as_str(), column) {
            (_, Some(column)) if column.data_type() == field.data_type() => Arc::clone(column),
            ("created_ts", None) => {
                let datetimes = batch
                    .column_by_name("created_datetime")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| foreign("no created_datetime string column".into()))?;
                let mut millis = Vec::with_capacity(datetimes.len());
                for text in datetimes.iter() {
                    let time = text
                        .and_then(EventTime::parse_created_datetime)
                        .ok_or_else(|| foreign(format!("created_datetime {text:?}")))?;
                    millis.push(time.millis());
                }
                Arc::new(TimestampMillisecondArray::from(millis).with_timezone(schema::TIMEZONE))
            }
            ("ingested_at", None) => Arc::new(
                TimestampMillisecondArray::new_null(batch.num_rows()).with_timezone(schema::TIMEZONE),
            ),
            (name, Some(column)) => return Err(foreign(format!("column {name} is {}", column.data_type()))),
            (name, None) => return Err(foreign(format!("no column {name}"))),
        };
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(foreign(format!("nulls in {}", field.name())));
        }
        columns.push(column);
    }
    if columns[6].null_count() > 0 {
        return Err(foreign("a null created_ts".into()));
    }
    RecordBatch::try_new(target, columns)
        .map_err(|source| CompactError::Arrow { file: file.to_owned(), source })
}

/// Appends the pending rows to the output, then lets go of the batches no input
/// is reading any more.
fn flush(
    pending: &mut Vec<(usize, usize)>,
    pool: &mut Vec<RecordBatch>,
    inputs: &mut [Input],
    output: &mut dyn Sink,
    merged: &mut Merged,
) -> Result<(), CompactError> {
    if !pending.is_empty() {
        let batches: Vec<&RecordBatch> = pool.iter().collect();
        let chunk =
            arrow::compute::interleave_record_batch(&batches, pending).map_err(CompactError::Merge)?;
        merged.rows_out += chunk.num_rows() as u64;
        output.write(&chunk, merged)?;
        pending.clear();
    }
    let mut kept = Vec::new();
    for input in inputs.iter_mut().filter(|input| !input.done) {
        kept.push(pool[input.batch].clone());
        input.batch = kept.len() - 1;
    }
    *pool = kept;
    Ok(())
}

/// The files being written: a new one once the current reaches the target size.
struct Output {
    dir: PathBuf,
    stem: String,
    target_bytes: usize,
    current: Option<(PathBuf, ArrowWriter<File>)>,
    /// Count the fields of the rows written ([`Merged::counts`]).
    count_fields: bool,
}

impl Output {
    fn new(dir: &Path, stem: &str, target_bytes: usize, count_fields: bool) -> Self {
        Output { dir: dir.to_owned(), stem: stem.to_owned(), target_bytes, current: None, count_fields }
    }
}

impl Sink for Output {
    fn write(&mut self, chunk: &RecordBatch, merged: &mut Merged) -> Result<(), CompactError> {
        if self.count_fields {
            crate::views::stats::observe_chunk(&mut merged.counts, chunk);
        }
        if self.current.is_none() {
            let path = self.dir.join(format!("{}-{:05}.parquet", self.stem, merged.files.len()));
            let io = |source| CompactError::Write { path: path.clone(), source };
            let file = File::options().write(true).create_new(true).open(&path).map_err(io)?;
            let writer = ArrowWriter::try_new(file, schema::arrow_schema(), Some(encoder::properties()))
                .map_err(|source| CompactError::Encode { path: path.clone(), source })?;
            merged.files.push(path.clone());
            self.current = Some((path, writer));
        }
        let (path, writer) = self.current.as_mut().expect("opened above");
        let encode = |source| CompactError::Encode { path: path.clone(), source };
        writer.write(chunk).map_err(encode)?;
        if writer.in_progress_size() >= ROW_GROUP_BYTES {
            writer.flush().map_err(encode)?;
        }
        if writer.bytes_written() + writer.in_progress_size() >= self.target_bytes {
            self.finish(merged)?;
        }
        Ok(())
    }

    fn finish(&mut self, merged: &mut Merged) -> Result<(), CompactError> {
        if let Some((path, writer)) = self.current.take() {
            let file =
                writer.into_inner().map_err(|source| CompactError::Encode { path: path.clone(), source })?;
            file.sync_all().map_err(|source| CompactError::Write { path: path.clone(), source })?;
            merged.bytes_out += file.metadata().map(|m| m.len()).unwrap_or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::encoder::{encode, Row};

    fn row(uuid: u128, seconds: &str, payload: &'static str) -> Row<'static> {
        Row {
            uuid: Uuid::from_u128(uuid),
            name: "a:b",
            subtype: Some("b"),
            time: EventTime::from_json_number(seconds).unwrap(),
            payload,
        }
    }

    fn write(dir: &Path, name: &str, mut rows: Vec<Row<'static>>, ingested: i64) -> (String, PathBuf) {
        let path = dir.join(name);
        std::fs::write(&path, encode(&mut rows, ingested).unwrap()).unwrap();
        (name.to_owned(), path)
    }

    /// (uuid, created millis, payload, ingested_at) of every row of `files`, in order.
    fn rows_of(files: &[PathBuf]) -> Vec<(u128, i64, String, Option<i64>)> {
        let mut out = Vec::new();
        for path in files {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                assert_eq!(batch.schema(), schema::arrow_schema());
                let created = batch.column(6).as_primitive::<TimestampMillisecondType>();
                let ingested = batch.column(7).as_primitive::<TimestampMillisecondType>();
                for row in 0..batch.num_rows() {
                    out.push((
                        Uuid::parse_str(batch.column(0).as_string::<i32>().value(row)).unwrap().as_u128(),
                        created.value(row),
                        batch.column(5).as_string::<i32>().value(row).to_owned(),
                        ingested.is_valid(row).then(|| ingested.value(row)),
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn copies_keep_the_earliest_ingested_at_and_ties_go_to_the_file_name_that_sorts_first() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let files = [
            write(dir.path(), "a-00000.parquet", vec![row(1, "10", "a1"), row(2, "20", "a2")], 2000),
            write(dir.path(), "b-00000.parquet", vec![row(1, "10", "b1"), row(3, "15", "b3")], 1000),
            write(dir.path(), "c-00000.parquet", vec![row(2, "20", "c2")], 2000),
        ];
        let merged = merge(&files, out.path(), "compacted-x", 1 << 30).unwrap();
        assert_eq!((merged.rows_in, merged.rows_out, merged.duplicates), (5, 3, 2));
        assert_eq!(
            rows_of(&merged.files),
            [
                (1, 10_000, "b1".to_owned(), Some(1000)),
                (3, 15_000, "b3".to_owned(), Some(1000)),
                (2, 20_000, "a2".to_owned(), Some(2000)),
            ]
        );
    }

    #[test]
    fn merging_in_passes_gives_what_one_pass_gives() {
        let dir = tempfile::tempdir().unwrap();
        // Over SMALL_FILE_BYTES each (an incompressible payload), so that merge
        // streams them and the passes are needed.
        let filler: Vec<&'static str> = (0..7_u64)
            .map(|i| {
                use rand::{Rng, SeedableRng};
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i);
                let text: String =
                    (0..2 * SMALL_FILE_BYTES as usize).map(|_| rng.random_range('a'..='z')).collect();
                &*Box::leak(format!("{{\"x\":\"{text}\"}}").into_boxed_str())
            })
            .collect();
        let files: Vec<(String, PathBuf)> = (0..7)
            .map(|i| {
                // Each file: a key of its own, a large one, and key 1 (ties on
                // ingested_at 5 for files 2 to 6).
                let mut rows = vec![row(1, "10", "copy"), row(200 + i, "30", filler[i as usize])];
                // Rows enough for several output chunks.
                rows.extend((0..10_000).map(|n| row(1_000_000 * (i + 1) + n, &format!("{}", 20 + i), "own")));
                write(dir.path(), &format!("{i}.parquet"), rows, if i < 2 { 9 - i as i64 } else { 5 })
            })
            .collect();
        let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (single_out, passes_out) = (one.path().join("out"), many.path().join("out"));
        std::fs::create_dir_all(&single_out).unwrap();
        std::fs::create_dir_all(&passes_out).unwrap();
        let single = merge_in_passes(&files, &single_out, "c", 1 << 30, MERGE_BYTES).unwrap();
        // A budget of two of these files: passes of pairs.
        let pair = 2 * (std::fs::metadata(&files[0].1).unwrap().len() + STREAM_OVERHEAD_BYTES);
        assert_eq!(groups_within(&files, pair).len(), 4);
        // Outputs cut at 256 KiB, smaller than the files: the passes must still
        // end (they once cut each pair's output again, and never did).
        let passes = merge_in_passes(&files, &passes_out, "c", 256 << 10, pair).unwrap();
        assert!(passes.files.len() > 1);
        assert_eq!((passes.rows_in, passes.rows_out, passes.duplicates), (70_014, 70_008, 6));
        assert_eq!((single.rows_in, single.rows_out, single.duplicates), (70_014, 70_008, 6));
        assert_eq!(rows_of(&passes.files), rows_of(&single.files));
        // Key 1: the earliest ingested_at is 5 (files 2 to 6); of those, file "2" sorts first.
        let kept: Vec<_> = rows_of(&passes.files).into_iter().filter(|r| r.0 == 1).collect();
        assert_eq!(kept, [(1, 10_000, "copy".to_owned(), Some(5))]);
        let left: Vec<_> = std::fs::read_dir(many.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["out"], "intermediate passes are removed");
    }

    #[test]
    fn rows_of_files_written_before_ingested_at_count_as_earliest() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lake-six-columns/events/event_type=user/created_date=2024-03-17");
        let old = std::fs::read_dir(&fixture).unwrap().next().unwrap().unwrap().path();
        let old_rows = {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(&old).unwrap()).unwrap().build().unwrap();
            let batch = reader.into_iter().next().unwrap().unwrap();
            assert_eq!(batch.num_columns(), 6, "the fixture predates the time columns");
            let uuid = Uuid::parse_str(batch.column(0).as_string::<i32>().value(0)).unwrap().as_u128();
            let datetime = batch.column(4).as_string::<i32>().value(0).to_owned();
            (uuid, EventTime::parse_created_datetime(&datetime).unwrap(), batch.num_rows())
        };
        let (uuid, time, count) = old_rows;
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let copy = Row {
            uuid: Uuid::from_u128(uuid),
            name: "user:x",
            subtype: Some("x"),
            time,
            payload: "{\"copy\":1}",
        };
        let files = [
            ("0-new.parquet".to_owned(), write(dir.path(), "0-new.parquet", vec![copy], 5).1),
            ("1-old.parquet".to_owned(), old),
        ];
        let merged = merge(&files, out.path(), "compacted-y", 1 << 30).unwrap();
        assert_eq!((merged.rows_out, merged.duplicates), (count as u64, 1));
        let rows = rows_of(&merged.files);
        let kept = rows.iter().find(|r| r.0 == uuid).unwrap();
        assert_eq!(kept.3, None, "the old file's row wins, though its file name sorts second");
        assert_eq!(kept.1, time.millis(), "created_ts is computed for the old file's rows");
        assert!(rows.windows(2).all(|pair| (pair[0].1, pair[0].0) <= (pair[1].1, pair[1].0)), "sorted");
    }

    #[test]
    fn output_files_are_cut_at_the_target_size_and_keep_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let payload: &'static str = Box::leak("x".repeat(400).into_boxed_str());
        let rows = |offset: u128| -> Vec<Row<'static>> {
            (0..20_000).map(|i| row(offset + i, &format!("{}", 1_000 + i), payload)).collect()
        };
        let files =
            [write(dir.path(), "a.parquet", rows(0), 1), write(dir.path(), "b.parquet", rows(1_000_000), 2)];
        let merged = merge(&files, out.path(), "compacted-z", 256 << 10).unwrap();
        assert_eq!((merged.rows_in, merged.rows_out, merged.duplicates), (40_000, 40_000, 0));
        assert!(merged.files.len() > 1, "{merged:?}");
        let rows = rows_of(&merged.files);
        assert_eq!(rows.len(), 40_000);
        assert!(rows.windows(2).all(|pair| (pair[0].1, pair[0].0) <= (pair[1].1, pair[1].0)));
    }

    #[test]
    fn a_file_not_sorted_by_creation_time_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsorted.parquet");
        let mut rows = [row(1, "30", "{}"), row(2, "10", "{}")];
        // The encoder sorts; write the batch by hand in the wrong order.
        let sorted = encode(&mut rows, 0).unwrap();
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(sorted)).unwrap().build().unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        let reversed =
            arrow::compute::take_record_batch(&batch, &arrow::array::UInt32Array::from(vec![1, 0])).unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema::arrow_schema(), None).unwrap();
        writer.write(&reversed).unwrap();
        writer.close().unwrap();
        let out = tempfile::tempdir().unwrap();
        let error = merge(&[("unsorted.parquet".into(), path)], out.path(), "c", 1 << 30).unwrap_err();
        assert!(matches!(error, CompactError::NotSorted { .. }), "{error}");
    }
}
