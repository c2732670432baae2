//! Where the lake's objects live, behind one small trait, so the CLI, the Lambda
//! and the tests run the same writer: a local directory here, an S3 prefix in
//! [`crate::aws::s3`].
//!
//! Every write is whole or nothing: a local file is written beside its final name
//! and renamed into place.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::core::partition;
use crate::lake::scratch::{self, RunDir};

/// A storage failure: the write did not happen and may be retried.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A key that could escape the storage root or is not a plain relative path.
    #[error("refusing object key {key:?}: {why}")]
    InvalidKey { key: String, why: &'static str },
    /// A local file operation failed.
    #[error("{path}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An S3 call failed after the SDK's retries.
    #[error("{operation} s3://{bucket}/{key}: {message}")]
    S3 { operation: &'static str, bucket: String, key: String, message: String },
}

/// A place that stores whole objects under relative keys (`events/…/x.parquet`).
pub trait Storage: Send + Sync {
    /// Stores `bytes` at `key`, replacing any object there, whole or not at all.
    fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores the content of the local file at `path` at `key`, like [`Storage::put`],
    /// without holding it in memory whole. The file may be moved away.
    fn put_file(&self, key: &str, path: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// This run's private local directory (spill files, oversized records): for a
    /// local lake under its `_tmp/`, else under the system's temporary directory.
    /// Removed when the run ends; a killed run's is removed by the next run.
    fn scratch_dir(&self) -> Result<&Path, StorageError>;

    /// The whole object at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Vec<u8>, StorageError>> + Send;

    /// The names of the objects directly in the directory `dir` (no `/` inside a
    /// name) that begin with `name_prefix`, sorted; empty when there is none. On S3
    /// the prefix is part of the request: a run looking for its own files reads
    /// one short page, however many files other runs wrote there.
    fn list(
        &self,
        dir: &str,
        name_prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Deletes the object at `key`; deleting what is not there is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// For a store whose names may be case-insensitive (a local directory): the
    /// event types under `events/`, as spelled there. `None` for S3.
    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError>;

    /// For a store whose names may be case-insensitive: takes `spelling` as the
    /// event type's one spelling unless the store holds another spelling of it
    /// already (returned), atomically across processes. S3: always taken.
    fn claim_event_type(&self, spelling: &str) -> Result<Option<String>, StorageError>;

    /// Where `key` is, for messages: a path or an `s3://` URL.
    fn describe(&self, key: &str) -> String;
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { path, source }
}

/// Checks that `key` is a plain relative path: no empty, `.` or `..` segments, no
/// leading slash, no backslash or NUL. Keys are built from validated values; this
/// is the last line of defence before the file system or S3.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |why| Err(StorageError::InvalidKey { key: key.to_owned(), why });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.contains(['\\', '\0']) {
        return invalid("backslash or NUL");
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return invalid("empty, '.' or '..' path segment (or a leading '/')");
    }
    Ok(())
}

/// The root of a lake: a local directory or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Reads `DIR` or `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(
                "the lake path is empty: name a directory (`.` for this one) or s3://bucket/prefix".into()
            );
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{text:?} has no bucket name"));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            validate_key(prefix).map_err(|e| e.to_string())?;
        }
        Ok(Location::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

/// The lock a local lake's event type spellings are claimed under.
const SPELLINGS_LOCK: &str = "spellings";

/// A directory on the local file system.
///
/// Files are written in the run's scratch directory (`<root>/_tmp/run-*`, where no
/// lake reader looks) and renamed into place: readers never see half a file, and
/// a killed run leaves nothing inside `events/` or `_rejected/`.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    scratch: Arc<OnceLock<RunDir>>,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into(), scratch: Arc::default() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of `key`, its parent directory created.
    fn destination(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        let path = self.root.join(key);
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        Ok(path)
    }
}

/// The result of a task on the blocking pool: its panic goes on in the caller,
/// its cancellation (the runtime shutting down) is returned.
pub fn unless_panicked<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, tokio::task::JoinError> {
    result.map_err(|error| match error.try_into_panic() {
        Ok(panic) => std::panic::resume_unwind(panic),
        Err(cancelled) => cancelled,
    })
}

/// Writes `bytes` to `path` through a new file in `scratch`, renamed into place.
fn write_through(scratch: &Path, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut temporary = scratch::new_file_in(scratch).map_err(io_error(scratch))?;
    std::io::Write::write_all(&mut temporary, bytes).map_err(io_error(temporary.path()))?;
    temporary.persist(path).map_err(|e| io_error(path)(e.error))?;
    Ok(())
}

