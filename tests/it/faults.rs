//! Fault injection on the storage trait: a put that fails before it writes, one
//! that writes and then reports failure (a lost acknowledgement), one that leaves
//! a torn file behind, and puts that fail from some point on. Each run is checked
//! against its input, not against another run of the same code: every record is
//! written, a duplicate or rejected; the lake's rows are the written ones, each
//! dedupe key once; and retries converge on the lake a clean run writes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventlake::aws::s3::S3Store;
use eventlake::lake::storage::{LocalDir, Storage, StorageError};
use eventlake::lake::writer::{LakeWriter, Limits, Origin, SourceId, Summary};

use crate::support::{eventlake, files_under, python_json, success, Moto};

/// How an injected put fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing is written.
    Before,
    /// The object is written whole, then the put reports failure.
    LostAcknowledgement,
    /// Half the bytes land in a file in the store's scratch directory (what a
    /// crash mid-write leaves), then the put fails.
    Torn,
}

/// A local lake whose puts fail on chosen call numbers, or on every call from
/// one on.
struct Flaky {
    inner: LocalDir,
    calls: AtomicUsize,
    failing: BTreeSet<usize>,
    failing_from: Option<usize>,
    fault: Fault,
}

impl Flaky {
    fn new(dir: &std::path::Path, fault: Fault) -> Self {
        Flaky {
            inner: LocalDir::new(dir),
            calls: AtomicUsize::new(0),
            failing: BTreeSet::new(),
            failing_from: None,
            fault,
        }
    }
}

impl Storage for Flaky {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let fails = self.failing.contains(&call) || self.failing_from.is_some_and(|from| call >= from);
        if !fails {
            return self.inner.put(key, bytes).await;
        }
        match self.fault {
            Fault::Before => {}
            Fault::LostAcknowledgement => self.inner.put(key, bytes).await?,
            Fault::Torn => {
                let torn = self.inner.scratch_dir()?.join(format!("torn-{call}"));
                std::fs::write(torn, &bytes[..bytes.len() / 2]).unwrap();
            }
        }
        let source = std::io::Error::other("injected failure");
        Err(StorageError::Io { path: key.into(), source })
    }

    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), StorageError> {
        self.inner.put_file(key, path).await
    }

    fn scratch_dir(&self) -> Result<&std::path::Path, StorageError> {
        self.inner.scratch_dir()
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.inner.get(key).await
    }

    async fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(dir, name_prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        self.inner.event_type_spellings()
    }

    fn claim_event_type(&self, spelling: &str) -> Result<Option<String>, StorageError> {
        self.inner.claim_event_type(spelling)
    }

    fn describe(&self, key: &str) -> String {
        self.inner.describe(key)
    }
}

fn events() -> Vec<u8> {
    let generate =
        ["generate", "--events", "4000", "--days", "2", "--invalid", "0.01", "--duplicates", "0.03"];
    success(eventlake().args(generate)).stdout
}

