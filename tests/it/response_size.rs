//! The transform's response stays under Firehose's 6 MB limit: computed for the
//! event shapes that expand most, at every processor buffer size the Terraform
//! validation accepts; and should it still reach the limit, only the records past
//! it come back unprocessed.

use base64::Engine as _;
use eventlake::firehose::{self, MAX_RESPONSE_BYTES};
use serde_json::{json, Value};

/// Longest record id assumed: Firehose's ids are 56 to 66 characters in AWS's
/// examples and in Kinesis-sourced requests; 96 leaves a margin.
const RECORD_ID_LEN: usize = 96;
const MIB: f64 = 1024.0 * 1024.0;

/// The largest `transform_buffer_mb` the Terraform validation accepts, read from
/// its one condition line.
fn largest_accepted_buffer_mb() -> f64 {
    let variables =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/terraform/variables.tf")).unwrap();
    let prefix = "condition     = var.transform_buffer_mb >= 0.2 && var.transform_buffer_mb <= ";
    let line = variables
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(prefix.trim_start()))
        .expect("terraform/variables.tf: transform_buffer_mb validation line not found");
    line.trim().parse().expect("upper bound is a number")
}

/// Records whose data add up to at least `buffer_bytes`.
fn records_of(buffer_bytes: usize, mut record: impl FnMut(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut total = 0;
    while total < buffer_bytes {
        let data = record(records.len());
        total += data.len();
        records.push(data);
    }
    records
}

/// A Kinesis-sourced request of `records`.
fn build(records: &[Vec<u8>]) -> String {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(index, data)| {
            json!({
                "recordId": format!("{index:0RECORD_ID_LEN$}"),
                "approximateArrivalTimestamp": 1_710_689_700_000_u64,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "k",
                    "approximateArrivalTimestamp": 1_710_689_700_000_u64,
                    "sequenceNumber": "49546986683135544286507457936321625675700192471156785154",
                    "subsequenceNumber": 0
                }
            })
        })
        .collect();
    json!({ "invocationId": "i", "deliveryStreamArn": "a", "region": "r", "records": records }).to_string()
}

/// A request whose records' data add up to `buffer_bytes`, and its record count.
fn request(buffer_bytes: usize, record: impl FnMut(usize) -> Vec<u8>) -> (String, usize) {
    let records = records_of(buffer_bytes, record);
    (build(&records), records.len())
}

fn limited(max_response_bytes: usize) -> firehose::Settings {
    firehose::Settings { max_response_bytes, ..firehose::Settings::default() }
}

fn unlimited() -> firehose::Settings {
    limited(usize::MAX)
}

/// The response size with no limit at all.
fn unlimited_response(request: &str) -> usize {
    let transformed = firehose::transform_with(request, &unlimited()).unwrap();
    assert_eq!(
        transformed.stats.failed_total() + transformed.stats.ok + transformed.stats.dropped,
        transformed.stats.records
    );
    transformed.response.len()
}

