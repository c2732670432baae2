//! Compaction of an S3 lake through its Glue table (moto's S3 and Glue on
//! 127.0.0.1): the built `eventlake compact --lake s3://... --database ...` runs as
//! a process while a reader that plans as Athena does (the partition's location
//! from Glue, then the Parquet files directly in it) counts rows and keys in a
//! loop; compactions killed at any moment and run again; a file the writer adds
//! to a compacted partition; superseded files tagged for the lifecycle rule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventlake::catalog::Catalog;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::catalog_glue::{create_table, DATABASE};
use crate::lake_s3::{gzip, sqs_event, Lake, BUCKET};
use crate::support::{eventlake, generated_events, Moto};

/// Per partition (type, date): (rows, distinct keys).
type Counts = BTreeMap<(String, String), (usize, usize)>;

/// The lake as Athena reads it: for each Glue partition, the Parquet files directly
/// in its location. Per partition: rows and distinct (event_uuid, created_datetime).
async fn athena_counts(s3: &aws_sdk_s3::Client, glue: &aws_sdk_glue::Client) -> Counts {
    let mut counts = Counts::new();
    let mut pages =
        glue.get_partitions().database_name(DATABASE).table_name("events").into_paginator().send();
    while let Some(page) = pages.next().await {
        for partition in page.unwrap().partitions() {
            let location = partition.storage_descriptor().unwrap().location().unwrap();
            let prefix = location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
            let listing =
                s3.list_objects_v2().bucket(BUCKET).prefix(prefix).delimiter("/").send().await.unwrap();
            let (mut rows, mut keys) = (0, BTreeSet::new());
            for object in listing.contents().iter().filter(|o| o.key().unwrap().ends_with(".parquet")) {
                let body = s3.get_object().bucket(BUCKET).key(object.key().unwrap()).send().await.unwrap();
                let bytes = body.body.collect().await.unwrap().into_bytes();
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
                for batch in reader {
                    let batch = batch.unwrap();
                    let column = |name: &str| {
                        batch
                            .column_by_name(name)
                            .unwrap()
                            .as_any()
                            .downcast_ref::<arrow::array::StringArray>()
                            .unwrap()
                            .clone()
                    };
                    let (uuids, times) = (column("event_uuid"), column("created_datetime"));
                    for row in 0..batch.num_rows() {
                        keys.insert((uuids.value(row).to_owned(), times.value(row).to_owned()));
                    }
                    rows += batch.num_rows();
                }
            }
            let values = partition.values();
            counts.insert((values[0].clone(), values[1].clone()), (rows, keys.len()));
        }
    }
    counts
}

async fn locations(glue: &aws_sdk_glue::Client) -> BTreeMap<Vec<String>, String> {
    let output = glue.get_partitions().database_name(DATABASE).table_name("events").send().await.unwrap();
    output
        .partitions()
        .iter()
        .map(|p| (p.values().to_vec(), p.storage_descriptor().unwrap().location().unwrap().to_owned()))
        .collect()
}

/// The writer's lake with many small files: eight staged objects, each resending
/// part of the one before, written by the handler and registered in Glue.
async fn lake_of_small_files() -> Lake {
    let lake = Lake::with_catalog(|moto: &Moto| Some(Catalog::new(moto.glue(), DATABASE, "events"))).await;
    create_table(&lake.moto.glue(), &format!("s3://{BUCKET}/lake/events/")).await;
    let mut previous: Vec<u8> = Vec::new();
    for object in 0..8 {
        let generated = generated_events(400, 90 + object, 3, 2, "0.02");
        let mut body = generated.clone();
        body.extend(previous.split(|&b| b == b'\n').take(60).flat_map(|line| [line, b"\n"].concat()));
        stage_and_write(&lake, &format!("staging/2024/03/17/object-{object}.gz"), &body).await;
        previous = generated;
    }
    lake
}

async fn stage_and_write(lake: &Lake, key: &str, ndjson: &[u8]) {
    let body = lake.stage(key, gzip(ndjson)).await;
    let response = lake.handler.invoke_without_deadline(sqs_event(&[("m", body)])).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
}

