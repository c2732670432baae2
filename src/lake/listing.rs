//! What a local lake holds: its partitions and their Parquet files.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::core::partition::{Partition, EVENTS_DIR};

/// The partitions under `events/`, sorted, by directory; other directories are
/// ignored (and logged).
pub fn partitions(root: &Path) -> io::Result<Vec<(Partition, PathBuf)>> {
    let events = root.join(EVENTS_DIR);
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