impl Storage for LocalDir {
    /// On the blocking pool, directories included: creating files costs the file
    /// system more than writing them, and puts awaited together run at once.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let (dir, owned_key) = (self.clone(), key.to_owned());
        let written = unless_panicked(
            tokio::task::spawn_blocking(move || {
                write_through(dir.scratch_dir()?, &dir.destination(&owned_key)?, &bytes)
            })
            .await,
        );
        written.map_err(|cancelled| StorageError::Io {
            path: self.root.join(key),
            source: std::io::Error::other(cancelled),
        })?
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let destination = self.destination(key)?;
        // Same file system when `path` is in the scratch directory: one rename.
        if std::fs::rename(path, &destination).is_ok() {
            return Ok(());
        }
        let scratch = self.scratch_dir()?;
        let temporary = scratch::new_file_in(scratch).map_err(io_error(scratch))?;
        std::fs::copy(path, temporary.path()).map_err(io_error(path))?;
        temporary.persist(&destination).map_err(|e| io_error(&destination)(e.error))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        validate_key(key)?;
        let path = self.root.join(key);
        std::fs::read(&path).map_err(io_error(&path))
    }

    async fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_key(dir)?;
        let path = self.root.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&path))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.extend(
                    entry
                        .file_name()
                        .to_str()
                        .filter(|name| name.starts_with(name_prefix))
                        .map(str::to_owned),
                );
            }
        }
        names.sort();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let path = self.root.join(key);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path)(error)),
            _ => Ok(()),
        }
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        let events = self.root.join(partition::EVENTS_DIR);
        let entries = match std::fs::read_dir(&events) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
            Err(error) => return Err(io_error(&events)(error)),
        };
        let mut types = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_error(&events))?.file_name();
            types.extend(name.to_str().and_then(partition::event_type_of_directory).map(str::to_owned));
        }
        Ok(Some(types))
    }

    fn claim_event_type(&self, spelling: &str) -> Result<Option<String>, StorageError> {
        // Under the lake's lock, two runs cannot both find no other spelling and
        // both create theirs: the second finds the first's directory.
        let lock_path = scratch::lake_scratch_parent(&self.root);
        let _lock = scratch::lock_lake(&self.root, SPELLINGS_LOCK, true).map_err(io_error(&lock_path))?;
        let folded = spelling.to_ascii_lowercase();
        let existing = self.event_type_spellings()?.unwrap_or_default();
        if let Some(other) = existing.into_iter().find(|other| other.to_ascii_lowercase() == folded) {
            return Ok((other != spelling).then_some(other));
        }
        let dir = self.root.join(partition::EVENTS_DIR).join(format!("event_type={spelling}"));
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(None)
    }

    fn scratch_dir(&self) -> Result<&Path, StorageError> {
        if self.scratch.get().is_none() {
            let parent = scratch::lake_scratch_parent(&self.root);
            let created = RunDir::create(&parent, scratch::LAKE_RUN_PREFIX).map_err(io_error(&parent))?;
            let _ = self.scratch.set(created);
        }
        Ok(self.scratch.get().map(RunDir::path).unwrap_or(&self.root))
    }

    fn describe(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

/// What one level of an S3 "directory" holds.
/// Swaps the directories `a` and `b` in one step: a reader of either path sees the
/// one directory or the other, never neither (Linux `renameat2` with
/// `RENAME_EXCHANGE`, macOS `renamex_np` with `RENAME_SWAP`). Both must exist, on
/// one file system.
pub fn exchange_dirs(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))
    };
    let (a, b) = (path(a)?, path(b)?);
    #[cfg(target_os = "linux")]
    // SAFETY: both pointers are NUL-terminated strings that live across the call.
    let result = unsafe {
        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
    };
    #[cfg(target_os = "macos")]
    // SAFETY: as above.
    let result = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    let result = {
        let _ = (a, b);
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no atomic directory exchange on this system",
        ));
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_the_root_are_refused() {
        for key in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\0b", "a/"] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        for key in
            ["events/event_type=a.b/created_date=2024-03-17/x.parquet", "_rejected/x.ndjson", "a/..b/c"]
        {
            assert!(validate_key(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("./lake").unwrap(), Location::Local("./lake".into()));
        assert_eq!(
            Location::parse("s3://bucket/some/prefix/").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "some/prefix".into() }
        );
        assert_eq!(
            Location::parse("s3://bucket").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "".into() }
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("s3://b/../x").is_err());
    }

    #[tokio::test]
    async fn local_writes_are_atomic_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path());
        store.put("a/b/c.txt", b"one".to_vec()).await.unwrap();
        store.put("a/b/c.txt", b"two".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"two");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("a/b")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["c.txt"], "no temporary file left behind");
        assert!(store.put("../escape", b"x".to_vec()).await.is_err());
    }
}
