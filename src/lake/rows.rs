//! A partition's rows between parsing and Parquet: an in-memory buffer, and spill
//! files on local disk for rows that do not fit the memory budget.
//!
//! Spilling keeps memory bounded without cutting a partition into many small
//! files: rows wait on disk and are written later in full-size parts. A spill file
//! is a sequence of records in a compact binary layout (lengths little-endian):
//! uuid (16), millis (8), flags (1: bit 0 fraction, bit 1 subtype), then
//! name, subtype (when flagged) and payload, each as a u32 length and UTF-8 bytes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::PathBuf;

use uuid::Uuid;

use crate::core::timestamp::EventTime;
use crate::lake::encoder::Row;

/// A row whose text lives in an arena: a partition buffer's, or a block's of
/// checked records.
#[derive(Debug, Clone)]
pub struct TextRow {
    pub uuid: Uuid,
    pub time: EventTime,
    pub name: Range<usize>,
    pub subtype: Option<Range<usize>>,
    pub payload: Range<usize>,
}

impl TextRow {
    /// The row, borrowing its text from `text`, the arena it was written in.
    pub fn row<'t>(&self, text: &'t str) -> Row<'t> {
        Row {
            uuid: self.uuid,
            name: &text[self.name.clone()],
            subtype: self.subtype.clone().map(|range| &text[range]),
            time: self.time,
            payload: &text[self.payload.clone()],
        }
    }
}

/// Rows of one partition, text in one arena (one allocation, not one per row).
#[derive(Debug, Default)]
pub struct Buffer {
    rows: Vec<TextRow>,
    text: String,
}

impl Buffer {
    /// Memory the rows take, as counted against the writer's limits: allocated
    /// capacity, not length, since growth by doubling can leave half unused.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.rows.capacity() * std::mem::size_of::<TextRow>()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds a row, copying its text.
    pub fn push_row(&mut self, row: &Row<'_>) {
        self.push(row.uuid, row.time, row.name, row.subtype, row.payload);
    }

    fn push(&mut self, uuid: Uuid, time: EventTime, name: &str, subtype: Option<&str>, payload: &str) {
        let mut append = |text: &str| {
            let start = self.text.len();
            self.text.push_str(text);
            start..self.text.len()
        };
        let name = append(name);
        let subtype = subtype.map(&mut append);
        let payload = append(payload);
        self.rows.push(TextRow { uuid, time, name, subtype, payload });
    }

