//! Partition registration in Glue (moto's Glue on 127.0.0.1): by the parquet-writer
//! as partitions appear, and by `eventlake catalog repair` for a whole lake.

use std::collections::BTreeMap;

use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, TableInput};
use eventlake::catalog::Catalog;
use serde_json::json;

use crate::lake_s3::{gzip, sqs_event, staged_lines, Lake, BUCKET};
use crate::support::{eventlake, success, Moto};

pub const DATABASE: &str = "eventlake_test";
const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";

/// Creates the `events` table the way Terraform does: columns and partition keys
/// from the schema source, Parquet SerDe, located at `location`.
pub async fn create_table(glue: &aws_sdk_glue::Client, location: &str) {
    // Each test has its own moto server: the database is new.
    glue.create_database()
        .database_input(aws_sdk_glue::types::DatabaseInput::builder().name(DATABASE).build().unwrap())
        .send()
        .await
        .unwrap();
    let glue_json = eventlake::lake::schema::glue_json();
    let columns = |key: &str| -> Vec<Column> {
        glue_json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                Column::builder()
                    .name(c["name"].as_str().unwrap())
                    .r#type(c["type"].as_str().unwrap())
                    .comment(c["comment"].as_str().unwrap())
                    .build()
                    .unwrap()
            })
            .collect()
    };
    let descriptor = StorageDescriptor::builder()
        .location(location)
        .input_format(PARQUET_INPUT)
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(
            SerDeInfo::builder()
                .serialization_library("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
                .build(),
        )
        .set_columns(Some(columns("columns")))
        .build();
    let table = TableInput::builder()
        .name("events")
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(descriptor)
        .set_partition_keys(Some(columns("partition_keys")))
        .build()
        .unwrap();
    glue.create_table().database_name(DATABASE).table_input(table).send().await.unwrap();
}

/// The table's partitions: values → location.
async fn partitions(glue: &aws_sdk_glue::Client) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut pages =
        glue.get_partitions().database_name(DATABASE).table_name("events").into_paginator().send();
    while let Some(page) = pages.next().await {
        for partition in page.unwrap().partitions() {
            let descriptor = partition.storage_descriptor().unwrap();
            assert_eq!(descriptor.input_format(), Some(PARQUET_INPUT), "descriptor copied from the table");
            assert_eq!(descriptor.columns().len(), eventlake::lake::schema::columns().len());
            found.insert(partition.values().to_vec(), descriptor.location().unwrap().to_owned());
        }
    }
    found
}

