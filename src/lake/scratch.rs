//! A run's private working directory: spill files, the copy of standard input,
//! files being written before they are renamed into the lake, oversized records.
//!
//! Each run owns one private (0700) directory: `<lake>/_tmp/run-*` for a local
//! lake, `$TMPDIR/eventlake-run-*` otherwise, and holds a lock on a file inside
//! it for as long as it lives. The directory gets its run name only once the
//! lock is held, so a starting run is never mistaken for an abandoned one. It is
//! removed when the run ends, error or not; a run that was killed leaves it
//! behind, and the next run under the same parent removes every such directory
//! whose lock it can take (its owner is gone). Nothing a lake reader lists lives
//! here.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The lock file inside each run directory.
const LOCK: &str = "lock";
/// Prefix of a directory being set up: it becomes a run directory only once its
/// lock is held, so no other run ever takes a starting run's directory for an
/// abandoned one.
const STARTING: &str = ".starting-";
/// A directory still starting after this long was left by a run killed at start.
const STARTING_GRACE: Duration = Duration::from_secs(3600);

/// A run directory (mode 0700), removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// Held (locked) while the run lives; the lock goes with the process.
    _lock: File,
}

impl RunDir {
    /// Removes the abandoned run directories called `<prefix>*` under `parent`,
    /// then creates this run's own.
    pub fn create(parent: &Path, prefix: &str) -> io::Result<Self> {
        fs::create_dir_all(parent)?;
        remove_abandoned(parent, prefix);
        let mut builder = tempfile::Builder::new();
        builder.prefix(STARTING);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let starting = builder.tempdir_in(parent)?;
        let lock = File::create(starting.path().join(LOCK))?;
        lock.try_lock().map_err(io::Error::other)?;
        let name = starting.path().file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let path = parent.join(format!("{prefix}{}", name.trim_start_matches(STARTING)));
        fs::rename(starting.path(), &path)?;
        // Renamed away: the TempDir must not remove its (now empty) old path.
        let _ = starting.keep();
        Ok(RunDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes every `<prefix>*` directory under `parent` whose lock is free, and
/// every starting directory older than [`STARTING_GRACE`]. Best effort: what
/// cannot be removed now is tried again next run.
fn remove_abandoned(parent: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !path.is_dir() {
            continue;
        }
        let abandoned = if name.starts_with(prefix) {
            is_unlocked(&path)
        } else if name.starts_with(STARTING) {
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            age.is_some_and(|age| age > STARTING_GRACE)
        } else {
            false
        };
        if abandoned {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn is_unlocked(dir: &Path) -> bool {
    match File::options().write(true).open(dir.join(LOCK)) {
        // Locked by a live run: keep it. Free: its run is gone.
        Ok(lock) => lock.try_lock().is_ok(),
        // No lock file in a run directory: not one of ours to judge, keep it.
        Err(_) => false,
    }
}

/// The process's run directory for stores that have no local root (S3): a
/// private `eventlake-run-*` directory in the system's temporary directory
/// (`TMPDIR`). Created on first use.
pub fn process_run_dir() -> io::Result<&'static Path> {
    static DIR: std::sync::OnceLock<RunDir> = std::sync::OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.path());
    }
    let created = RunDir::create(&std::env::temp_dir(), "eventlake-run-")?;
    Ok(DIR.get_or_init(|| created).path())
}

/// The prefix of a local lake's run directories, under [`lake_scratch_parent`].
pub const LAKE_RUN_PREFIX: &str = "run-";

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

/// A lock on a local lake, held until dropped (or until the process ends, however
/// it ends): the file `_tmp/<name>.lock`, which stays. `None` when another process
/// holds it and `wait` is false.
pub fn lock_lake(root: &Path, name: &str, wait: bool) -> io::Result<Option<File>> {
    let parent = lake_scratch_parent(root);
    fs::create_dir_all(&parent)?;
    let file =
        File::options().create(true).truncate(false).write(true).open(parent.join(format!("{name}.lock")))?;
    if wait {
        file.lock()?;
        return Ok(Some(file));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(error)) => Err(error),
    }
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
        // A run just starting: its directory is not yet a run directory.
        let starting = parent.path().join(format!("{STARTING}now"));
        fs::create_dir_all(&starting).unwrap();
        let live = RunDir::create(parent.path(), LAKE_RUN_PREFIX).unwrap();
        assert!(!killed.exists(), "the killed run's directory is removed");
        assert!(starting.exists(), "a starting run's directory is left alone");
        fs::remove_dir(&starting).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(live.path()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // A second run keeps the live one's directory.
        let second = RunDir::create(parent.path(), LAKE_RUN_PREFIX).unwrap();
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