/// The smallest valid event: simple-form UUID, one-letter name, a fraction (the
/// enriched time gains milliseconds).
fn smallest_event(index: usize) -> Vec<u8> {
    format!(r#"{{"event_uuid":"{index:032x}","event_name":"a","created_at":0.5}}"#).into_bytes()
}

/// The longest names: a 128-character type and a subtype of `subtype_len`.
fn long_name_event(subtype_len: usize) -> impl FnMut(usize) -> Vec<u8> {
    move |index| {
        let name = format!("{}:{}", "T".repeat(128), "s".repeat(subtype_len));
        format!(r#"{{"event_uuid":"{index:032x}","event_name":"{name}","created_at":1710689696.5}}"#)
            .into_bytes()
    }
}

/// Worst response over the shapes that expand most, for a buffer of `mb`.
fn worst_case(mb: f64) -> (usize, String) {
    let bytes = (mb * MIB) as usize;
    let mut shapes: Vec<(String, usize)> = Vec::new();
    let (smallest, _) = request(bytes, smallest_event);
    shapes.push(("smallest events".into(), unlimited_response(&smallest)));
    for subtype_len in [0, 16, 128, 380, 4096, 65_536] {
        let (long, _) = request(bytes, long_name_event(subtype_len));
        shapes.push((
            format!("128-character type, {subtype_len}-character subtype"),
            unlimited_response(&long),
        ));
    }
    shapes.into_iter().map(|(shape, size)| (size, shape)).max().unwrap()
}

#[test]
fn every_accepted_buffer_size_keeps_the_worst_response_under_6_mb() {
    let largest = largest_accepted_buffer_mb();
    let mut mb = 0.2;
    while mb <= largest + 1e-9 {
        let (size, shape) = worst_case(mb);
        assert!(
            size <= MAX_RESPONSE_BYTES,
            "transform_buffer_mb = {mb}: {shape} give a {size}-byte response, over {MAX_RESPONSE_BYTES}"
        );
        mb += 0.1;
    }
    // The old default of 2 MB did not fit: the validation must keep refusing it.
    let (size, shape) = worst_case(2.0);
    assert!(size > MAX_RESPONSE_BYTES, "2 MB of {shape}: {size}");
}

#[test]
fn invalid_records_never_answer_with_more_than_the_request_held() {
    // Unprocessed records echo their data; with Kinesis record metadata in the
    // request, the response record is smaller than the request record, so a
    // request within Lambda's 6 MB payload limit gets a response within 6 MB too.
    type Record = fn(usize) -> Vec<u8>;
    let shapes: [(&str, Record); 4] = [
        ("empty", |_| Vec::new()),
        ("one byte", |_| b"x".to_vec()),
        ("not an object", |_| b"[]".to_vec()),
        ("too deep", |_| format!("{{\"a\":{}", "[".repeat(200)).into_bytes()),
    ];
    for (shape, record) in shapes {
        for count in [1, 100, 20_000] {
            let text = build(&(0..count).map(record).collect::<Vec<_>>());
            let response = unlimited_response(&text);
            assert!(response < text.len(), "{shape} x {count}: {response} >= {}", text.len());
        }
    }
}

#[test]
fn records_past_the_limit_come_back_unprocessed_and_the_rest_is_delivered() {
    let (text, count) = request(400 * 1024, smallest_event);
    let full = unlimited_response(&text);
    // Room for about half the records to be delivered.
    let limit = full * 85 / 100;
    let transformed = firehose::transform_with(&text, &limited(limit)).unwrap();
    assert!(transformed.response.len() <= limit, "{} > {limit}", transformed.response.len());
    let response: Value = serde_json::from_slice(&transformed.response).unwrap();
    let records = response["records"].as_array().unwrap();
    assert_eq!(records.len(), count);
    let results: Vec<&str> = records.iter().map(|r| r["result"].as_str().unwrap()).collect();
    let delivered = results.iter().take_while(|r| **r == "Ok").count();
    assert!(delivered > 0 && delivered < count, "{delivered} of {count}");
    assert!(results[delivered..].iter().all(|r| *r == "ProcessingFailed"));
    let request: Value = serde_json::from_str(&text).unwrap();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record["recordId"], request["records"][index]["recordId"]);
        if index >= delivered {
            assert_eq!(record["data"], request["records"][index]["data"], "original data, to replay");
        }
    }
    assert_eq!(transformed.stats.failed.get("response_too_large"), Some(&(count - delivered)));
    assert!(transformed.failures.iter().all(|f| f.failure.code() == "response_too_large"));
}

#[test]
fn a_duplicate_of_an_undelivered_record_is_not_dropped() {
    // Records 0..n, then copies of all of them: a copy of a record that came back
    // unprocessed must not be `Dropped` (no copy of it was delivered).
    let (text, count) = request(150 * 1024, |index| smallest_event(index % 700));
    assert!(count > 1400);
    let limit = unlimited_response(&text) * 95 / 100;
    let transformed = firehose::transform_with(&text, &limited(limit)).unwrap();
    let response: Value = serde_json::from_slice(&transformed.response).unwrap();
    let records = response["records"].as_array().unwrap();
    let ok: std::collections::HashSet<usize> =
        (0..count).filter(|&i| records[i]["result"] == "Ok").map(|i| i % 700).collect();
    for (index, record) in records.iter().enumerate() {
        if record["result"] == "Dropped" {
            assert!(ok.contains(&(index % 700)), "record {index} dropped, but no copy was delivered");
        }
    }
    assert!(transformed.stats.failed.get("response_too_large").is_some_and(|&n| n > 0));
}
