//! A run's private working directory: spill files, the copy of standard input,
//! files being written before they are renamed into the lake, oversized records.
//!
//! Each run owns one `run-*` directory under a parent (the lake's `_tmp/` for a
//! local lake, the system's temporary directory otherwise) and holds a lock on a
//! file inside it for as long as it lives. The directory is removed when the run
//! ends, error or not; a run that was killed leaves it behind, and the next run
//! under the same parent removes every `run-*` directory whose lock it can take
//! (its owner is gone). Nothing a lake reader lists lives here.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The lock file inside each run directory.
const LOCK: &str = "lock";

/// A run directory, removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    dir: tempfile::TempDir,
    /// Held (locked) while the run lives; the lock goes with the process.
    _lock: File,
}

impl RunDir {
    /// Removes the abandoned run directories under `parent`, then creates this
    /// run's own.
    pub fn create(parent: &Path) -> io::Result<Self> {
        fs::create_dir_all(parent)?;
        remove_abandoned(parent);
        let dir = tempfile::Builder::new().prefix("run-").tempdir_in(parent)?;
        let lock = File::create(dir.path().join(LOCK))?;
        lock.try_lock().map_err(io::Error::other)?;
        Ok(RunDir { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes every `run-*` directory under `parent` whose lock is free. Best
/// effort: a directory that cannot be removed now is tried again next run.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_run = entry.file_name().to_str().is_some_and(|name| name.starts_with("run-"));
        if is_run && path.is_dir() && is_abandoned(&path) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn is_abandoned(dir: &Path) -> bool {
    match File::options().write(true).open(dir.join(LOCK)) {
        // Locked by a live run: keep it. Free: its run is gone.
        Ok(lock) => lock.try_lock().is_ok(),
        // A run killed between creating its directory and its lock file.
        Err(error) => error.kind() == io::ErrorKind::NotFound,
    }
}

/// The process's run directory under the system's temporary directory
/// (`TMPDIR`), for stores that have no local root (S3). Created on first use.
pub fn process_run_dir() -> io::Result<&'static Path> {
    static DIR: std::sync::OnceLock<RunDir> = std::sync::OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.path());
    }
    let created = RunDir::create(&std::env::temp_dir().join("eventlake"))?;
    Ok(DIR.get_or_init(|| created).path())
}

/// A new file in `dir` (removed with the directory if left behind). Its mode is
/// what a plain file gets (0666 less the umask), not a temporary file's 0600: it
/// may be renamed into the lake, for other users' readers.
pub fn new_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("file-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(dir)
}

/// Where a run directory's parent is for a local lake rooted at `root`.
pub fn lake_scratch_parent(root: &Path) -> PathBuf {
    root.join("_tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_runs_are_removed_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        // A killed run: its directory is there, its lock is free.
        let killed = parent.path().join("run-killed");
        fs::create_dir_all(&killed).unwrap();
        File::create(killed.join(LOCK)).unwrap();
        fs::write(killed.join("spill"), b"rows").unwrap();
        let live = RunDir::create(parent.path()).unwrap();
        assert!(!killed.exists(), "the killed run's directory is removed");
        // A second run keeps the live one's directory.
        let second = RunDir::create(parent.path()).unwrap();
        assert!(live.path().exists());
        let kept = live.path().to_owned();
        drop(live);
        assert!(!kept.exists(), "a run's directory goes when it ends");
        drop(second);
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_readable_like_plain_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = new_file_in(dir.path()).unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, b"").unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.path()), mode(&plain));
    }
}
