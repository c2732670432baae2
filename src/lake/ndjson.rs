//! Reading NDJSON into the lake writer: line by line, gzip decompressed on the fly,
//! so memory does not grow with the input.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::Range;

use flate2::bufread::MultiGzDecoder;
use xxhash_rust::xxh3::Xxh3;

use crate::core::rejection::Rejection;
use crate::lake::scratch;
use crate::lake::storage::{Storage, StorageError};
use crate::lake::writer::{
    check_record, checked_text, first_ingestion, joined, CheckedEvent, LakeError, LakeWriter, Limits, Origin,
    SourceId, Summary,
};

/// Read buffer size: large reads keep system calls off the profile.
const READ_BUFFER: usize = 1 << 20;

/// A failure that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading (or decompressing) an input failed.
    #[error("reading {source_name}: {error}")]
    Read { source_name: String, error: io::Error },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// Wraps `input` in a buffered reader that decompresses gzip (detected by its
/// magic bytes, whatever the file is called) and passes anything else through.
pub fn decompressing_reader<'r>(input: impl Read + 'r) -> io::Result<Box<dyn BufRead + 'r>> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, input);
    let is_gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    })
}

/// What feeding one input did besides the writer's own counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineCounts {
    pub lines: u64,
    /// Lines holding only whitespace: no record, so neither written nor rejected.
    pub blank: u64,
}

/// Reads `inputs` (each a name, for reasons and errors, and its bytes, plain or
/// gzip, opened only when its turn comes) into `writer`, then writes what the
/// writer still holds: the one path from readers to a finished lake run, for
/// `eventlake ingest` and the `parquet-writer` Lambda alike. `before_finish` runs
/// One ingest run, as `eventlake ingest` makes it (and the console's producers):
/// the writer of `source` with `ingested_at` the time the lake first ingested
/// that source ([`first_ingestion`]: a run again keeps its rows' time), then
/// [`load`] of `inputs`.
pub async fn ingest<S: Storage, R: Read>(
    storage: S,
    source: SourceId,
    limits: Limits,
    inputs: impl IntoIterator<Item = (String, io::Result<R>)>,
    before_finish: impl FnOnce(),
) -> Result<(Summary, LineCounts), IngestError> {
    let ingested_at = first_ingestion(&storage, &source, limits.window.now_millis).await?;
    let writer = LakeWriter::new(storage, source, limits).ingested_at(ingested_at);
    load(writer, inputs, before_finish).await
}

/// once every input is read, before the buffered partitions are written.
pub async fn load<S: Storage, R: Read>(
    mut writer: LakeWriter<S>,
    inputs: impl IntoIterator<Item = (String, io::Result<R>)>,
    before_finish: impl FnOnce(),
) -> Result<(Summary, LineCounts), IngestError> {
    let mut fed = LineCounts::default();
    for (source_name, input) in inputs {
        let read_error = |error| IngestError::Read { source_name: source_name.clone(), error };
        let reader = decompressing_reader(input.map_err(read_error)?).map_err(read_error)?;
        let this = feed(&mut writer, reader, &source_name).await?;
        fed.lines += this.lines;
        fed.blank += this.blank;
    }
    before_finish();
    Ok((writer.finish().await?, fed))
}

/// Feeds every line of `reader` to `writer` as one record. A line longer than the
/// writer's record limit is never held whole: it streams into a file in the run's
/// scratch directory and is kept, as it came, among the rejected records.
///
/// Lines are read in blocks of about [`BLOCK_BYTES`]. Each block is checked on the
/// blocking pool ([`check_record`]: parsing, validation, the payload), as many at
/// a time as [`Limits::workers`] allows beside the parts being encoded, while the writer takes the blocks checked before it in
/// input order: the output is the same as one thread checking line by line.
pub async fn feed<S: Storage>(
    writer: &mut LakeWriter<S>,
    mut reader: impl BufRead,
    source_name: &str,
) -> Result<LineCounts, IngestError> {
    let limits = *writer.limits();
    let mut fed = LineCounts::default();
    let mut checking = VecDeque::new();
    loop {
        while checking.len() >= limits.workers {
            write_oldest(&mut checking, writer, source_name).await?;
        }
        let block = read_block(writer, &mut reader, source_name, &mut fed)?;
        if block.lines.is_empty() {
            while !checking.is_empty() {
                write_oldest(&mut checking, writer, source_name).await?;
            }
            return Ok(fed);
        }
        let permit = writer.worker_permit().await;
        checking.push_back(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            block.checked(&limits)
        }));
    }
}

