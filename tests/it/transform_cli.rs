//! `eventlake transform` on the contract fixture: every rule, byte for byte.

use std::collections::BTreeMap;

use aws_lambda_events::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use base64::Engine as _;

use crate::support::{eventlake, fixture, log_lines, run_with_input, success};

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("fixture")
}

/// The product's response to the fixture request.
fn transformed_fixture() -> String {
    let output = success(eventlake().arg("transform").arg("--input").arg(fixture("firehose-request.json")));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn fixture_response_is_byte_identical_to_the_hand_written_contract() {
    let output = success(eventlake().arg("transform").arg("--input").arg(fixture("firehose-request.json")));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), read("firehose-response.json"));
}

#[test]
fn every_rejection_is_logged_on_stderr_with_its_reason() {
    let output = success(eventlake().arg("transform").arg("--input").arg(fixture("firehose-request.json")));
    let expected: BTreeMap<String, String> = serde_json::from_str(&read("firehose-reasons.json")).unwrap();
    let logged: BTreeMap<String, String> = log_lines(&output.stderr, "record rejected")
        .into_iter()
        .map(|line| {
            (line["recordId"].as_str().unwrap().to_owned(), line["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(logged, expected);
    // The record data never reaches the logs.
    let request: serde_json::Value = serde_json::from_str(&read("firehose-request.json")).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for record in request["records"].as_array().unwrap() {
        let data = record["data"].as_str().unwrap();
        assert!(data.len() < 12 || !stderr.contains(data), "data of {} logged", record["recordId"]);
    }
}

#[test]
fn stdin_gives_the_same_response_as_a_file() {
    let output = run_with_input(
        {
            let mut command = eventlake();
            command.arg("transform");
            command
        },
        read("firehose-request.json").as_bytes(),
    );
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), read("firehose-response.json"));
}

#[test]
fn the_response_speaks_aws_lambda_events_shapes() {
    let request: KinesisFirehoseEvent =
        serde_json::from_str(&read("firehose-request.json").replace("abc!def", "AAAA")).unwrap();
    assert!(serde_json::from_str::<KinesisFirehoseEvent>(&read("firehose-request.json")).is_err());
    // Base64Data cannot hold the record whose data is not base64 (which is why the
    // transform reads data as a string); swap it for this shape check.
    let response: KinesisFirehoseResponse =
        serde_json::from_str(&transformed_fixture().replace("abc!def", "AAAA")).unwrap();
    assert_eq!(request.records.len(), response.records.len());
    for (input, output) in request.records.iter().zip(&response.records) {
        assert_eq!(input.record_id, output.record_id);
    }
    let ok = response.records.iter().filter(|r| r.result.as_deref() == Some("Ok"));
    for record in ok {
        let line = String::from_utf8(record.data.0.clone()).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let keys = &record.metadata.partition_keys;
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(keys["event_type"], event["event_type"].as_str().unwrap());
        assert_eq!(&keys["created_date"], &event["created_datetime"].as_str().unwrap()[..10]);
    }
}

#[test]
fn dropped_and_failed_records_return_their_original_data() {
    let request: serde_json::Value = serde_json::from_str(&read("firehose-request.json")).unwrap();
    let response: serde_json::Value = serde_json::from_str(&transformed_fixture()).unwrap();
    let (inputs, outputs) = (request["records"].as_array().unwrap(), response["records"].as_array().unwrap());
    assert_eq!(inputs.len(), outputs.len());
    let mut unchanged = 0;
    for (input, output) in inputs.iter().zip(outputs) {
        assert_eq!(input["recordId"], output["recordId"]);
        if output["result"] != "Ok" {
            assert_eq!(input["data"], output["data"], "{}", input["recordId"]);
            unchanged += 1;
        } else {
            // An Ok record's data is the enriched event: one JSON line.
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(output["data"].as_str().unwrap()).unwrap();
            let line = String::from_utf8(decoded).unwrap();
            assert!(
                line.ends_with('\n') && serde_json::from_str::<serde_json::Value>(&line).is_ok(),
                "{line}"
            );
        }
    }
    assert!(unchanged > 0 && unchanged < inputs.len(), "the fixture holds both kinds");
}

#[test]
fn a_malformed_request_fails_loudly() {
    for bad in [&b"{\"records\":[{\"recordId\":1,\"data\":\"\"}]}"[..], b"{}", b"not json", b""] {
        let mut command = eventlake();
        command.arg("transform");
        let output = run_with_input(command, bad);
        assert!(!output.status.success(), "{}", String::from_utf8_lossy(bad));
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("eventlake: error:"), "{stderr}");
    }
}

#[test]
fn a_request_too_large_to_answer_is_an_error_not_a_truncated_answer() {
    // 6,000 records of ~1 KB each: even with every record echoed back
    // unprocessed, the response passes 6 MB (Lambda would refuse such a request).
    let payload = "x".repeat(1000);
    let records: Vec<serde_json::Value> = (0..6000)
        .map(|i| {
            let event = format!(
                r#"{{"event_uuid":"00000000-0000-4000-8000-{i:012}","event_name":"big:one","created_at":1,"p":"{payload}"}}"#
            );
            let data = base64::engine::general_purpose::STANDARD.encode(event);
            serde_json::json!({"recordId": i.to_string(), "data": data})
        })
        .collect();
    let request = serde_json::json!({ "records": records }).to_string();
    let mut command = eventlake();
    command.arg("transform");
    let output = run_with_input(command, request.as_bytes());
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exceeds Firehose's limit even with every record unprocessed"), "{stderr}");
}
