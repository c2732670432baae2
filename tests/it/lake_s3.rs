//! The parquet-writer handler against a real S3 API (moto on 127.0.0.1): staged
//! objects named the way Firehose names them, real SQS/S3 notification JSON,
//! Parquet read back from the emulator.

use std::io::Write;

use aws_sdk_s3::primitives::ByteStream;
use eventlake::catalog::Catalog;
use eventlake::lake::writer::Limits;
use eventlake::lambda::parquet_writer::{Config, Handler};
use serde_json::{json, Value};

use crate::support::{fixture, python_json, Moto};

pub const BUCKET: &str = "eventlake-test";

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The enriched lines the transform fixture produces: what Firehose stages.
pub fn staged_lines() -> Vec<u8> {
    let response: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("firehose-response.json")).unwrap()).unwrap();
    let mut lines = Vec::new();
    for record in response["records"].as_array().unwrap() {
        if record["result"] == "Ok" {
            use base64::Engine as _;
            lines.extend(
                base64::engine::general_purpose::STANDARD.decode(record["data"].as_str().unwrap()).unwrap(),
            );
        }
    }
    lines
}

fn s3_event(key: &str, size: usize, etag: &str) -> Value {
    let encoded: String = url_encode(key);
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-03-17T15:40:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:FIREHOSE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "r", "x-amz-id-2": "i"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "staged",
            "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "o"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": "0065F70F6A"}
        }
    }]})
}

/// URL-encodes a key the way S3 notifications do (space as `+`).
fn url_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