/// Waits for the oldest block being checked and hands it to the writer.
async fn write_oldest<S: Storage>(
    checking: &mut VecDeque<tokio::task::JoinHandle<CheckedBlock>>,
    writer: &mut LakeWriter<S>,
    source_name: &str,
) -> Result<(), IngestError> {
    if let Some(task) = checking.pop_front() {
        joined(task.await)?.write(writer, source_name).await?;
    }
    Ok(())
}

/// Bytes of lines read into one block, each line counted with what the block
/// keeps for it: enough to keep a core busy for a few milliseconds, little enough
/// that the blocks in flight (one per worker) take a few MiB each.
pub const BLOCK_BYTES: usize = 1 << 20;

/// Lines read from one input.
struct Block {
    bytes: Vec<u8>,
    lines: Vec<BlockLine>,
}

/// A block, and what checking its records found.
struct CheckedBlock {
    block: Block,
    /// One check per [`BlockLine::Record`], in order.
    checks: Vec<Result<CheckedEvent, Rejection>>,
    /// What [`check_record`] wrote for the valid records.
    text: String,
}

enum BlockLine {
    /// A record: its bytes in the block, its line number.
    Record { bytes: Range<usize>, line: u64 },
    /// A line longer than the limit, kept in a scratch file.
    TooLong { file: tempfile::NamedTempFile, len: u64, line: u64 },
}

/// Reads lines up to [`BLOCK_BYTES`] (at least one, unless the input is at its
/// end); blank lines are counted, not kept.
fn read_block<S: Storage>(
    writer: &LakeWriter<S>,
    reader: &mut impl BufRead,
    source_name: &str,
    fed: &mut LineCounts,
) -> Result<Block, IngestError> {
    let read_error = |error| IngestError::Read { source_name: source_name.to_owned(), error };
    let max = writer.limits().max_record_bytes;
    let mut block = Block { bytes: Vec::with_capacity(BLOCK_BYTES + 64 * 1024), lines: Vec::new() };
    while block.bytes.len() + block.lines.len() * std::mem::size_of::<BlockLine>() < BLOCK_BYTES {
        let start = block.bytes.len();
        let end = next_line(reader, &mut block.bytes, max).map_err(read_error)?;
        if end == LineEnd::Eof {
            break;
        }
        fed.lines += 1;
        if end == LineEnd::TooLong {
            let scratch = writer.storage().scratch_dir().map_err(LakeError::from)?;
            let io = |error| LakeError::from(StorageError::Io { path: scratch.to_owned(), source: error });
            let mut file = scratch::new_file_in(scratch).map_err(io)?;
            file.write_all(&block.bytes[start..]).map_err(io)?;
            let rest = copy_rest_of_line(reader, &mut file).map_err(read_error)?;
            let len = (block.bytes.len() - start) as u64 + rest.bytes;
            let blank = rest.blank && is_blank(&block.bytes[start..]);
            block.bytes.truncate(start);
            if blank {
                // Only whitespace, however long: no record (the file goes with it).
                fed.blank += 1;
                continue;
            }
            file.flush().map_err(io)?;
            block.lines.push(BlockLine::TooLong { file, len, line: fed.lines });
            // One stored line per block: a run of them never holds more than a
            // few files open.
            break;
        }
        if is_blank(&block.bytes[start..]) {
            block.bytes.truncate(start);
            fed.blank += 1;
            continue;
        }
        block.lines.push(BlockLine::Record { bytes: start..block.bytes.len(), line: fed.lines });
    }
    Ok(block)
}