fn compact_command(moto: &Moto) -> std::process::Command {
    let mut command = eventlake();
    moto.env(&mut command);
    command.args([
        "compact",
        "--lake",
        &format!("s3://{BUCKET}/lake"),
        "--database",
        DATABASE,
        "--older-than",
        "0s",
    ]);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_lake_is_compacted_by_switching_glue_partitions_and_readers_never_see_it_half_done() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let before = athena_counts(&s3, &glue).await;
    assert!(before.len() >= 4, "{before:?}");
    assert!(before.values().any(|(rows, keys)| rows > keys), "copies across objects: {before:?}");
    let old_locations = locations(&glue).await;

    // A reader in a loop, as Athena plans: one location per partition per query.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s3, glue, stop) = (s3.clone(), glue.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut reads = Vec::new();
            while !stop.load(Ordering::SeqCst) || reads.len() < 2 {
                reads.push(athena_counts(&s3, &glue).await);
            }
            reads
        })
    };

    // Compactions killed after 50, 100, 150... ms, until one ends by itself; after
    // each kill, the lake reads whole, and some kill left it half compacted.
    let is_compacted = |location: &String| location.contains("/lake/compacted/");
    let (mut delay, mut kills, mut midway) = (50, 0, false);
    let output = loop {
        let mut child = compact_command(&lake.moto)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        // The killed run's lease stays until it expires; its operator, who knows
        // it died, deletes it (as the refusal's message says).
        s3.delete_object().bucket(BUCKET).key("lake/_leases/compaction.json").send().await.unwrap();
        let switched = locations(&glue).await.values().filter(|l| is_compacted(l)).count();
        midway |= switched > 0 && switched < before.len();
        delay += 50;
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(kills > 0 && midway, "{kills} runs killed, one of them midway: {midway}");
    let summary = crate::lake_local::summary_table(&output.stdout);
    stop.store(true, Ordering::SeqCst);
    let reads = reader.await.unwrap();

    let after = athena_counts(&s3, &glue).await;
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (partition, (rows, keys)) in &after {
        assert_eq!(rows, keys, "{partition:?}: one row per key");
        assert_eq!(keys, &before[partition].1, "{partition:?}: no key lost");
    }
    // Partitions the killed runs switched wait for their grace period ("too recent").
    assert_eq!(
        summary["compacted"] + summary["already compact"] + summary["too recent"],
        before.len() as u64,
        "{summary:?}"
    );
    for read in &reads {
        for (partition, got) in read {
            assert!(
                before.get(partition) == Some(got) || after.get(partition) == Some(got),
                "{partition:?}: read {got:?}, before {:?}, after {:?}",
                before.get(partition),
                after.get(partition)
            );
        }
        assert_eq!(read.len(), before.len(), "every partition in every read");
    }

    // Each partition is located in its compacted directory, which holds one file
    // and the manifest; the old files stay for the grace period (a day), recorded
    // on the partition.
    let new_locations = locations(&glue).await;
    let prefix_of = |location: &str| location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap().to_owned();
    for (values, location) in &new_locations {
        assert!(location.contains("/lake/compacted/event_type="), "{location}");
        let names: Vec<String> = lake
            .objects(&prefix_of(location))
            .await
            .into_iter()
            .map(|(key, _)| key.rsplit_once('/').unwrap().1.to_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"_inputs.json".to_owned()));
        assert!(
            !lake.objects(&prefix_of(&old_locations[values])).await.is_empty(),
            "kept for the grace period"
        );
    }
    assert_eq!(superseded_records(&glue).await.len(), before.len(), "every switch recorded");

    // A run after the grace period (here 0 s), even one whose window leaves every
    // partition out (as a scheduled run's look-back does days later): the old
    // files go, the records too, and nothing Athena reads changes.
    let run = run_outside_the_window(&lake, eventlake::telemetry::now_millis()).await;
    assert!(run.outcomes.is_empty(), "{run:?}");
    assert_eq!(superseded_records(&glue).await, Vec::<Vec<String>>::new());
    assert!(lake.objects("lake/events/").await.is_empty(), "the superseded files are deleted");
    assert_eq!(athena_counts(&s3, &glue).await, after);

    // Run again: nothing to do.
    let output = compact_command(&lake.moto).output().unwrap();
    let again = crate::lake_local::summary_table(&output.stdout);
    assert_eq!((again["compacted"], again["already compact"]), (0, before.len() as u64), "{again:?}");
    assert_eq!(locations(&glue).await, new_locations);

    // The writer adds a file to a compacted partition: it lands in the compacted
    // location, where Athena reads it, and not in events/.
    let first_object = generated_events(400, 90, 3, 2, "0.02");
    let late: Vec<u8> =
        first_object.split(|&b| b == b'\n').take(200).flat_map(|line| [line, b"\n"].concat()).collect();
    let late_notification = lake.stage("staging/2024/03/18/late.gz", gzip(&late)).await;
    let write_late = || async {
        let response = lake
            .handler
            .invoke_without_deadline(sqs_event(&[("m", late_notification.clone())]))
            .await
            .unwrap();
        assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    };
    write_late().await;
    let with_late = athena_counts(&s3, &glue).await;
    for (partition, (rows, keys)) in &with_late {
        assert_eq!(keys, &after[partition].1, "{partition:?}: the late events are copies of events there");
        assert!(rows > keys, "{partition:?}: the late file is read");
    }
    assert!(lake.objects("lake/events/").await.is_empty(), "the writer's new files moved out of events/");

    // Compacted again with the late file: one row per key once more. The same
    // staged object delivered again (an SQS redelivery) adds nothing: the
    // compacted location's manifest says its files' rows are in it.
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(athena_counts(&s3, &glue).await, after);
    write_late().await;
    assert_eq!(athena_counts(&s3, &glue).await, after, "a redelivered object written twice");
}

