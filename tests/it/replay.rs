//! `eventlake replay`, the built binary: rejected records and Firehose error
//! records go into the lake once, whatever is still invalid stays out with its
//! reason, and replaying again adds nothing; on a local lake and on moto's S3 with
//! Glue.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use serde_json::json;

use crate::support::{duckdb_rows, eventlake, files_under, success, Moto};

fn generated(events: usize, seed: u64) -> Vec<u8> {
    success(eventlake().args([
        "generate",
        "--events",
        &events.to_string(),
        "--seed",
        &seed.to_string(),
        "--duplicates",
        "0.03",
        "--invalid",
        "0.03",
        "--start",
        "2024-03-17",
        "--days",
        "3",
    ]))
    .stdout
}

fn ingest(lake: &Path, input: &Path, extra: &[&str]) -> String {
    let output = success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(lake).args(extra).arg(input));
    String::from_utf8(output.stdout).unwrap()
}

fn replay(lake: &str, sources: &[&str], extra: &[&str], moto: Option<&Moto>) -> String {
    let mut command = eventlake();
    if let Some(moto) = moto {
        moto.env(&mut command);
    }
    let output = success(command.args(["replay", "--lake", lake]).args(extra).args(sources));
    String::from_utf8(output.stdout).unwrap()
}

/// The rejection counts by code in `eventlake ingest`'s summary (the indented
/// lines under `rejected`).
fn rejected_by_code(summary: &str) -> BTreeMap<String, u64> {
    summary
        .lines()
        .skip_while(|line| !line.starts_with("rejected"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(|line| {
            let mut parts = line.split_whitespace();
            let code = parts.next().unwrap().to_owned();
            (code, parts.next().unwrap().replace(',', "").parse().unwrap())
        })
        .collect()
}

#[test]
fn rejected_records_replayed_give_the_lake_an_ingest_gives_and_a_second_replay_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, generated(3000, 21)).unwrap();
    // A window that refuses every valid event (they are from 2024): all go to _rejected/.
    let refused = dir.path().join("refused");
    let first = ingest(&refused, &input, &["--max-age-days", "1"]);
    let expected = dir.path().join("expected");
    let plain = ingest(&expected, &input, &[]);
    assert!(files_under(&refused.join("events")).is_empty(), "{first}");

    let lake = refused.to_str().unwrap();
    let rejected_dir = refused.join("_rejected");
    let report = replay(lake, &[rejected_dir.to_str().unwrap()], &[], None);
    assert_eq!(duckdb_rows(&refused), duckdb_rows(&expected), "{report}");
    // Still rejected: exactly what a plain ingest rejects, by reason.
    let mut still = BTreeMap::new();
    for line in report.lines().filter_map(|line| line.strip_prefix("still rejected, ")) {
        let (code, count) = line.split_once(": ").unwrap();
        still.insert(code.to_owned(), count.parse::<u64>().unwrap());
    }
    assert_eq!(still, rejected_by_code(&plain), "{report}\n{plain}");

    let files = files_under(&refused.join("events"));
    let again = replay(lake, &[rejected_dir.to_str().unwrap()], &[], None);
    assert!(again.contains("written: 0 events"), "{again}");
    assert_eq!(files_under(&refused.join("events")), files, "a second replay writes no file");
    assert_eq!(duckdb_rows(&refused), duckdb_rows(&expected));
}

#[test]
fn a_dry_run_writes_nothing_and_says_what_it_would() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, generated(500, 22)).unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &input, &["--max-age-days", "1"]);
    let before = files_under(&lake);
    let report =
        replay(lake.to_str().unwrap(), &[lake.join("_rejected").to_str().unwrap()], &["--dry-run"], None);
    assert!(report.contains("dry run: would write"), "{report}");
    assert!(report.contains("  events/event_type="), "{report}");
    let mut after = files_under(&lake);
    after.retain(|file| !file.starts_with("_tmp/"));
    let mut before_kept = before;
    before_kept.retain(|file| !file.starts_with("_tmp/"));
    assert_eq!(after, before_kept);
}