impl Block {
    /// Checks every record (on a blocking thread).
    fn checked(self, limits: &Limits) -> CheckedBlock {
        let mut text = Vec::with_capacity(self.bytes.len());
        let checks = (self.lines.iter())
            .filter_map(|line| match line {
                BlockLine::Record { bytes, .. } => {
                    Some(check_record(&self.bytes[bytes.clone()], limits, &mut text))
                }
                BlockLine::TooLong { .. } => None,
            })
            .collect();
        CheckedBlock { block: self, checks, text: checked_text(text) }
    }
}

impl CheckedBlock {
    /// Hands the checked lines to the writer, in order.
    async fn write<S: Storage>(
        self,
        writer: &mut LakeWriter<S>,
        source_name: &str,
    ) -> Result<(), IngestError> {
        let mut checks = self.checks.into_iter();
        for line in self.block.lines {
            match line {
                BlockLine::Record { bytes, line } => {
                    let record = &self.block.bytes[bytes];
                    let origin = Origin { source: source_name, line };
                    let checked = checks.next().expect("one check per record line");
                    writer.accept(record, checked, &self.text, origin).await?;
                }
                BlockLine::TooLong { file, len, line } => {
                    writer.reject_stored(file.path(), len, Origin { source: source_name, line }).await?;
                }
            }
        }
        Ok(())
    }
}

/// How [`next_line`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// A whole line (its newline consumed, not kept).
    Line,
    /// The line is longer than the limit: `max + 1` bytes of it are read, the
    /// rest is not.
    TooLong,
    /// Nothing left.
    Eof,
}

/// Reads the next line to the end of `line` (without its newline), taking at
/// most `max + 1` bytes of it.
pub fn next_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<LineEnd> {
    let start = line.len();
    let mut started = false;
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(if started { LineEnd::Line } else { LineEnd::Eof });
        }
        started = true;
        let room = max + 1 - (line.len() - start);
        match memchr::memchr(b'\n', available) {
            Some(end) if end < room => {
                line.extend_from_slice(&available[..end]);
                reader.consume(end + 1);
                return Ok(LineEnd::Line);
            }
            _ => {
                let take = available.len().min(room);
                line.extend_from_slice(&available[..take]);
                reader.consume(take);
                if line.len() - start > max {
                    return Ok(LineEnd::TooLong);
                }
            }
        }
    }
}

/// The reader's buffered bytes, refilled if empty (empty at the end); a read
/// interrupted by a signal is tried again.
fn fill(reader: &mut impl BufRead) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            _ => return reader.fill_buf(),
        }
    }
}

/// A line holding nothing but JSON whitespace other than newline: no record.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// What [`copy_rest_of_line`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rest {
    pub bytes: u64,
    /// Whether it was all whitespace (see [`is_blank`]).
    pub blank: bool,
}

/// Copies the rest of the current line to `out` (its newline consumed, not
/// copied).
pub fn copy_rest_of_line(reader: &mut impl BufRead, out: &mut impl Write) -> io::Result<Rest> {
    let mut rest = Rest { bytes: 0, blank: true };
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(rest);
        }
        let (end, newline) = match memchr::memchr(b'\n', available) {
            Some(end) => (end, true),
            None => (available.len(), false),
        };
        out.write_all(&available[..end])?;
        rest.bytes += end as u64;
        rest.blank &= is_blank(&available[..end]);
        reader.consume(end + usize::from(newline));
        if newline {
            return Ok(rest);
        }
    }
}

/// A digest of a run's input content: the same bytes give the same digest, and so
/// the same output names.
#[derive(Default)]
pub struct ContentDigest(Xxh3);