/// One run of the writer over `input` (small buffers: many puts per run), its
/// parts encoded on `workers` threads (with one, its puts are made one at a time,
/// so a fault falls on the same put every time).
async fn run<S: Storage>(
    storage: S,
    input: &[u8],
    workers: usize,
) -> Result<Summary, eventlake::lake::writer::LakeError> {
    let limits = Limits {
        partition_bytes: 64 << 10,
        // The dedupe set of 4,000 keys (2^13 buckets, 139 KB) fits its half.
        total_bytes: 384 << 10,
        rejected_bytes: 4 << 10,
        workers,
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

/// Checks a finished run against its input: the input's records (counted here)
/// are each written, a duplicate or rejected; DuckDB, reading every file under
/// `events/`, finds exactly the written rows with each dedupe key once; the
/// rejected entries are the rejected records.
fn assert_nothing_lost_nothing_twice(summary: &Summary, input: &[u8], dir: &std::path::Path) {
    let records = input.split(|&b| b == b'\n').filter(|line| !line.is_empty()).count() as u64;
    assert_eq!(summary.records, records);
    assert_eq!(summary.written + summary.duplicates + summary.rejected_total(), records, "{summary:?}");
    assert!(summary.duplicates > 0 && summary.rejected_total() > 0, "the input has both: {summary:?}");
    const SCRIPT: &str = r#"
import duckdb, glob, json, sys
files = f"{sys.argv[1]}/events/**/*"
one = lambda q: duckdb.sql(q).fetchall()[0][0]
print(json.dumps({
    "rows": one(f"SELECT count(*) FROM read_parquet('{files}')"),
    "keys": one(f"SELECT count(DISTINCT (event_uuid, created_datetime)) FROM read_parquet('{files}')"),
    "rejected": sum(1 for f in glob.glob(f"{sys.argv[1]}/_rejected/*.ndjson") for _ in open(f)),
}))
"#;
    let lake = python_json(SCRIPT, &[dir.to_str().unwrap()]);
    assert_eq!(lake["rows"], summary.written, "rows in the lake");
    assert_eq!(lake["keys"], summary.written, "a dedupe key is in the lake twice");
    assert_eq!(lake["rejected"], summary.rejected_total(), "rejected entries");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_puts_then_retries_converge_on_the_input_and_the_clean_lake() {
    let input = events();
    let clean = tempfile::tempdir().unwrap();
    let summary = run(LocalDir::new(clean.path()), &input, 1).await.unwrap();
    assert!(summary.files > 10, "want many puts, got {}", summary.files);
    assert_nothing_lost_nothing_twice(&summary, &input, clean.path());

    let faults = [Fault::Before, Fault::LostAcknowledgement, Fault::Torn];
    for (fault, workers) in faults.into_iter().flat_map(|fault| [(fault, 1), (fault, 4)]) {
        let flaky_dir = tempfile::tempdir().unwrap();
        // Calls are counted across attempts: the first attempt fails on its 5th
        // put, the next two on their first, the fourth succeeds: like SQS
        // redelivering.
        let flaky = Flaky { failing: BTreeSet::from([4, 5, 6]), ..Flaky::new(flaky_dir.path(), fault) };
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            match run(Wrapper(&flaky), &input, workers).await {
                Ok(summary) => break summary,
                Err(error) => {
                    assert!(eventlake::telemetry::error_chain(&error).contains("injected failure"));
                    assert!(attempts < 5, "{fault:?}: never succeeded");
                }
            }
        };
        if workers == 1 {
            assert_eq!(attempts, 4, "{fault:?}");
        } else {
            // Parts encoded at once are put at once: the failing calls may fall
            // in one attempt or spread over three.
            assert!((2..=4).contains(&attempts), "{fault:?}: {attempts} attempts");
        }
        // The store's run directory (and the torn files in it) goes with it.
        drop(flaky);
        assert_nothing_lost_nothing_twice(&result, &input, flaky_dir.path());
        assert_eq!(
            snapshot(flaky_dir.path()),
            snapshot(clean.path()),
            "{fault:?}: retries left extra or different files"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_puts_fail_from_some_point_leaves_only_whole_files_and_a_retry_completes_it() {
    let input = events();
    let clean = tempfile::tempdir().unwrap();
    run(LocalDir::new(clean.path()), &input, 4).await.unwrap();
    for fault in [Fault::Before, Fault::LostAcknowledgement, Fault::Torn] {
        let dir = tempfile::tempdir().unwrap();
        let flaky = Flaky { failing_from: Some(6), ..Flaky::new(dir.path(), fault) };
        let error = run(Wrapper(&flaky), &input, 4).await.unwrap_err();
        assert!(eventlake::telemetry::error_chain(&error).contains("injected failure"));
        drop(flaky);
        // What the failed run left is whole Parquet files where readers look and
        // nothing else: no temporary or torn file anywhere (the empty lock file
        // event type spellings are claimed under stays in `_tmp/`).
        let left = files_under(dir.path());
        assert!(!left.is_empty(), "{fault:?}: the first puts landed");
        assert!(
            left.iter().all(|f| (f.starts_with("events/") && f.ends_with(".parquet"))
                || f.starts_with("_rejected/")
                || f == "_tmp/spellings.lock"),
            "{fault:?}: {left:?}"
        );
        const READ_ALL: &str = r#"
import duckdb, json, sys
print(json.dumps(duckdb.sql(f"SELECT count(*) FROM read_parquet('{sys.argv[1]}/events/**/*')").fetchall()[0][0]))
"#;
        python_json(READ_ALL, &[dir.path().to_str().unwrap()]);
        // A retry writes the rest and replaces nothing twice.
        let summary = run(LocalDir::new(dir.path()), &input, 4).await.unwrap();
        assert_nothing_lost_nothing_twice(&summary, &input, dir.path());
        assert_eq!(snapshot(dir.path()), snapshot(clean.path()), "{fault:?}");
    }
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

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        self.0.get(key).await
    }

    async fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<String>, StorageError> {
        self.0.list(dir, name_prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        self.0.event_type_spellings()
    }

    fn claim_event_type(&self, spelling: &str) -> Result<Option<String>, StorageError> {
        self.0.claim_event_type(spelling)
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

/// Turns every UploadPart response into a 500 (after moto stored the part): S3
/// failing mid-upload, as the SDK sees it.
/// (The request is gone by the time the response is seen: whether it was a part
/// is noted when it is sent; the upload sends its parts one at a time.)
#[derive(Debug, Default)]
struct FailUploadParts {
    failed: std::sync::Arc<AtomicUsize>,
    sending_part: std::sync::atomic::AtomicBool,
}

impl aws_sdk_s3::config::Intercept for FailUploadParts {
    fn name(&self) -> &'static str {
        "FailUploadParts"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        let is_part = request.method() == "PUT" && request.uri().contains("partNumber=");
        self.sending_part.store(is_part, Ordering::SeqCst);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.sending_part.load(Ordering::SeqCst) {
            self.failed.fetch_add(1, Ordering::SeqCst);
            *context.response_mut().status_mut() = 500_u16.try_into()?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_upload_whose_parts_fail_is_aborted_and_leaves_no_object() {
    let moto = Moto::start();
    let plain = moto.s3();
    plain.create_bucket().bucket("big").send().await.unwrap();
    let failed = std::sync::Arc::new(AtomicUsize::new(0));
    let config = plain
        .config()
        .to_builder()
        .interceptor(FailUploadParts { failed: failed.clone(), ..FailUploadParts::default() })
        .build();
    let store = S3Store::new(aws_sdk_s3::Client::from_conf(config), "big", "lake");
    let bytes = vec![7_u8; 20 * 1024 * 1024];
    let error = store.put("events/x/part.parquet", bytes).await.unwrap_err();
    let message = eventlake::telemetry::error_chain(&error);
    assert!(message.contains("UploadPart"), "{message}");
    assert!(failed.load(Ordering::SeqCst) >= 2, "the SDK retried the 5xx: {}", failed.load(Ordering::SeqCst));
    // The upload was aborted (moto holds its parts otherwise) and no object exists.
    let uploads = plain.list_multipart_uploads().bucket("big").send().await.unwrap();
    assert!(uploads.uploads().is_empty(), "an upload was left open: {:?}", uploads.uploads());
    let listing = plain.list_objects_v2().bucket("big").send().await.unwrap();
    assert!(listing.contents().is_empty(), "{:?}", listing.contents());
}