/// The partitions whose last switch is recorded as not finished.
async fn superseded_records(glue: &aws_sdk_glue::Client) -> Vec<Vec<String>> {
    let output = glue.get_partitions().database_name(DATABASE).table_name("events").send().await.unwrap();
    output
        .partitions()
        .iter()
        .filter(|p| p.parameters().is_some_and(|p| p.contains_key(eventlake::catalog::SUPERSEDED_PARAMETER)))
        .map(|p| p.values().to_vec())
        .collect()
}

#[test]
fn an_s3_lake_needs_its_glue_database() {
    let output = eventlake().args(["compact", "--lake", "s3://bucket/lake"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs --database"));
}

/// The tag the writer sets is the one Terraform's lifecycle rule expires, and the
/// compacted prefix is the code's.
#[test]
fn terraform_names_the_tag_and_the_prefix_the_code_uses() {
    let main = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/main.tf")).unwrap();
    let local = |name: &str| -> String {
        let line = main.lines().find(|line| line.trim_start().starts_with(&format!("{name} "))).unwrap();
        line.split('"').nth(1).unwrap().to_owned()
    };
    let written = eventlake::lambda::parquet_writer::WRITTEN_TAG;
    assert_eq!(
        (local("written_tag_key"), local("written_tag_value")),
        (written.0.to_owned(), written.1.to_owned())
    );
    assert_eq!(
        local("compacted_prefix"),
        format!("${{local.lake_prefix}}{}/", eventlake::compaction::COMPACTED_DIR)
    );
    assert_eq!(
        local("settled_prefix"),
        format!("${{local.lake_prefix}}{}/", eventlake::compaction::SETTLED_DIR)
    );
    assert_eq!(
        local("lease_key"),
        format!("${{local.lake_prefix}}{}", eventlake::compaction::lease::LEASE_KEY)
    );
}

/// A file in `events/` of a compacted partition counts as stranded only once no
/// writer can still be settling it: `STRANDED_AFTER` is at least the longest
/// timeout `terraform/variables.tf` lets the writer have (Lambda's 900 s).
#[test]
fn files_count_as_stranded_only_after_the_writers_longest_run() {
    let variables =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/variables.tf")).unwrap();
    let block = variables.split("variable \"writer_timeout_seconds\" {").nth(1).unwrap();
    let condition = block.lines().find(|line| line.trim_start().starts_with("condition")).unwrap();
    let most: u64 = condition
        .split("var.writer_timeout_seconds <= ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no upper bound in {condition}"));
    assert_eq!(most, 900, "Lambda's limit");
    assert!(eventlake::compaction::STRANDED_AFTER.as_secs() >= most);
}

/// A file moved into a compacted partition is a new, live object: its copy
/// carries none of the source's tags, which could hand it to a lifecycle rule
/// (and reading them would need `s3:GetObjectTagging`). A source deleted since it
/// was listed is reported, not an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_carries_no_tags_and_a_missing_source_is_reported() {
    let lake = Lake::with_catalog(|_| None).await;
    let store = eventlake::aws::s3::S3Store::new(lake.client.clone(), BUCKET, "lake");
    let (from, to) = ("events/event_type=a/created_date=2024-03-17/f.parquet", "compacted/x/f.parquet");
    use eventlake::lake::storage::Storage as _;
    store.put(from, b"bytes".to_vec()).await.unwrap();
    store.tag_object(&store.key_in_bucket(from), ("eventlake-written", "true")).await.unwrap();
    assert!(store.copy(from, to).await.unwrap());
    assert_eq!(lake.tags(&format!("lake/{to}")).await, Vec::<String>::new());
    assert_eq!(store.get(to).await.unwrap(), b"bytes");
    assert!(!store.copy("events/event_type=a/created_date=2024-03-17/gone.parquet", to).await.unwrap());
}

