//! `eventlake tail --checkpoint FILE`: the checkpoint as a JSON file, rewritten
//! atomically (a new file beside it, synced, renamed over it), so a crash leaves
//! the old positions or the new ones, never a torn file. A lock beside it
//! (`FILE.lock`) keeps a second tail off the same file.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::shards::Checkpoint;

/// Why the checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointFileError {
    /// Another tail holds the file's lock.
    #[error("{0} is in use by another tail (its lock {0}.lock is held); two tails on one checkpoint would both write the same events")]
    InUse(String),
    /// The file is not a checkpoint.
    #[error(
        "{path} is not a tail checkpoint ({reason}); give another --checkpoint, or remove it to start over"
    )]
    Malformed { path: String, reason: String },
    /// Reading or writing failed.
    #[error("checkpoint {path}")]
    Io { path: String, source: std::io::Error },
}

/// The checkpoint file, locked for this process.
pub struct CheckpointFile {
    path: PathBuf,
    /// Held while the file is used; the lock goes with it.
    _lock: File,
}

impl CheckpointFile {
    /// Locks `path` for this process (the file itself may not exist yet).
    pub fn open(path: &Path) -> Result<Self, CheckpointFileError> {
        let io = |source| CheckpointFileError::Io { path: path.display().to_string(), source };
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = std::io::Error::last_os_error();
            return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
                CheckpointFileError::InUse(path.display().to_string())
            } else {
                io(error)
            });
        }
        Ok(CheckpointFile { path: path.to_owned(), _lock: lock })
    }

    /// The checkpoint the file holds, if it exists.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointFileError::Io { path: self.path.display().to_string(), source })
            }
        };
        serde_json::from_str(&text).map(Some).map_err(|error| CheckpointFileError::Malformed {
            path: self.path.display().to_string(),
            reason: error.to_string(),
        })
    }

    /// Replaces the file with `checkpoint`, atomically and durably.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointFileError> {
        let io = |source| CheckpointFileError::Io { path: self.path.display().to_string(), source };
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(&directory).map_err(io)?;
        let mut bytes = serde_json::to_vec_pretty(checkpoint).unwrap_or_default();
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(io)?;
        file.as_file().sync_all().map_err(io)?;
        file.persist(&self.path).map_err(|error| io(error.error))?;
        File::open(&directory).and_then(|dir| dir.sync_all()).map_err(io)?;
        Ok(())
    }
}
