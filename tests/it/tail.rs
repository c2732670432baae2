//! `eventlake tail` against moto's Kinesis and DynamoDB: the built binary reads
//! what `eventlake send` put, every event once and each shard's in its order,
//! across a stop (SIGINT) and a restart from a checkpoint file, across a
//! reshard (a split, then a merge: parents before children) with the
//! checkpoint in DynamoDB, and with `--type` and `--where`. Two tails on one
//! DynamoDB checkpoint: the second write is refused.
//!
//! moto never ends a closed shard's iterator (Kinesis does, with no next
//! iterator); `shards::is_read_to_end` takes a closed shard that gives nothing
//! and is not behind as read to its end, which both do.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_kinesis::primitives::Blob;
use eventlake::aws::dynamodb::{CheckpointTable, CheckpointTableError};
use eventlake::shards::{Checkpoint, StreamStart};

use crate::support::{eventlake, generated_events, success, Background, Moto};

fn kinesis(moto: &Moto) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(&moto.sdk_config())
}

async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) {
    client.create_stream().stream_name(name).shard_count(shards).send().await.unwrap();
}

async fn create_table(moto: &Moto, name: &str) {
    let client = aws_sdk_dynamodb::Client::new(&moto.sdk_config());
    let key =
        |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("stream", KeyType::Hash))
        .key_schema(key("shard", KeyType::Range))
        .attribute_definitions(attribute("stream"))
        .attribute_definitions(attribute("shard"))
        .send()
        .await
        .unwrap();
}

/// `eventlake send` of `ndjson` to `stream` (one call in flight: moto numbers a
/// shard's records without a lock).
fn send(moto: &Moto, stream: &str, ndjson: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, ndjson).unwrap();
    let mut command = eventlake();
    moto.env(&mut command);
    command
        .current_dir(dir.path())
        .args(["send", "--stream", stream, "--concurrency", "1", "--quiet"])
        .arg(&path);
    success(&mut command);
}

fn tail_command(moto: &Moto, args: &[&str]) -> Command {
    let mut command = eventlake();
    moto.env(&mut command);
    command.arg("tail").args(args);
    command
}