/// `eventlake replay --database` on a compacted S3 lake whose superseded files
/// have expired: it reads the keys where Glue locates each partition (so copies
/// of what the lake holds are not added again), and the events it adds land in
/// the compacted location, where Athena reads them.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_into_a_compacted_lake_dedupes_against_and_writes_to_the_compacted_location() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let compacted = athena_counts(&s3, &glue).await;
    // A grace under Athena's 30-minute query timeout is refused on S3 without
    // --force, and deletes nothing.
    let output = compact_command(&lake.moto).args(["--grace", "0s"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--grace 0s is shorter than 30 minutes") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(!lake.objects("lake/events/").await.is_empty());
    // A run after the grace period (here 0 s, forced): the superseded files are gone.
    let output = compact_command(&lake.moto).args(["--grace", "0s", "--force"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(lake.objects("lake/events/").await.is_empty());

    // 100 events the lake holds, and 50 new ones of the same types and days.
    let known: Vec<u8> = generated_events(400, 90, 3, 2, "0.02")
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .take(100)
        .flat_map(|line| [line, b"\n"].concat())
        .collect();
    let new: Vec<u8> = generated_events(50, 777, 3, 2, "0");
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), [known, new].concat()).unwrap();
    let replay = || {
        let mut command = eventlake();
        lake.moto.env(&mut command);
        let output = command
            .args(["replay", "--lake", &format!("s3://{BUCKET}/lake"), "--database", DATABASE])
            .arg(source.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let report = replay();
    assert!(report.contains("(100 already in the lake)"), "{report}");
    assert!(report.contains("moved into compacted partitions:"), "{report}");
    let replayed = athena_counts(&s3, &glue).await;
    let keys = |counts: &Counts| counts.values().map(|(_, keys)| keys).sum::<usize>();
    assert_eq!(keys(&replayed), keys(&compacted) + 50, "{report}");
    assert!(replayed.values().all(|(rows, keys)| rows == keys), "no copy added: {replayed:?}");
    assert!(lake.objects("lake/events/").await.is_empty(), "nothing left in events/");

    let again = replay();
    assert!(again.contains("(150 already in the lake)") && again.contains("written: 0 events"), "{again}");
    assert_eq!(athena_counts(&s3, &glue).await, replayed);
}

/// Points a partition back at `location` and forgets its superseded record: as
/// if the run that made its current location had stopped before its switch.
async fn relocate(glue: &aws_sdk_glue::Client, values: &[String], location: &str) {
    let partition = glue
        .get_partition()
        .database_name(DATABASE)
        .table_name("events")
        .set_partition_values(Some(values.to_vec()))
        .send()
        .await
        .unwrap()
        .partition
        .unwrap();
    let mut descriptor = partition.storage_descriptor().unwrap().clone();
    descriptor.location = Some(location.to_owned());
    let input = aws_sdk_glue::types::PartitionInput::builder()
        .set_values(Some(values.to_vec()))
        .storage_descriptor(descriptor)
        .build();
    glue.update_partition()
        .database_name(DATABASE)
        .table_name("events")
        .set_partition_value_list(Some(values.to_vec()))
        .partition_input(input)
        .send()
        .await
        .unwrap();
}

/// A compaction's directory is named after its inputs, so a run stopped after
/// some of its parts leaves them where the next run of the same inputs writes,
/// possibly with another target size (fewer parts, other boundaries). The next
/// run switches to a directory that holds exactly its own outputs and manifest:
/// the stopped run's extra part is not read as well (rows twice for Athena).
#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_switches_to_its_own_parts_only_not_a_stopped_runs() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let before = athena_counts(&s3, &glue).await;
    let old_locations = locations(&glue).await;
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let compacted_locations = locations(&glue).await;

    // Each partition back in events/, its compacted directory left with a second
    // part (a copy of the first: what an earlier run with a smaller target wrote).
    let prefix_of = |location: &str| location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap().to_owned();
    for (values, location) in &compacted_locations {
        relocate(&glue, values, &old_locations[values]).await;
        let parts: Vec<(String, Vec<u8>)> = lake
            .objects(&prefix_of(location))
            .await
            .into_iter()
            .filter(|(key, _)| key.ends_with(".parquet"))
            .collect();
        assert_eq!(parts.len(), 1, "{parts:?}");
        let (key, bytes) = &parts[0];
        let stale = key.replace("-00000.parquet", "-00001.parquet");
        assert_ne!(&stale, key);
        s3.put_object().bucket(BUCKET).key(stale).body(bytes.clone().into()).send().await.unwrap();
    }
    assert_eq!(superseded_records(&glue).await, Vec::<Vec<String>>::new());
    assert_eq!(athena_counts(&s3, &glue).await, before);

    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(locations(&glue).await, compacted_locations, "the same inputs, the same directories");
    for ((partition, (rows, keys)), (_, (_, keys_before))) in
        athena_counts(&s3, &glue).await.iter().zip(&before)
    {
        assert_eq!(rows, keys, "{partition:?}: one row per key, the stale part not read");
        assert_eq!(keys, keys_before, "{partition:?}: no key lost");
    }
    for location in compacted_locations.values() {
        let mut names: Vec<String> = lake
            .objects(&prefix_of(location))
            .await
            .into_iter()
            .map(|(key, _)| key.rsplit_once('/').unwrap().1.to_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "one part and the manifest: {names:?}");
        assert!(names[0] == "_inputs.json" && names[1].ends_with("-00000.parquet"), "{names:?}");
    }
}

/// A compaction run of `store`'s lake with the CLI's settings, whose look-back
/// window starts after every partition of the test (as a scheduled run's does days
/// later), at `now_millis`.
async fn run_outside_the_window(lake: &Lake, now_millis: i64) -> eventlake::compaction::Run {
    let store = eventlake::aws::s3::S3Store::new(lake.client.clone(), BUCKET, "lake");
    let catalog = Catalog::new(lake.moto.glue(), DATABASE, "events");
    let options = eventlake::compaction::Options {
        older_than: Duration::ZERO,
        target_bytes: 128 << 20,
        dry_run: false,
        now_millis,
        created_since: eventlake::core::timestamp::CreatedDate::parse("2099-01-01"),
        grace: Duration::ZERO,
    };
    eventlake::compaction::compact_lake(&store, &catalog, options, None, || true).await.unwrap()
}

/// Issue 29, items 4 and 5: a file left in `events/` of a compacted partition (a
/// run without a catalog, a message expired in the DLQ) is handed over by the next
/// run whatever its date, counted as stranded once older than a writer's run;
/// a partition that received such a file, or a late copy settled by the writer,
/// is merged again outside the look-back window: one row per key once more.
#[tokio::test(flavor = "multi_thread")]
async fn files_reaching_a_compacted_partition_outside_the_look_back_are_read_and_merged_again() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let prefix_of = |location: &str| location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap().to_owned();
    let writer_files: BTreeMap<Vec<String>, (String, Vec<u8>)> = {
        let mut first = BTreeMap::new();
        for (values, location) in locations(&glue).await {
            let (key, bytes) = lake.objects(&prefix_of(&location)).await.remove(0);
            first.insert(values, (key, bytes));
        }
        first
    };
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let compacted = athena_counts(&s3, &glue).await;
    assert!(compacted.values().all(|(rows, keys)| rows == keys), "{compacted:?}");
    run_outside_the_window(&lake, eventlake::telemetry::now_millis()).await; // the grace period ends
    assert!(lake.objects("lake/events/").await.is_empty());
    let compacted_locations = locations(&glue).await;

    // A writer file put back into events/ of one partition under a new name.
    let (values, (key, bytes)) = writer_files.iter().next().unwrap();
    let stranded = format!("{}/{}.parquet", key.rsplit_once('/').unwrap().0, "f".repeat(32));
    s3.put_object().bucket(BUCKET).key(&stranded).body(bytes.clone().into()).send().await.unwrap();
    let partition = (values[0].clone(), values[1].clone());

    // Sixteen minutes later (older than any writer's run): handed over, counted.
    let later = eventlake::telemetry::now_millis() + 16 * 60 * 1000;
    let run = run_outside_the_window(&lake, later).await;
    assert_eq!(run.files_stranded, 1, "{run:?}");
    assert!(lake.objects("lake/events/").await.is_empty(), "handed over and removed from events/");
    assert_eq!(locations(&glue).await, compacted_locations);
    let (rows, keys) = athena_counts(&s3, &glue).await[&partition];
    assert_eq!(keys, compacted[&partition].1, "no key lost");
    assert!(rows > keys, "the stranded file's rows are read now: {rows} rows, {keys} keys");
    assert!(!lake.objects("lake/_settled/").await.is_empty(), "the partition is marked");

    // The next run, still outside the window: merged again, the mark removed.
    let run = run_outside_the_window(&lake, eventlake::telemetry::now_millis()).await;
    assert!(
        run.outcomes.iter().any(|(p, outcome)| p.to_string().contains(&partition.0)
            && matches!(outcome, eventlake::compaction::Outcome::Compacted { .. })),
        "{run:?}"
    );
    assert_eq!(athena_counts(&s3, &glue).await, compacted, "one row per key again");
    assert!(lake.objects("lake/_settled/").await.is_empty(), "marks removed once merged");

    // A late copy settled by the writer into a partition out of the window:
    // marked by the writer, merged by the next run.
    let late: Vec<u8> = generated_events(400, 90, 3, 2, "0.02")
        .split(|&b| b == b'\n')
        .take(30)
        .flat_map(|line| [line, b"\n"].concat())
        .collect();
    stage_and_write(&lake, "staging/2024/03/19/late.gz", &late).await;
    assert!(!lake.objects("lake/_settled/").await.is_empty(), "the writer marks what it settles");
    assert!(athena_counts(&s3, &glue).await.values().any(|(rows, keys)| rows > keys));
    run_outside_the_window(&lake, eventlake::telemetry::now_millis()).await; // the new switch's grace ends
    assert_eq!(athena_counts(&s3, &glue).await, compacted, "one row per key again");
    assert!(lake.objects("lake/_settled/").await.is_empty());
}

/// Issue 29, item 6: one compaction at a time per lake. While a run holds the
/// lease, `eventlake compact` is refused with a message that names the holder and
/// changes nothing; an expired lease is taken over, and its old holder can no
/// longer renew it (so it never switches a partition) nor delete it.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_compactor_is_refused_while_a_run_holds_the_lease() {
    use eventlake::compaction::lease::{Lease, LeaseError, LEASE_KEY};
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let store = eventlake::aws::s3::S3Store::new(s3.clone(), BUCKET, "lake");
    let old_locations = locations(&glue).await;
    let now = eventlake::telemetry::now_millis;
    let running = Lease::acquire(&store, "the scheduled run", Duration::from_secs(600), now()).await.unwrap();

    let output = compact_command(&lake.moto).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("another compaction holds this lake's lease") && stderr.contains("the scheduled run"),
        "{stderr}"
    );
    assert_eq!(locations(&glue).await, old_locations, "nothing switched");
    let second = Lease::acquire(&store, "another", Duration::from_secs(600), now()).await;
    assert!(matches!(second, Err(LeaseError::Held { .. })), "{second:?}");

    running.release().await.unwrap();
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(locations(&glue).await.values().all(|l| l.contains("/lake/compacted/")));
    assert!(lake.objects(&format!("lake/{LEASE_KEY}")).await.is_empty(), "released at the end");

    // A run that died an hour ago: its lease has expired and is taken over.
    let dead =
        Lease::acquire(&store, "a run that died", Duration::from_secs(60), now() - 3_600_000).await.unwrap();
    let next = Lease::acquire(&store, "the next run", Duration::from_secs(600), now()).await.unwrap();
    assert!(matches!(dead.renew(now()).await, Err(LeaseError::Lost { .. })));
    dead.release().await.unwrap();
    assert_eq!(lake.objects(&format!("lake/{LEASE_KEY}")).await.len(), 1, "the new holder's lease stays");
    next.release().await.unwrap();
    assert!(lake.objects(&format!("lake/{LEASE_KEY}")).await.is_empty());
}

