//! Fault injection on the storage trait: failed puts leave no partial and no
//! duplicate output, and a retried run converges on the clean run's lake.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventlake::lake::{LakeWriter, Limits, Origin, SourceId, Summary};
use eventlake::storage::{LocalDir, S3Store, Storage, StorageError};

use crate::support::{eventlake, files_under, success, Moto};

/// A local lake whose puts fail on chosen call numbers (or always).
struct Flaky {
    inner: LocalDir,
    calls: AtomicUsize,
    failing: BTreeSet<usize>,
    always: bool,
}

impl Storage for Flaky {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.always || self.failing.contains(&call) {
            let source = std::io::Error::other("injected failure");
            return Err(StorageError::Io { path: key.into(), source });
        }
        self.inner.put(key, bytes).await
    }

    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        self.inner.put_file(key, path).await
    }

    fn scratch_dir(&self) -> Result<&std::path::Path, StorageError> {
        self.inner.scratch_dir()
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(dir).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        self.inner.event_type_spellings()
    }

    fn describe(&self, key: &str) -> String {
        self.inner.describe(key)
    }
}

fn events() -> Vec<u8> {
    success(eventlake().args(["generate", "--events", "4000", "--days", "2", "--invalid", "0.01"])).stdout
}

/// One run of the writer over `input` (small buffers: many puts per run).
async fn run<S: Storage>(storage: S, input: &[u8]) -> Result<Summary, eventlake::lake::LakeError> {
    let limits = Limits {
        partition_bytes: 64 << 10,
        total_bytes: 256 << 10,
        rejected_bytes: 4 << 10,
        ..Limits::default()
    };
    let mut writer = LakeWriter::new(storage, SourceId::from_identity(b"input-1"), limits);
    for (index, line) in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        writer.push(line, Origin { source: "input", line: index as u64 + 1 }).await?;
    }
    writer.finish().await
}

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir).into_iter().map(|f| (f.clone(), std::fs::read(dir.join(&f)).unwrap())).collect()
}

#[tokio::test]
async fn failed_puts_then_retries_converge_on_the_clean_lake() {
    let input = events();
    let clean = tempfile::tempdir().unwrap();
    let summary = run(LocalDir::new(clean.path()), &input).await.unwrap();
    assert!(summary.files > 10, "want many puts, got {}", summary.files);

    let flaky_dir = tempfile::tempdir().unwrap();
    // Calls are counted across attempts: the first attempt fails on its 5th put,
    // the next two on their first, the fourth succeeds: like SQS redelivering.
    let flaky = Flaky {
        inner: LocalDir::new(flaky_dir.path()),
        calls: AtomicUsize::new(0),
        failing: BTreeSet::from([4, 5, 6]),
        always: false,
    };
    let mut attempts = 0;
    let storage = &flaky;
    let result = loop {
        attempts += 1;
        match run(Wrapper(storage), &input).await {
            Ok(summary) => break summary,
            Err(error) => {
                assert!(eventlake::telemetry::error_chain(&error).contains("injected failure"));
                assert!(attempts < 5, "never succeeded");
            }
        }
    };
    assert_eq!(attempts, 4);
    assert_eq!(result.written, summary.written);
    // The store's run directory goes with it.
    drop(flaky);
    assert_eq!(snapshot(flaky_dir.path()), snapshot(clean.path()), "retries left extra or different files");
}

#[tokio::test]
async fn a_put_that_always_fails_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Flaky {
        inner: LocalDir::new(dir.path()),
        calls: AtomicUsize::new(0),
        failing: BTreeSet::new(),
        always: true,
    };
    let error = run(storage, &events()).await.unwrap_err();
    let message = eventlake::telemetry::error_chain(&error);
    assert!(message.contains("injected failure"), "{message}");
    assert!(files_under(dir.path()).is_empty(), "{:?}", files_under(dir.path()));
}

/// Shares one `Flaky` across attempts, so its call counter spans them.
struct Wrapper<'a>(&'a Flaky);

impl Storage for Wrapper<'_> {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.0.put(key, bytes).await
    }

    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        self.0.put_file(key, path).await
    }

    fn scratch_dir(&self) -> Result<&std::path::Path, StorageError> {
        self.0.scratch_dir()
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(dir).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        self.0.event_type_spellings()
    }

    fn describe(&self, key: &str) -> String {
        self.0.describe(key)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_go_up_as_multipart_uploads_whole() {
    let moto = Moto::start();
    let client = moto.s3();
    client.create_bucket().bucket("big").send().await.unwrap();
    let store = S3Store::new(client.clone(), "big", "lake");
    let bytes: Vec<u8> =
        (0..20 * 1024 * 1024_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    store.put("events/x/part.parquet", bytes.clone()).await.unwrap();
    let object = client.get_object().bucket("big").key("lake/events/x/part.parquet").send().await.unwrap();
    let back = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(back.len(), bytes.len());
    assert!(back.as_ref() == bytes.as_slice());
    let uploads = client.list_multipart_uploads().bucket("big").send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "no upload left open");
    assert!(store.put("../outside", vec![1]).await.is_err());
}