impl ContentDigest {
    /// Adds one input, read to its end.
    pub fn add(&mut self, mut input: impl Read) -> io::Result<u64> {
        let mut buffer = vec![0; READ_BUFFER];
        let mut total = 0_u64;
        loop {
            let read = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            self.0.update(&buffer[..read]);
            total += read as u64;
        }
        // The length separates inputs: ["ab", "c"] and ["a", "bc"] differ.
        self.0.update(&total.to_le_bytes());
        Ok(total)
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    use crate::lake::storage::LocalDir;
    use crate::lake::writer::SourceId;

    /// A block ends after a line kept in a scratch file (a run of long lines
    /// never holds many files open), and counts what it keeps for each line (a
    /// run of tiny lines never makes a block of millions of entries).
    #[test]
    fn blocks_stay_small_whatever_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { max_record_bytes: 10, ..Limits::default() };
        let writer = LakeWriter::new(LocalDir::new(dir.path()), SourceId::from_digest(1), limits);
        let mut fed = LineCounts::default();
        let long = format!("{}\n", "x".repeat(20)).repeat(5);
        let mut reader = io::Cursor::new(long);
        for expected_line in 1..=5 {
            let block = read_block(&writer, &mut reader, "in", &mut fed).unwrap();
            let lines: Vec<(u64, u64)> = block
                .lines
                .iter()
                .map(|entry| match entry {
                    BlockLine::TooLong { line, len, .. } => (*line, *len),
                    BlockLine::Record { line, .. } => (*line, 0),
                })
                .collect();
            assert_eq!(lines, [(expected_line, 20)]);
        }
        assert!(read_block(&writer, &mut reader, "in", &mut fed).unwrap().lines.is_empty());

        let mut reader = io::Cursor::new("1\n".repeat(1_000_000));
        let block = read_block(&writer, &mut reader, "in", &mut fed).unwrap();
        let kept = block.bytes.len() + block.lines.len() * std::mem::size_of::<BlockLine>();
        assert!(kept <= BLOCK_BYTES + std::mem::size_of::<BlockLine>() + 1, "{} lines", block.lines.len());
        assert!(block.lines.len() < 100_000, "{} lines", block.lines.len());
    }

    #[test]
    fn gzip_is_detected_by_content() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"{\"a\":1}\n").unwrap();
        let compressed = encoder.finish().unwrap();
        let mut text = String::new();
        decompressing_reader(&compressed[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        text.clear();
        decompressing_reader(&b"plain\n"[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "plain\n");
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let member = |text: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text).unwrap();
            encoder.finish().unwrap()
        };
        let both = [member(b"one\n"), member(b"two\n")].concat();
        let mut text = String::new();
        decompressing_reader(&both[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "one\ntwo\n");
    }

    #[test]
    fn lines_past_the_limit_stop_being_read_and_their_rest_streams_out() {
        let input = b"short\n\n0123456789abcdef\nafter";
        // A reader that hands out 3 bytes at a time, to cross every boundary.
        let mut reader = BufReader::with_capacity(3, &input[..]);
        let mut line = Vec::new();
        let mut next = |reader: &mut BufReader<&[u8]>| {
            line.clear();
            let end = next_line(reader, &mut line, 8).unwrap();
            (end, String::from_utf8(line.clone()).unwrap())
        };
        assert_eq!(next(&mut reader), (LineEnd::Line, "short".into()));
        assert_eq!(next(&mut reader), (LineEnd::Line, "".into()));
        assert_eq!(next(&mut reader), (LineEnd::TooLong, "012345678".into()));
        let mut rest = Vec::new();
        assert_eq!(copy_rest_of_line(&mut reader, &mut rest).unwrap(), Rest { bytes: 7, blank: false });
        assert_eq!(rest, b"9abcdef");
        assert_eq!(next(&mut reader), (LineEnd::Line, "after".into()));
        assert_eq!(next(&mut reader), (LineEnd::Eof, "".into()));
        // Exactly at the limit is a line.
        let mut reader = BufReader::new(&b"12345678\n"[..]);
        assert_eq!(next(&mut reader), (LineEnd::Line, "12345678".into()));
        // A long line of whitespace is known to be blank once copied.
        let mut reader = BufReader::with_capacity(3, &b"                 \t \r\nx"[..]);
        assert_eq!(next(&mut reader).0, LineEnd::TooLong);
        assert_eq!(copy_rest_of_line(&mut reader, &mut Vec::new()).unwrap(), Rest { bytes: 11, blank: true });
    }

    #[test]
    fn digests_separate_inputs() {
        let digest = |parts: &[&[u8]]| {
            let mut digest = ContentDigest::default();
            for part in parts {
                digest.add(*part).unwrap();
            }
            digest.finish()
        };
        assert_eq!(digest(&[b"ab", b"c"]), digest(&[b"ab", b"c"]));
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