/// Issue 29, item 4: `ingest` and `replay` into an S3 lake with compacted
/// partitions refuse to write without the catalog (their files would sit unread in
/// `events/`); `ingest --database` registers and settles its files, read at once.
#[tokio::test(flavor = "multi_thread")]
async fn writing_into_a_compacted_s3_lake_needs_its_catalog() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let compacted = athena_counts(&s3, &glue).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("copies.ndjson");
    std::fs::write(&input, generated_events(400, 90, 3, 2, "0.02")).unwrap();
    let lake_url = format!("s3://{BUCKET}/lake");
    let objects_before = lake.objects("lake/").await.len();

    for command in ["ingest", "replay"] {
        let mut refused = eventlake();
        lake.moto.env(&mut refused);
        let output = refused.args([command, "--lake", &lake_url]).arg(&input).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("has compacted partitions") && stderr.contains("--database"),
            "{command}: {stderr}"
        );
    }
    assert_eq!(lake.objects("lake/").await.len(), objects_before, "nothing written");

    // (The superseded writer files stay in events/ for the grace period.)
    let in_events = lake.objects("lake/events/").await.len();
    let mut ingest = eventlake();
    lake.moto.env(&mut ingest);
    let output =
        ingest.args(["ingest", "--lake", &lake_url, "--database", DATABASE]).arg(&input).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = crate::lake_local::summary_table(&output.stdout);
    assert!(summary["moved to compacted partitions"] > 0, "{summary:?}");
    assert_eq!(lake.objects("lake/events/").await.len(), in_events, "settled out of events/");
    let now = athena_counts(&s3, &glue).await;
    for (partition, (_, keys)) in &now {
        assert_eq!(*keys, compacted[partition].1, "{partition:?}: copies of keys already there");
    }
    assert!(now.iter().any(|(partition, (rows, _))| *rows > compacted[partition].0), "the copies are read");
}