/// Firehose's error record of `raw` (processing-failed), as Firehose writes it.
fn firehose_error(raw: &[u8]) -> serde_json::Value {
    json!({
        "attemptsMade": 1, "arrivalTimestamp": 1_710_689_700_000_u64,
        "errorCode": "Lambda.ProcessingFailedStatus", "errorMessage": "ProcessingFailed status set for record",
        "attemptEndingTimestamp": 1_710_689_701_000_u64, "rawData": base64::engine::general_purpose::STANDARD.encode(raw),
        "lambdaArn": "arn:aws:lambda:us-east-1:000000000000:function:transform",
    })
}

fn gzip_lines(lines: &[serde_json::Value]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in lines {
        writeln!(encoder, "{line}").unwrap();
    }
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn firehose_error_records_in_s3_go_into_the_s3_lake_and_glue_once() {
    let moto = Moto::start();
    let s3 = moto.s3();
    let bucket = "replay-test";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    crate::catalog_glue::create_table(&moto.glue(), &format!("s3://{bucket}/lake/events/")).await;
    // Three records: one packed with two valid events (Firehose failed it whole),
    // one valid, one invalid.
    let events = generated(40, 23);
    let lines: Vec<&[u8]> =
        events.split(|&b| b == b'\n').filter(|l| l.starts_with(b"{\"event_uuid\"")).take(3).collect();
    let packed = [lines[0], b"\n", lines[1]].concat();
    let body = gzip_lines(&[
        firehose_error(&packed),
        firehose_error(lines[2]),
        firehose_error(b"{\"event_uuid\":1}"),
    ]);
    let key = "errors/processing-failed/2024-03-17/eventlake-events-1-2024-03-17-15-35-00-x.gz";
    s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await.unwrap();

    let lake = format!("s3://{bucket}/lake");
    let source = format!("s3://{bucket}/errors/");
    let report = replay(&lake, &[&source], &["--database", crate::catalog_glue::DATABASE], Some(&moto));
    assert!(
        report.contains("3 events pass today's rules (0 already in the lake), 1 still rejected"),
        "{report}"
    );
    assert!(report.contains("written: 3 events"), "{report}");
    assert!(report.contains("still rejected, wrong_type: 1"), "{report}");
    let registered = moto
        .glue()
        .get_partitions()
        .database_name(crate::catalog_glue::DATABASE)
        .table_name("events")
        .send()
        .await
        .unwrap();
    let partitions = registered.partitions().len();
    assert!(partitions >= 1, "{report}");
    let objects = |s3: aws_sdk_s3::Client| async move {
        let listed = s3.list_objects_v2().bucket(bucket).prefix("lake/").send().await.unwrap();
        listed.contents().iter().map(|o| o.key().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let written = objects(s3.clone()).await;
    // Parquet files, and what the replay counted of each partition for the typed
    // views (the compactor folds it): one observation per partition written.
    let (files, observed): (Vec<&String>, Vec<&String>) =
        written.iter().partition(|key| key.starts_with("lake/events/") && key.ends_with(".parquet"));
    let partition_of =
        |key: &str, prefix: &str| key.strip_prefix(prefix).unwrap().rsplit_once('/').unwrap().0.to_owned();
    let mut file_partitions: Vec<String> =
        files.iter().map(|key| partition_of(key, "lake/events/")).collect();
    file_partitions.dedup();
    let observed_partitions: Vec<String> =
        observed.iter().map(|key| partition_of(key, "lake/_schemas/_observed/")).collect();
    assert_eq!(observed_partitions, file_partitions, "{written:?}");

    let again = replay(&lake, &[&source], &["--database", crate::catalog_glue::DATABASE], Some(&moto));
    assert!(again.contains("(3 already in the lake)") && again.contains("written: 0 events"), "{again}");
    assert!(again.contains("registered: 0 new partitions"), "{again}");
    assert_eq!(objects(s3.clone()).await, written);
}