fn lines(ndjson: &[u8]) -> Vec<String> {
    String::from_utf8(ndjson.to_vec()).unwrap().lines().map(str::to_owned).collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// Each event of the stream: its shard and its place in the shard, read with the SDK.
async fn places(client: &aws_sdk_kinesis::Client, stream: &str) -> HashMap<String, (String, usize)> {
    let mut places = HashMap::new();
    for (shard, records) in crate::send_kinesis::shard_records(client, stream).await {
        let events = records.iter().flat_map(|record| record.split(|&b| b == b'\n'));
        for (index, event) in events.enumerate() {
            places.insert(String::from_utf8(event.to_vec()).unwrap(), (shard.clone(), index));
        }
    }
    places
}

/// Asserts that the events of each shard come in `output` in the shard's order.
fn assert_in_shard_order(output: &[String], places: &HashMap<String, (String, usize)>) {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for line in output {
        let (shard, index) = &places[line];
        if let Some(previous) = last.insert(shard, *index) {
            assert!(*index > previous, "shard {shard}: event {index} written after event {previous}");
        }
    }
    assert!(last.len() > 1, "the events came from several shards: {last:?}");
}

/// A tail running in the background, its stdout collected line by line.
struct Running {
    child: Background,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                collected.lock().unwrap().push(line.unwrap());
            }
        });
        Running { child: Background(child), lines }
    }

    fn wait_for_lines(&self, count: usize) {
        let started = Instant::now();
        while self.lines.lock().unwrap().len() < count {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "tail wrote {} of {count} events",
                self.lines.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal`, waits for the exit; the exit status and stderr.
    fn stop(mut self, signal: i32) -> (Option<i32>, String, Vec<String>) {
        // SAFETY: a signal to the child this test started.
        unsafe { libc::kill(self.child.0.id() as i32, signal) };
        let mut stderr = String::new();
        std::io::Read::read_to_string(self.child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let status = self.child.0.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let lines = self.lines.lock().unwrap().clone();
        (status.code(), stderr, lines)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_and_a_restart_from_a_checkpoint_file_write_every_event_once_in_shard_order() {
    let moto = Moto::start();
    let client = kinesis(&moto);
    create_stream(&client, "live", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("live.checkpoint.json");
    let checkpoint_arg = checkpoint.to_str().unwrap();
    let (first, second, third) = (
        generated_events(1500, 1, 5, 2, "0"),
        generated_events(1500, 2, 5, 2, "0"),
        generated_events(1500, 3, 5, 2, "0"),
    );

    send(&moto, "live", &first);
    let running = Running::start(tail_command(&moto, &["--stream", "live", "--checkpoint", checkpoint_arg]));
    running.wait_for_lines(1500);
    send(&moto, "live", &second); // while it follows
    running.wait_for_lines(3000);
    let (status, stderr, written) = running.stop(libc::SIGINT);
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stderr.contains("3000 events written"), "{stderr}");
    let held: Checkpoint = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    assert_eq!(held.stream, "live");
    assert_eq!(held.start, StreamStart::TrimHorizon);
    assert_eq!(held.shards.len(), 3, "{held:?}");

    send(&moto, "live", &third); // while it is stopped
    let output = success(&mut tail_command(
        &moto,
        &["--stream", "live", "--checkpoint", checkpoint_arg, "--no-follow"],
    ));
    let restarted = lines(&output.stdout);
    assert_eq!(
        sorted(written.clone()),
        sorted([lines(&first), lines(&second)].concat()),
        "first run: each event once"
    );
    assert_eq!(
        sorted(restarted.clone()),
        sorted(lines(&third)),
        "the restart: what came after, none skipped, none twice"
    );
    let places = places(&client, "live").await;
    assert_in_shard_order(&[written, restarted].concat(), &places);

    // Nothing new: a run writes nothing.
    let again = success(&mut tail_command(
        &moto,
        &["--stream", "live", "--checkpoint", checkpoint_arg, "--no-follow"],
    ));
    assert!(again.stdout.is_empty(), "{}", String::from_utf8_lossy(&again.stdout));

    // A second tail on the same file is refused while the first holds it.
    let holder = Running::start(tail_command(&moto, &["--stream", "live", "--checkpoint", checkpoint_arg]));
    std::thread::sleep(Duration::from_secs(2));
    let refused = tail_command(&moto, &["--stream", "live", "--checkpoint", checkpoint_arg, "--no-follow"])
        .output()
        .unwrap();
    let (status, _, _) = holder.stop(libc::SIGTERM);
    assert_eq!(status, Some(143));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use by another tail"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn parents_are_read_before_their_children_across_a_split_and_a_merge_with_the_checkpoint_in_dynamodb() {
    let moto = Moto::start();
    let client = kinesis(&moto);
    create_stream(&client, "resharded", 1).await;
    create_table(&moto, "tail-checkpoints").await;
    let (before, split, merged) = (
        generated_events(600, 4, 5, 1, "0"),
        generated_events(600, 5, 5, 1, "0"),
        generated_events(600, 6, 5, 1, "0"),
    );
    send(&moto, "resharded", &before);
    let middle = (u128::MAX / 2).to_string();
    client
        .split_shard()
        .stream_name("resharded")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(&middle)
        .send()
        .await
        .unwrap();
    send(&moto, "resharded", &split);
    client
        .merge_shards()
        .stream_name("resharded")
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    send(&moto, "resharded", &merged);

    let args = ["--stream", "resharded", "--checkpoint", "dynamodb://tail-checkpoints", "--no-follow"];
    let output = success(&mut tail_command(&moto, &args));
    let written = lines(&output.stdout);
    assert_eq!(written.len(), 1800, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(sorted(written[..600].to_vec()), sorted(lines(&before)), "the parent first");
    assert_eq!(sorted(written[600..1200].to_vec()), sorted(lines(&split)), "then the split's children");
    assert_eq!(sorted(written[1200..].to_vec()), sorted(lines(&merged)), "then the merge's child");

    let mut table = CheckpointTable::new(&moto.sdk_config(), "tail-checkpoints");
    let held = table.load("resharded").await.unwrap().unwrap();
    let finished: Vec<&str> =
        held.shards.iter().filter(|(_, p)| p.finished).map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        finished,
        ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"],
        "{held:?}"
    );

    let again = success(&mut tail_command(&moto, &args));
    assert!(again.stdout.is_empty(), "none twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tails_on_one_dynamodb_checkpoint_never_both_advance_it() {
    let moto = Moto::start();
    create_table(&moto, "shared").await;
    let mut first = CheckpointTable::new(&moto.sdk_config(), "shared");
    let mut second = CheckpointTable::new(&moto.sdk_config(), "shared");
    let mut checkpoint = Checkpoint::new("events", StreamStart::TrimHorizon);
    first.save(&checkpoint, &[], &[]).await.unwrap();
    let shard = vec!["shardId-000000000000".to_owned()];
    checkpoint.advance(&shard[0], "10");
    first.save(&checkpoint, &shard, &[]).await.unwrap();

    let mut seen = second.load("events").await.unwrap().unwrap();
    assert_eq!(seen, checkpoint);
    checkpoint.advance(&shard[0], "20");
    first.save(&checkpoint, &shard, &[]).await.unwrap();
    seen.advance(&shard[0], "15");
    let refused = second.save(&seen, &shard, &[]).await.unwrap_err();
    assert!(matches!(refused, CheckpointTableError::Conflict { .. }), "{refused}");
    assert!(refused.to_string().contains("another tail advanced the checkpoint"), "{refused}");
    let mut reader = CheckpointTable::new(&moto.sdk_config(), "shared");
    let stored = reader.load("events").await.unwrap().unwrap();
    assert_eq!(stored.shards[&shard[0]].after.as_deref(), Some("20"), "the first tail's position stands");

    // A tail that starts fresh on a stream whose start another wrote is refused too.
    let mut late = CheckpointTable::new(&moto.sdk_config(), "shared");
    let refused =
        late.save(&Checkpoint::new("events", StreamStart::TrimHorizon), &[], &[]).await.unwrap_err();
    assert!(matches!(refused, CheckpointTableError::Conflict { .. }), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn type_and_where_pick_events_and_a_piece_that_is_no_event_is_reported_not_written() {
    let moto = Moto::start();
    let client = kinesis(&moto);
    create_stream(&client, "filtered", 2).await;
    let events = generated_events(2000, 7, 6, 3, "0");
    send(&moto, "filtered", &events);
    let good = r#"{"event_uuid":"6f1c2b9e-1d4a-4c1e-9a7b-3c2d1e0f9a8b","event_name":"probe:check","created_at":1710689696,"amount":"7"}"#;
    let record = format!("not json\n{good}\n");
    client
        .put_record()
        .stream_name("filtered")
        .partition_key("p")
        .data(Blob::new(record.into_bytes()))
        .send()
        .await
        .unwrap();

    let all = success(&mut tail_command(&moto, &["--stream", "filtered", "--no-follow"]));
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert_eq!(sorted(lines(&all.stdout)), sorted([lines(&events), vec![good.to_owned()]].concat()));
    assert_eq!(stderr.matches("not an event, not written").count(), 1, "{stderr}");
    assert!(stderr.contains("1 not events"), "{stderr}");
    assert!(!stderr.contains("not json"), "the record's content is not logged: {stderr}");

    // Expected from the input itself, not from the code under test.
    let parsed: Vec<serde_json::Value> =
        lines(&events).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let event_type = |event: &serde_json::Value| {
        event["event_name"].as_str().unwrap().split(':').next().unwrap().to_owned()
    };
    let some_type = event_type(&parsed[0]);
    let expected: Vec<String> = lines(&events)
        .into_iter()
        .zip(&parsed)
        .filter(|(_, event)| {
            event_type(event) == some_type && event["created_at"].as_f64().unwrap() >= 1_710_720_000.0
        })
        .map(|(line, _)| line)
        .collect();
    assert!(!expected.is_empty());
    let filtered = success(&mut tail_command(
        &moto,
        &["--stream", "filtered", "--no-follow", "--type", &some_type, "--where", "created_at >= 1710720000"],
    ));
    assert_eq!(sorted(lines(&filtered.stdout)), sorted(expected));

    let payload = success(&mut tail_command(
        &moto,
        &["--stream", "filtered", "--no-follow", "--where", "json_extract_scalar(payload, '$.amount') = '7'"],
    ));
    assert_eq!(lines(&payload.stdout), [good]);

    // A strict CAST that fails on one event leaves that event out, reported,
    // and judges its neighbours: it never stops the tail.
    let unreadable = r#"{"event_uuid":"6f1c2b9e-1d4a-4c1e-9a7b-3c2d1e0f9a81","event_name":"probe:odd","created_at":1710689697,"amount":"n/a"}"#;
    let nine = r#"{"event_uuid":"6f1c2b9e-1d4a-4c1e-9a7b-3c2d1e0f9a82","event_name":"probe:big","created_at":1710689698,"amount":"9"}"#;
    client
        .put_record()
        .stream_name("filtered")
        .partition_key("p")
        .data(Blob::new(format!("{unreadable}\n{nine}").into_bytes()))
        .send()
        .await
        .unwrap();
    let strict = "CAST(json_extract_scalar(payload, '$.amount') AS DOUBLE) > 5";
    let cast = success(&mut tail_command(
        &moto,
        &["--stream", "filtered", "--no-follow", "--type", "probe", "--where", strict],
    ));
    let stderr = String::from_utf8_lossy(&cast.stderr);
    assert_eq!(lines(&cast.stdout), [good, nine], "{stderr}");
    assert_eq!(stderr.matches("--where could not be evaluated, not written").count(), 1, "{stderr}");
    assert!(stderr.contains("n/a"), "the engine's reason names the value: {stderr}");

    let refused =
        tail_command(&moto, &["--stream", "filtered", "--where", "no_such_column = 1"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no_such_column"), "{refused:?}");
}
