//! What a local lake holds: its partitions and their Parquet files.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::core::partition::{Partition, EVENTS_DIR};

/// The partitions under `events/`, sorted, by directory; other directories are
/// ignored (and logged). A lake with no `events/` (nothing written yet, every
/// record rejected) holds none.
pub fn partitions(root: &Path) -> io::Result<Vec<(Partition, PathBuf)>> {
    let events = root.join(EVENTS_DIR);
    if !events.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let read = |dir: &Path| {
        std::fs::read_dir(dir)
            .map_err(|error| io::Error::new(error.kind(), format!("listing {}: {error}", dir.display())))
    };
    for type_dir in read(&events)? {
        let type_dir = type_dir?;
        if !type_dir.file_type()?.is_dir() {
            continue;
        }
        for date_dir in read(&type_dir.path())? {
            let date_dir = date_dir?;
            let names = (type_dir.file_name(), date_dir.file_name());
            match Partition::from_directories(&names.0.to_string_lossy(), &names.1.to_string_lossy()) {
                Some(partition) if date_dir.file_type()?.is_dir() => found.push((partition, date_dir.path())),
                _ => {
                    tracing::warn!(directory = %date_dir.path().display(), "not a partition the writer makes; ignored")
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A Parquet file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    pub name: String,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// The Parquet files directly in a partition's directory, by name.
pub fn parquet_files(dir: &Path) -> io::Result<Vec<PartFile>> {
    let mut files = Vec::new();
    let listing = std::fs::read_dir(dir)
        .map_err(|error| io::Error::new(error.kind(), format!("listing {}: {error}", dir.display())))?;
    for entry in listing {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".parquet") && entry.file_type()?.is_file() {
            let metadata = entry.metadata()?;
            files.push(PartFile { name, bytes: metadata.len(), modified: metadata.modified()? });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// One partition of a local lake as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionSummary {
    pub event_type: String,
    pub created_date: String,
    pub files: usize,
    pub bytes: u64,
    /// From the files' footers, no data read (a local lake); from the typed
    /// views' counts (an S3 lake), none for a partition they do not hold yet.
    pub rows: Option<u64>,
}

/// Every partition of the lake at `root` with its files, bytes and rows.
pub fn summaries(root: &Path) -> io::Result<Vec<PartitionSummary>> {
    let mut found = Vec::new();
    for (partition, dir) in partitions(root)? {
        let files = parquet_files(&dir)?;
        let mut rows = 0;
        for file in &files {
            rows += footer_rows(&dir.join(&file.name))?;
        }
        found.push(PartitionSummary {
            event_type: partition.event_type.clone(),
            created_date: partition.created_date.to_string(),
            files: files.len(),
            bytes: files.iter().map(|file| file.bytes).sum(),
            rows: Some(rows),
        });
    }
    Ok(found)
}

/// The rows a Parquet file's footer declares.
fn footer_rows(path: &Path) -> io::Result<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(path)?;
    let reader = SerializedFileReader::new(file).map_err(|error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display()))
    })?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

/// A rejected record as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedRecord {
    /// `<file>:<line>`: what a replay of a selection names.
    pub id: String,
    pub file: String,
    pub line: u64,
    pub code: String,
    pub reason: String,
    /// The record's text, cut at [`SHOWN_RECORD_CHARS`]; a note for one kept
    /// as base64 or stored beside the entries.
    pub record: String,
}

/// The most characters of a rejected record shown.
pub const SHOWN_RECORD_CHARS: usize = 2_000;

/// The directory of a local lake's rejected records.
pub const REJECTED_DIR: &str = "_rejected";

/// Rejected records as they are listed: the first ones kept, how many
/// entries there are, their counts by reason's code, and whether the reading
/// stopped at a bound before the end. Local and S3 lakes fill it alike.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub records: Vec<RejectedRecord>,
    pub total: u64,
    pub by_code: std::collections::BTreeMap<String, u64>,
    pub cut: bool,
}

/// A `_rejected/` entry's fields the listing reads (what `lake::writer` writes).
#[derive(serde::Deserialize)]
struct Entry {
    code: String,
    reason: String,
    record: Option<String>,
    record_base64: Option<String>,
    record_key: Option<String>,
}

impl Rejected {
    /// Counts line `line` of the `_rejected/` file `file`, and keeps it as one of
    /// the first `limit` if `keep` takes its record's text (the whole text); a
    /// line that is no entry counts as `unreadable`.
    pub fn add_line(
        &mut self,
        file: &str,
        line: u64,
        bytes: &[u8],
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) {
        let Ok(entry) = serde_json::from_slice::<Entry>(bytes) else {
            return self.add(None, limit);
        };
        self.total += 1;
        *self.by_code.entry(entry.code.clone()).or_insert(0) += 1;
        if self.records.len() < limit && keep(entry.record.as_deref().unwrap_or_default()) {
            let record = match (entry.record, entry.record_base64, entry.record_key) {
                (Some(text), _, _) => text.chars().take(SHOWN_RECORD_CHARS).collect(),
                (None, Some(base64), _) => format!("(not UTF-8: {} bytes of base64)", base64.len()),
                (None, None, Some(key)) => format!("(over 1,000 KiB, stored at {key})"),
                (None, None, None) => String::new(),
            };
            let (id, file) = (format!("{file}:{line}"), file.to_owned());
            self.records.push(RejectedRecord {
                id,
                file,
                line,
                code: entry.code,
                reason: entry.reason,
                record,
            });
        }
    }

    /// Counts a record read elsewhere (`None`: a line that is no record), and
    /// keeps it as one of the first `limit`.
    pub fn add(&mut self, record: Option<RejectedRecord>, limit: usize) {
        self.total += 1;
        let code = record.as_ref().map_or("unreadable", |record| record.code.as_str());
        *self.by_code.entry(code.to_owned()).or_insert(0) += 1;
        if let Some(record) = record.filter(|_| self.records.len() < limit) {
            self.records.push(record);
        }
    }
}

/// The entries of `_rejected/*.ndjson` (files by name, lines numbered as the
/// file's, blank ones counted and skipped): the first `limit` whose record's
/// text `keep` takes, and every entry counted by code; one line in memory at a
/// time. A record too large to repeat in its entry is counted once, by its entry
/// (the `.record` file beside it is not another).
pub fn rejected(root: &Path, limit: usize, keep: impl Fn(&str) -> bool) -> io::Result<Rejected> {
    use std::io::BufRead;
    let mut names: Vec<String> = match std::fs::read_dir(root.join(REJECTED_DIR)) {
        Ok(listing) => listing
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".ndjson"))
            .collect(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error),
    };
    names.sort();
    let mut found = Rejected::default();
    for name in names {
        let file = std::fs::File::open(root.join(REJECTED_DIR).join(&name))?;
        for (index, line) in io::BufReader::new(file).split(b'\n').enumerate() {
            let line = line?;
            if !line.is_empty() {
                found.add_line(&name, index as u64 + 1, &line, limit, &keep);
            }
        }
    }
    Ok(found)
}