pub fn sqs_event(messages: &[(&str, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id, "receiptHandle": "handle", "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1710690000000",
                               "SenderId": "s3", "ApproximateFirstReceiveTimestamp": "1710690000001"},
                "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:eventlake-staged", "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

pub struct Lake {
    pub moto: Moto,
    pub client: aws_sdk_s3::Client,
    pub handler: Handler,
}

impl Lake {
    async fn new() -> Self {
        Self::with_catalog(|_| None).await
    }

    /// A lake whose handler registers partitions in the catalog `catalog` builds.
    pub async fn with_catalog(catalog: impl FnOnce(&Moto) -> Option<Catalog>) -> Self {
        let moto = Moto::start();
        let client = moto.s3();
        client.create_bucket().bucket(BUCKET).send().await.unwrap();
        let config = Config {
            lake_bucket: BUCKET.into(),
            lake_prefix: "lake".into(),
            staging_prefix: "staging/".into(),
            glue_database: None,
            glue_table: "events".into(),
            limits: Limits::default(),
            seconds_per_object: std::time::Duration::from_secs(30),
            observe_fields: true,
        };
        let handler = Handler::new(client.clone(), config, catalog(&moto));
        Lake { moto, client, handler }
    }

    /// Stages `body` at `key`; returns the notification body for it.
    pub async fn stage(&self, key: &str, body: Vec<u8>) -> String {
        let size = body.len();
        let put = self
            .client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        s3_event(key, size, put.e_tag().unwrap().trim_matches('"')).to_string()
    }

    /// The tags of an object, as `name=value`.
    pub async fn tags(&self, key: &str) -> Vec<String> {
        let tagging = self.client.get_object_tagging().bucket(BUCKET).key(key).send().await.unwrap();
        tagging.tag_set().iter().map(|tag| format!("{}={}", tag.key(), tag.value())).collect()
    }

    /// Every object under `prefix` with its bytes, sorted by key.
    pub async fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let listing = self.client.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.unwrap();
        let mut objects = Vec::new();
        for object in listing.contents() {
            let key = object.key().unwrap().to_owned();
            let body = self
                .client
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap();
            objects.push((key, body.into_bytes().to_vec()));
        }
        objects.sort();
        objects
    }
}

/// Reads Parquet files with pyarrow (an independent reader), rows as JSON.
pub fn pyarrow_rows(files: &[(String, Vec<u8>)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    for (key, bytes) in files {
        let path = dir.path().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    const SCRIPT: &str = r#"
import json, sys, pyarrow.dataset as ds
table = ds.dataset(sys.argv[1] + "/lake/events", format="parquet", partitioning="hive").to_table()
rows = sorted(table.to_pylist(), key=lambda r: (r["event_uuid"], r["created_at"]))
print(json.dumps(rows, default=str))
"#;
    python_json(SCRIPT, &[dir.path().to_str().unwrap()]).as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn staged_objects_become_parquet_and_a_second_delivery_changes_nothing() {
    let lake = Lake::new().await;
    let lines = staged_lines();
    let key = "staging/event_type=payment/created_date=2024-03-17/eventlake-local-1-2024-03-17-15-35-00-4f1c a+b.gz";
    let body = lake.stage(key, gzip(&lines)).await;
    let event = sqs_event(&[("m1", body)]);

    let response = lake.handler.invoke_without_deadline(event.clone()).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let written = lake.objects("lake/events/").await;
    assert!(!written.is_empty());
    assert!(written.iter().all(|(key, _)| key.ends_with(".parquet") && key.contains("/created_date=")));

    // Every staged line is a row, with the contract's values, read by pyarrow.
    let rows = pyarrow_rows(&written);
    let mut expected: Vec<Value> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .collect();
    // The fixture's Ok records are distinct events, so each staged line is one row.
    assert_eq!(rows.len(), expected.len());
    expected.sort_by_key(|e| {
        (e["event_uuid"].as_str().unwrap().to_owned(), e["created_datetime"].as_str().unwrap().to_owned())
    });
    for row in &rows {
        let event = expected
            .iter()
            .find(|e| {
                e["event_uuid"] == row["event_uuid"] && e["created_datetime"] == row["created_datetime"]
            })
            .unwrap_or_else(|| panic!("no staged event for row {row}"));
        assert_eq!(row["event_name"], event["event_name"]);
        assert_eq!(row["event_subtype"], event["event_subtype"]);
        assert_eq!(row["event_type"], event["event_type"]);
        assert_eq!(row["created_date"].as_str(), event["created_datetime"].as_str().map(|d| &d[..10]));
        assert_eq!(
            row["created_at"].as_i64(),
            Some(
                chrono::DateTime::parse_from_rfc3339(event["created_datetime"].as_str().unwrap())
                    .unwrap()
                    .timestamp()
            )
        );
        // The payload is every other field of the staged event, values unchanged.
        let mut payload = event.as_object().unwrap().clone();
        for field in
            ["event_uuid", "event_name", "created_at", "created_datetime", "event_type", "event_subtype"]
        {
            payload.remove(field);
        }
        let stored: Value = serde_json::from_str(row["payload"].as_str().unwrap()).unwrap();
        assert_eq!(stored, Value::Object(payload), "payload of {}", row["event_uuid"]);
    }

    // The same message again (SQS delivers at least once): same keys, same bytes.
    let response = lake.handler.invoke_without_deadline(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(lake.objects("lake/events/").await, written);
    drop(lake.moto);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_object_fails_alone_and_test_events_are_ignored() {
    let lake = Lake::new().await;
    let good =
        lake.stage("staging/event_type=a/created_date=2024-03-17/good.gz", gzip(&staged_lines())).await;
    let mut corrupt = gzip(&staged_lines());
    let middle = corrupt.len() / 2;
    corrupt[middle..].fill(0x55);
    let bad = lake.stage("staging/event_type=a/created_date=2024-03-17/corrupt.gz", corrupt).await;
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-03-17T15:00:00.000Z","Bucket":"eventlake-test","RequestId":"r","HostId":"h"}"#;
    let event = sqs_event(&[
        ("good", good),
        ("bad", bad),
        ("test", test_event.to_owned()),
        ("junk", "not json".to_owned()),
    ]);

    let invocation = lake.handler.invoke(event, || std::time::Duration::MAX).await;
    let response = invocation.response.unwrap();
    assert_eq!(response["batchItemFailures"], json!([{"itemIdentifier": "bad"}, {"itemIdentifier": "junk"}]));
    let written = lake.objects("lake/events/").await;
    assert_eq!(pyarrow_rows(&written).len(), 15, "the good object's rows are all there");
    // Failures are counted by reason, for the writer's ObjectsFailed alarm.
    let report = invocation.report;
    assert_eq!(report.objects_written, 1);
    assert_eq!(
        report.objects_failed.into_iter().collect::<Vec<_>>(),
        [("not_an_s3_event", 1), ("unreadable_object", 1)]
    );
    // Only the written object is tagged for the lifecycle rule to expire.
    assert_eq!(
        lake.tags("staging/event_type=a/created_date=2024-03-17/good.gz").await,
        ["eventlake-written=true"]
    );
    assert!(lake.tags("staging/event_type=a/created_date=2024-03-17/corrupt.gz").await.is_empty());
}

/// The poison-object runbook: a torn object fails (its message ends in the DLQ),
/// the operator puts the whole object back under its key (a second notification),
/// then redrives the DLQ. The redriven notification names the torn version; it
/// must rewrite the repaired version's files, not add a second copy of its rows.
#[tokio::test(flavor = "multi_thread")]
async fn a_redriven_notification_of_a_replaced_object_adds_no_second_copy() {
    let lake = Lake::new().await;
    let key = "staging/event_type=a/created_date=2024-03-17/torn.gz";
    let whole = gzip(&staged_lines());
    let torn_notification = lake.stage(key, whole[..whole.len() / 2].to_vec()).await;
    let torn = lake
        .handler
        .invoke_without_deadline(sqs_event(&[("torn", torn_notification.clone())]))
        .await
        .unwrap();
    assert_eq!(torn["batchItemFailures"], json!([{"itemIdentifier": "torn"}]));

    let repaired_notification = lake.stage(key, whole).await;
    let repaired = lake
        .handler
        .invoke_without_deadline(sqs_event(&[("repaired", repaired_notification)]))
        .await
        .unwrap();
    assert_eq!(repaired["batchItemFailures"], json!([]));
    let written = lake.objects("lake/events/").await;
    assert_eq!(pyarrow_rows(&written).len(), 15);

    let redriven =
        lake.handler.invoke_without_deadline(sqs_event(&[("redriven", torn_notification)])).await.unwrap();
    assert_eq!(redriven["batchItemFailures"], json!([]));
    assert_eq!(
        lake.objects("lake/events/").await,
        written,
        "the redrive rewrote the same files, nothing more"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_hands_back_the_messages_it_has_no_time_for() {
    let lake = Lake::new().await;
    let first =
        lake.stage("staging/event_type=a/created_date=2024-03-17/first.gz", gzip(&staged_lines())).await;
    let second =
        lake.stage("staging/event_type=a/created_date=2024-03-17/second.gz", gzip(&staged_lines())).await;
    // 40 s left before the first message, 10 s before the second: less than the
    // 30 s one object may take, so the second goes back to SQS untouched.
    let calls = std::cell::Cell::new(0);
    let remaining = || {
        calls.set(calls.get() + 1);
        std::time::Duration::from_secs(if calls.get() == 1 { 40 } else { 10 })
    };
    let invocation = lake.handler.invoke(sqs_event(&[("first", first), ("second", second)]), remaining).await;
    assert_eq!(invocation.response.unwrap()["batchItemFailures"], json!([{"itemIdentifier": "second"}]));
    assert_eq!((invocation.report.objects_written, invocation.report.objects_deferred), (1, 1));
    assert!(lake.tags("staging/event_type=a/created_date=2024-03-17/second.gz").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_lines_go_to_the_rejected_prefix_with_reasons() {
    let lake = Lake::new().await;
    let mut body = staged_lines();
    body.extend_from_slice(b"{\"event_uuid\":\"nope\",\"event_name\":\"a\",\"created_at\":1}\n");
    let notification = lake.stage("staging/event_type=a/created_date=2024-03-17/mixed", body).await;
    // A direct S3 event (no SQS) works too.
    let direct: Value = serde_json::from_str(&notification).unwrap();
    lake.handler.invoke_without_deadline(direct).await.unwrap();
    let rejected = lake.objects("lake/_rejected/").await;
    assert_eq!(rejected.len(), 1);
    let entry: Value = serde_json::from_slice(rejected[0].1.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(entry["code"], "invalid_uuid");
    assert_eq!(entry["line"], 16);
    assert_eq!(entry["record"], "{\"event_uuid\":\"nope\",\"event_name\":\"a\",\"created_at\":1}");
    assert_eq!(entry["source"], format!("s3://{BUCKET}/staging/event_type=a/created_date=2024-03-17/mixed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_ingests_into_an_s3_lake_configured_from_the_environment() {
    let lake = Lake::new().await;
    let output = crate::support::eventlake()
        .args(["ingest", "--quiet", "--lake", &format!("s3://{BUCKET}/cli-lake/")])
        .arg(fixture("lake-input.ndjson"))
        .env("AWS_ENDPOINT_URL", lake.moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let written = lake.objects("cli-lake/events/").await;
    let keys: Vec<&str> = written.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys
        .iter()
        .any(|k| k.starts_with("cli-lake/events/event_type=session/created_date=1970-01-01/")));
    assert_eq!(lake.objects("cli-lake/_rejected/").await.len(), 1);
}

/// Counts the ListObjectsV2 requests of an S3 client.
#[derive(Debug)]
struct ListRequests(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl aws_sdk_s3::config::Intercept for ListRequests {
    fn name(&self) -> &'static str {
        "ListRequests"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _bag: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if context.request().uri().contains("list-type=2") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A run looks for what an earlier run of its own input left behind (to delete
/// it) with the run's name as the S3 prefix: one request per directory however
/// many files other runs wrote there. It used to list `_rejected/` whole, a page
/// per 1,000 files, for every staged object.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_lists_only_its_own_files_one_request_per_directory() {
    use eventlake::aws::s3::S3Store;
    use eventlake::lake::writer::{LakeWriter, Origin, SourceId};

    let moto = Moto::start();
    let plain = moto.s3();
    plain.create_bucket().bucket(BUCKET).send().await.unwrap();
    for i in 0..1100 {
        let key = format!("lake/_rejected/{i:032x}-0.ndjson");
        plain
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"{}\n"))
            .send()
            .await
            .unwrap();
    }
    let lists = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
        .force_path_style(true)
        .interceptor(ListRequests(lists.clone()))
        .build();
    let store = S3Store::new(aws_sdk_s3::Client::from_conf(config), BUCKET, "lake");
    let mut writer = LakeWriter::new(store, SourceId::from_identity(b"run"), Limits::default());
    let event = br#"{"event_uuid":"6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b","event_name":"a:b","created_at":1710689700}"#;
    writer.push(event, Origin { source: "input", line: 1 }).await.unwrap();
    writer.push(b"not json", Origin { source: "input", line: 2 }).await.unwrap();
    let summary = writer.finish().await.unwrap();
    assert_eq!((summary.written, summary.rejected_total()), (1, 1));
    assert_eq!(
        lists.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the partition and _rejected/, one page each"
    );
    let rejected = plain.list_objects_v2().bucket(BUCKET).prefix("lake/_rejected/").send().await.unwrap();
    assert_eq!(rejected.key_count(), Some(1000), "the other runs' files are still there (first page)");
}