/// Issue 29, item 7: Glue is not the only record of where compacted data lives.
/// After the table lost its partitions (dropped and created again), `catalog
/// repair` locates each at its newest complete compaction, with `events/` recorded
/// as superseded: Athena reads what it read before, and the next compaction run
/// hands over and cleans up as after any switch.
#[tokio::test(flavor = "multi_thread")]
async fn catalog_repair_finds_compacted_partitions_where_they_are() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.client.clone(), lake.moto.glue());
    let output = compact_command(&lake.moto).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (compacted, compacted_locations) = (athena_counts(&s3, &glue).await, locations(&glue).await);

    glue.delete_table().database_name(DATABASE).name("events").send().await.unwrap();
    glue.delete_database().name(DATABASE).send().await.unwrap();
    create_table(&glue, &format!("s3://{BUCKET}/lake/events/")).await;
    let mut repair = eventlake();
    lake.moto.env(&mut repair);
    let output = repair
        .args(["catalog", "repair", "--lake", &format!("s3://{BUCKET}/lake"), "--database", DATABASE])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let n = compacted_locations.len();
    assert!(stderr.contains(&format!("{n} registered, {n} of them at their compacted location")), "{stderr}");
    assert_eq!(locations(&glue).await, compacted_locations);
    assert_eq!(athena_counts(&s3, &glue).await, compacted);
    assert_eq!(superseded_records(&glue).await.len(), n, "events/ recorded as superseded");

    run_outside_the_window(&lake, eventlake::telemetry::now_millis()).await;
    assert!(
        lake.objects("lake/events/").await.is_empty(),
        "the superseded files went after the grace period"
    );
    assert_eq!(athena_counts(&s3, &glue).await, compacted);
}