/// A selection's ids (`<file>:<line>`) by file, each with its lines and their
/// places in the selection; an id that names no plain `.ndjson` file name or no
/// line is refused.
pub fn selection_by_file(ids: &[String]) -> io::Result<std::collections::BTreeMap<&str, Vec<(u64, usize)>>> {
    let invalid =
        |id: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{id:?} names no rejected record"));
    let mut wanted: std::collections::BTreeMap<&str, Vec<(u64, usize)>> = std::collections::BTreeMap::new();
    for (position, id) in ids.iter().enumerate() {
        let (file, line) = id.rsplit_once(':').ok_or_else(|| invalid(id))?;
        let line: u64 = line.parse().map_err(|_| invalid(id))?;
        let plain = !file.is_empty()
            && !file.starts_with('.')
            && !file.contains(['/', '\\'])
            && file.ends_with(".ndjson");
        if !plain || line == 0 {
            return Err(invalid(id));
        }
        wanted.entry(file).or_default().push((line, position));
    }
    Ok(wanted)
}

/// The lines `ids` (`<file>:<line>` of [`rejected`]) name, as they are
/// in `_rejected/`, in the order given; an id that names no line of a rejected
/// file (another directory, a line past the end) is refused.
pub fn rejected_lines(root: &Path, ids: &[String]) -> io::Result<Vec<Vec<u8>>> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
    for (file, lines) in selection_by_file(ids)? {
        let path = root.join(REJECTED_DIR).join(file);
        let bytes = std::fs::read(&path).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{file:?} is no file of {REJECTED_DIR}/"))
        })?;
        pick_lines(&bytes, &lines, &mut found);
    }
    ids.iter()
        .zip(found)
        .map(|(id, line)| {
            line.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{id:?} names no rejected record"))
            })
        })
        .collect()
}