    /// The rows, borrowing their text, for encoding.
    pub fn rows(&self) -> Vec<Row<'_>> {
        self.rows.iter().map(|row| row.row(&self.text)).collect()
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        for row in self.rows() {
            let flags = u8::from(row.time.has_fraction()) | (u8::from(row.subtype.is_some()) << 1);
            out.write_all(row.uuid.as_bytes())?;
            out.write_all(&row.time.millis().to_le_bytes())?;
            out.write_all(&[flags])?;
            for text in [Some(row.name), row.subtype, Some(row.payload)].into_iter().flatten() {
                out.write_all(&(text.len() as u32).to_le_bytes())?;
                out.write_all(text.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Reads one spilled row; `Ok(false)` at the end of the file.
    fn read_row(&mut self, input: &mut impl Read, scratch: &mut Vec<u8>) -> io::Result<bool> {
        let mut head = [0_u8; 25];
        match input.read_exact(&mut head) {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            other => other?,
        }
        let corrupt = || io::Error::new(io::ErrorKind::InvalidData, "corrupt spill file");
        let uuid = Uuid::from_slice(&head[..16]).map_err(|_| corrupt())?;
        let millis = i64::from_le_bytes(head[16..24].try_into().map_err(|_| corrupt())?);
        let time = EventTime::from_parts(millis, head[24] & 1 != 0).ok_or_else(corrupt)?;
        let mut read_text = |scratch: &mut Vec<u8>| -> io::Result<String> {
            let mut length = [0_u8; 4];
            input.read_exact(&mut length)?;
            scratch.resize(u32::from_le_bytes(length) as usize, 0);
            input.read_exact(scratch)?;
            String::from_utf8(std::mem::take(scratch)).map_err(|_| corrupt())
        };
        let name = read_text(scratch)?;
        let subtype = if head[24] & 2 != 0 { Some(read_text(scratch)?) } else { None };
        let payload = read_text(scratch)?;
        self.push(uuid, time, &name, subtype.as_deref(), &payload);
        Ok(true)
    }
}

/// Spill files of one run, in a directory removed when dropped.
pub struct Spill {
    dir: tempfile::TempDir,
    files: HashMap<String, PathBuf>,
    bytes: u64,
}

impl Spill {
    /// A new spill directory under `parent` (the run's scratch directory).
    pub fn new(parent: &std::path::Path) -> io::Result<Self> {
        Ok(Spill {
            dir: tempfile::Builder::new().prefix("spill-").tempdir_in(parent)?,
            files: HashMap::new(),
            bytes: 0,
        })
    }

    /// Appends `buffer`'s rows to the spill file called `name`. Files are named
    /// by number, not by `name`: two names that differ only in case would be one
    /// file on a case-insensitive file system.
    pub fn append(&mut self, name: &str, buffer: &Buffer) -> io::Result<()> {
        let number = self.files.len();
        let path = self
            .files
            .entry(name.to_owned())
            .or_insert_with(|| self.dir.path().join(format!("{number}.spill")));
        let file = OpenOptions::new().create(true).append(true).open(&*path)?;
        let before = file.metadata()?.len();
        let mut out = BufWriter::with_capacity(1 << 20, file);
        buffer.write_to(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        self.bytes += file.metadata()?.len() - before;
        Ok(())
    }

    /// Total bytes written to spill files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Opens the spill file called `name`, if anything was spilled under it.
    pub fn reader(&self, name: &str) -> io::Result<Option<SpillReader>> {
        let Some(path) = self.files.get(name) else { return Ok(None) };
        Ok(Some(SpillReader {
            input: BufReader::with_capacity(1 << 20, File::open(path)?),
            scratch: Vec::new(),
        }))
    }
}

/// Reads spilled rows back, a buffer at a time.
pub struct SpillReader {
    input: BufReader<File>,
    scratch: Vec<u8>,
}

impl SpillReader {
    /// Fills `buffer` until it holds `limit` bytes or the file ends; false when no
    /// row was left.
    pub fn fill(&mut self, buffer: &mut Buffer, limit: usize) -> io::Result<bool> {
        let before = buffer.len();
        while buffer.bytes() < limit && buffer.read_row(&mut self.input, &mut self.scratch)? {}
        Ok(buffer.len() > before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_rows_come_back_exactly() {
        let mut buffer = Buffer::default();
        let time = |t| EventTime::from_json_number(t).unwrap();
        buffer.push(Uuid::from_u128(1), time("1710689696.5"), "a:b", Some("b"), r#"{"é":1}"#);
        buffer.push(Uuid::from_u128(2), time("0"), "a", None, "{}");
        let mut spill = Spill::new(&std::env::temp_dir()).unwrap();
        spill.append("part", &buffer).unwrap();
        spill.append("part", &buffer).unwrap();
        let mut reader = spill.reader("part").unwrap().unwrap();
        let mut back = Buffer::default();
        assert!(reader.fill(&mut back, usize::MAX).unwrap());
        let rows = back.rows();
        assert_eq!(rows.len(), 4);
        let original = buffer.rows();
        for (row, want) in rows.iter().zip(original.iter().chain(original.iter())) {
            assert_eq!(
                (row.uuid, row.time, row.name, row.subtype, row.payload),
                (want.uuid, want.time, want.name, want.subtype, want.payload)
            );
        }
        assert!(!reader.fill(&mut back, usize::MAX).unwrap());
        assert!(spill.reader("other").unwrap().is_none());
    }

    #[test]
    fn reading_back_stops_at_the_limit() {
        let mut buffer = Buffer::default();
        for i in 0..100 {
            buffer.push(Uuid::from_u128(i), EventTime::from_millis(0).unwrap(), "a", None, "{}");
        }
        let mut spill = Spill::new(&std::env::temp_dir()).unwrap();
        spill.append("p", &buffer).unwrap();
        let mut reader = spill.reader("p").unwrap().unwrap();
        let limit = buffer.bytes() / 3;
        let mut chunks = 0;
        let mut rows = 0;
        loop {
            let mut chunk = Buffer::default();
            if !reader.fill(&mut chunk, limit).unwrap() {
                break;
            }
            chunks += 1;
            rows += chunk.len();
        }
        assert_eq!(rows, 100);
        assert!(chunks >= 3);
    }
}