/// Every object under `prefix` in the test bucket: key → bytes.
async fn objects_under(s3: &aws_sdk_s3::Client, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let listing = s3.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.unwrap();
    let mut found = BTreeMap::new();
    for object in listing.contents() {
        let key = object.key().unwrap().to_owned();
        let body = s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
        found.insert(key, body.body.collect().await.unwrap().into_bytes().to_vec());
    }
    found
}

fn views_command(moto: &Moto) -> std::process::Command {
    let mut command = eventlake();
    moto.env(&mut command);
    command.args(["views", "--lake", &format!("s3://{BUCKET}/lake"), "--database", DATABASE]);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_views_of_an_s3_lake_come_from_its_writers_and_compactions_and_match_a_run_from_scratch() {
    let lake = lake_of_small_files().await;
    let (s3, glue) = (lake.moto.s3(), lake.moto.glue());
    let observed = objects_under(&s3, "lake/_schemas/_observed/").await;
    assert_eq!(
        observed.len(),
        8 * 3 * 2,
        "one observation per staged object and partition: {:?}",
        observed.keys()
    );

    // Before compaction: the writers' counts, each copy of a key counted.
    let output = crate::support::success(&mut views_command(&lake.moto));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(
        printed.contains("3 views,") && printed.contains("3 published to Glue; 48 observations folded"),
        "{printed}"
    );
    assert!(objects_under(&s3, "lake/_schemas/_observed/").await.is_empty(), "observations are folded once");
    let counts = athena_counts(&s3, &glue).await;
    let schema_rows = |schemas: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, u64> {
        schemas
            .iter()
            .filter(|(key, _)| key.matches('/').count() == 2)
            .map(|(_, bytes)| {
                let schema: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                (schema["event_type"].as_str().unwrap().to_owned(), schema["rows"].as_u64().unwrap())
            })
            .collect()
    };
    let by_type = |pick: fn(&(usize, usize)) -> usize| -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for ((event_type, _), counted) in &counts {
            *totals.entry(event_type.clone()).or_default() += pick(counted) as u64;
        }
        totals
    };
    let (rows, keys) = (by_type(|c| c.0), by_type(|c| c.1));
    assert_ne!(rows, keys, "the staged objects repeat keys");
    assert_eq!(
        schema_rows(&objects_under(&s3, "lake/_schemas/").await),
        rows,
        "before compaction: every copy"
    );

    // After compaction (its counts, its views published): one row per key.
    let output = crate::support::success(&mut compact_command(&lake.moto));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("typed views"), "{printed}");
    let schemas = objects_under(&s3, "lake/_schemas/").await;
    assert_eq!(schema_rows(&schemas), keys, "after compaction: the first copies");

    // A run from scratch on a local copy of every partition's files writes the same schema files.
    let dir = tempfile::tempdir().unwrap();
    for (values, location) in locations(&glue).await {
        let prefix =
            location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap().trim_end_matches('/').to_owned() + "/";
        for (key, bytes) in objects_under(&s3, &prefix).await {
            let name = &key[prefix.len()..];
            if name.ends_with(".parquet") && !name.contains('/') {
                let path = dir
                    .path()
                    .join(format!("events/event_type={}/created_date={}/{name}", values[0], values[1]));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
    crate::support::success(eventlake().args(["views", "--lake"]).arg(dir.path()));
    for (key, bytes) in schemas.iter().filter(|(key, _)| key.matches('/').count() == 2) {
        let name = key.rsplit('/').next().unwrap();
        let local = std::fs::read(dir.path().join("_schemas").join(name)).unwrap();
        assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(&local), "{key}");
    }

    // A lake whose counts are gone (or were never kept: written before the typed
    // views) is counted again from its partitions' files by --rebuild.
    for key in objects_under(&s3, "lake/_schemas/").await.keys() {
        s3.delete_object().bucket(BUCKET).key(key).send().await.unwrap();
    }
    let output = crate::support::success(views_command(&lake.moto).arg("--rebuild"));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("3 views,") && printed.contains("0 observations folded"), "{printed}");
    let rebuilt = objects_under(&s3, "lake/_schemas/").await;
    for (key, bytes) in schemas.iter().filter(|(key, _)| key.matches('/').count() == 2) {
        assert_eq!(String::from_utf8_lossy(&rebuilt[key]), String::from_utf8_lossy(bytes), "{key}");
    }

    // The Glue views, as Athena stores them: their SELECT and columns are the schema's.
    for (_, bytes) in schemas.iter().filter(|(key, _)| key.matches('/').count() == 2) {
        let schema: eventlake::views::schema::TypeSchema = serde_json::from_slice(bytes).unwrap();
        let table = glue.get_table().database_name(DATABASE).name(&schema.view).send().await.unwrap();
        let table = table.table().unwrap();
        assert_eq!(table.table_type(), Some("VIRTUAL_VIEW"));
        let text = table.view_original_text().unwrap();
        let encoded = text.strip_prefix("/* Presto View: ").unwrap().strip_suffix(" */").unwrap();
        let definition: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap(),
        )
        .unwrap();
        assert_eq!(definition["originalSql"], eventlake::views::sql::select(&schema));
        let columns: Vec<&str> =
            definition["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        let expected: Vec<&str> = eventlake::views::naming::LEADING_COLUMNS
            .iter()
            .copied()
            .chain(schema.fields.iter().filter_map(|f| f.column.as_deref()))
            .collect();
        assert_eq!(columns, expected);
        let glue_columns: Vec<&str> =
            table.storage_descriptor().unwrap().columns().iter().map(|c| c.name()).collect();
        assert_eq!(glue_columns, expected);
    }
}