/// Puts each wanted line (number from 1, place in the selection) of `bytes` in its place.
pub fn pick_lines(bytes: &[u8], lines: &[(u64, usize)], found: &mut [Option<Vec<u8>>]) {
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        for (_, position) in lines.iter().filter(|(wanted, _)| *wanted == index as u64 + 1) {
            found[*position] = Some(line.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_names_a_plain_rejected_file_and_a_line_from_one() {
        let ids = ["a-00000.ndjson:3".to_owned(), "a-00000.ndjson:1".to_owned(), "b.ndjson:2".to_owned()];
        let by_file = selection_by_file(&ids).unwrap();
        assert_eq!(by_file["a-00000.ndjson"], [(3, 0), (1, 1)]);
        assert_eq!(by_file["b.ndjson"], [(2, 2)]);
        for bad in
            ["../x.ndjson:1", "a/b.ndjson:1", ".hidden.ndjson:1", "x.ndjson:0", "x.ndjson", "x.txt:1", ":1"]
        {
            assert!(selection_by_file(&[bad.to_owned()]).is_err(), "{bad}");
        }
        let mut found = vec![None; 2];
        pick_lines(b"one\n\nthree\n", &[(3, 0), (4, 1)], &mut found);
        assert_eq!(
            found,
            [Some(b"three".to_vec()), None],
            "lines numbered as the file's, blank ones counted"
        );
    }

    #[test]
    fn a_record_kept_beside_its_entry_is_counted_once_and_blank_lines_keep_their_numbers() {
        let lake = tempfile::tempdir().unwrap();
        let dir = lake.path().join(REJECTED_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let large = r#"{"source":"s","line":1,"code":"record_too_large","reason":"too large","record_key":"_rejected/x-large-00000.record"}"#;
        let other = r#"{"source":"s","line":3,"code":"invalid_json","reason":"r","record":"nope"}"#;
        std::fs::write(dir.join("x-00000.ndjson"), format!("{large}\n\n{other}\nnot an entry\n")).unwrap();
        std::fs::write(dir.join("x-large-00000.record"), b"x".repeat(100)).unwrap();
        let found = rejected(lake.path(), 10, |_| true).unwrap();
        let by_code: Vec<(&str, u64)> = found.by_code.iter().map(|(code, n)| (code.as_str(), *n)).collect();
        assert_eq!(by_code, [("invalid_json", 1), ("record_too_large", 1), ("unreadable", 1)]);
        assert_eq!(found.total, 3);
        let ids: Vec<&str> = found.records.iter().map(|record| record.id.as_str()).collect();
        assert_eq!(ids, ["x-00000.ndjson:1", "x-00000.ndjson:3"]);
        assert_eq!(found.records[0].record, "(over 1,000 KiB, stored at _rejected/x-large-00000.record)");
        let kept = rejected(lake.path(), 10, |text| text == "nope").unwrap();
        assert_eq!(
            (kept.records.len(), kept.total),
            (1, 3),
            "keep picks what is shown, every entry is counted"
        );
    }

    proptest::proptest! {
        /// No id names anything but a file directly in `_rejected/`.
        #[test]
        fn no_selection_reaches_outside_the_rejected_directory(id in proptest::prelude::any::<String>()) {
            if let Ok(by_file) = selection_by_file(&[id]) {
                for (file, lines) in by_file {
                    proptest::prop_assert!(!file.contains('/') && !file.contains('\\') && !file.starts_with('.'));
                    proptest::prop_assert!(file.ends_with(".ndjson") && lines.iter().all(|(line, _)| *line >= 1));
                }
            }
        }

        /// Any bytes give an entry or nothing, never a panic.
        #[test]
        fn any_line_is_an_entry_or_nothing(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            Rejected::default().add_line("f.ndjson", 1, &bytes, 10, |_| true);
            let mut found = vec![None; 1];
            pick_lines(&bytes, &[(2, 0)], &mut found);
        }
    }
}