fn catalog_for(moto: &Moto) -> Option<Catalog> {
    Some(Catalog::new(moto.glue(), DATABASE, "events"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_writer_registers_the_partitions_it_creates() {
    let lake = Lake::with_catalog(catalog_for).await;
    let glue = lake.moto.glue();
    create_table(&glue, &format!("s3://{BUCKET}/lake/events/")).await;
    let body =
        lake.stage("staging/event_type=payment/created_date=2024-03-17/a.gz", gzip(&staged_lines())).await;
    let event = sqs_event(&[("m1", body)]);
    let response = lake.handler.invoke_without_deadline(event.clone()).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let written: std::collections::BTreeSet<String> = lake
        .objects("lake/events/")
        .await
        .into_iter()
        .map(|(key, _)| key.rsplit_once('/').unwrap().0.trim_start_matches("lake/events/").to_owned())
        .collect();
    let registered = partitions(&glue).await;
    let expected: BTreeMap<Vec<String>, String> = written
        .iter()
        .map(|dir| {
            let (t, d) = dir.split_once('/').unwrap();
            let values = vec![
                t.trim_start_matches("event_type=").to_owned(),
                d.trim_start_matches("created_date=").to_owned(),
            ];
            (values, format!("s3://{BUCKET}/lake/events/{dir}/"))
        })
        .collect();
    assert!(expected.len() > 3, "{expected:?}");
    assert_eq!(registered, expected);

    // A redelivery: the partitions exist; still a success, nothing changes.
    let response = lake.handler.invoke_without_deadline(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(partitions(&glue).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_failure_fails_the_message_and_the_retry_registers() {
    let lake = Lake::with_catalog(catalog_for).await;
    let body =
        lake.stage("staging/event_type=payment/created_date=2024-03-17/a.gz", gzip(&staged_lines())).await;
    let event = sqs_event(&[("m1", body)]);
    // No table yet: the files are written, the message is reported for retry.
    let response = lake.handler.invoke_without_deadline(event.clone()).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([{"itemIdentifier": "m1"}]));
    let files = lake.objects("lake/events/").await;
    assert!(!files.is_empty());

    let glue = lake.moto.glue();
    create_table(&glue, &format!("s3://{BUCKET}/lake/events/")).await;
    let response = lake.handler.invoke_without_deadline(event).await.unwrap();
    assert_eq!(response["batchItemFailures"], json!([]));
    assert_eq!(lake.objects("lake/events/").await, files, "the retry rewrote the same files");
    assert!(partitions(&glue).await.len() > 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_repair_registers_every_missing_partition() {
    let lake = Lake::with_catalog(|_| None).await;
    let glue = lake.moto.glue();
    let root = format!("s3://{BUCKET}/repair");
    // 60 types over 3 days: more partitions than one BatchCreatePartition takes.
    let input = tempfile::NamedTempFile::new().unwrap();
    let generated = success(eventlake().args([
        "generate",
        "--events",
        "4000",
        "--types",
        "60",
        "--days",
        "3",
        "--invalid",
        "0",
    ]));
    std::fs::write(input.path(), generated.stdout).unwrap();
    let mut ingest = eventlake();
    ingest.args(["ingest", "--quiet", "--lake", &root]).arg(input.path());
    lake.moto.env(&mut ingest);
    success(&mut ingest);
    // A stray directory that is not a partition is left alone.
    lake.client.put_object().bucket(BUCKET).key("repair/events/notes/readme.txt").send().await.unwrap();

    create_table(&glue, &format!("{root}/events/")).await;
    let catalog = Catalog::new(glue.clone(), DATABASE, "events");
    let first = eventlake::core::partition::Partition::from_directories(
        "event_type=payment",
        "created_date=2024-03-17",
    )
    .unwrap();
    catalog.register(std::slice::from_ref(&first)).await.unwrap();

    let repair = |extra: &[&str]| {
        let mut command = eventlake();
        command.args(["catalog", "repair", "--lake", &root, "--database", DATABASE]).args(extra);
        lake.moto.env(&mut command);
        command.output().unwrap()
    };
    let dry = repair(&["--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let listed = String::from_utf8(dry.stdout).unwrap();
    assert_eq!(partitions(&glue).await.len(), 1, "a dry run registers nothing");
    assert!(!listed.contains("event_type=payment/created_date=2024-03-17\n"));

    let done = repair(&[]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let summary = String::from_utf8_lossy(&done.stderr);
    let registered = partitions(&glue).await;
    assert!(registered.len() > 100, "{}", registered.len());
    assert_eq!(listed.lines().count(), registered.len() - 1);
    assert!(summary.contains(&format!("{} partitions in the lake, 1 in", registered.len())), "{summary}");
    assert!(summary.contains(&format!("{} registered", registered.len() - 1)), "{summary}");
    for (values, location) in &registered {
        assert_eq!(location, &format!("{root}/events/event_type={}/created_date={}/", values[0], values[1]));
    }
    let again = repair(&[]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 missing, 0 registered"));

    // A table somewhere else is refused: its partitions would point at nothing.
    let wrong = {
        let mut command = eventlake();
        command.args([
            "catalog",
            "repair",
            "--lake",
            &format!("s3://{BUCKET}/other"),
            "--database",
            DATABASE,
        ]);
        lake.moto.env(&mut command);
        command.output().unwrap()
    };
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("is located at"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // The values Glue holds for the first partition are the partition's own.
    assert_eq!(first.values(), ["payment", "2024-03-17"]);
}
