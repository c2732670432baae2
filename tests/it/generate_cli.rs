//! `eventlake generate`: determinism, shape, and the one-line demo
//! `eventlake generate --firehose | eventlake transform`.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{eventlake, log_lines, run_with_input, success};

fn generate(args: &[&str]) -> Vec<u8> {
    success(eventlake().arg("generate").args(args)).stdout
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = generate(&["--events", "500", "--seed", "7"]);
    assert_eq!(a, generate(&["--events", "500", "--seed", "7"]));
    assert_ne!(a, generate(&["--events", "500", "--seed", "8"]));
    assert_eq!(a.iter().filter(|&&b| b == b'\n').count(), 500);
}

#[test]
fn clean_events_are_all_valid_and_span_the_requested_types_and_days() {
    let out = generate(&[
        "--events",
        "3000",
        "--types",
        "120",
        "--invalid",
        "0",
        "--duplicates",
        "0",
        "--days",
        "3",
    ]);
    let mut types = BTreeSet::new();
    let mut days = BTreeSet::new();
    for line in out.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        let event = eventlake::core::event::Event::parse(line)
            .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
        types.insert(event.event_type().to_owned());
        days.insert(event.time().created_date().to_string());
    }
    assert!(types.len() > 110, "{} types", types.len());
    assert_eq!(days, BTreeSet::from(["2024-03-17".into(), "2024-03-18".into(), "2024-03-19".into()]));
}

#[test]
fn payloads_carry_numbers_beyond_64_bits_and_unicode() {
    let out = String::from_utf8(generate(&["--events", "2000", "--invalid", "0"])).unwrap();
    let big =
        out.lines().any(|line| line.split(|c: char| !c.is_ascii_digit()).any(|digits| digits.len() >= 25));
    assert!(big, "no integer of 25+ digits");
    assert!(!out.is_ascii(), "no unicode");
}

#[test]
fn firehose_demo_covers_every_outcome_and_rejection_class() {
    let requests = generate(&["--events", "6000", "--invalid", "0.1", "--duplicates", "0.05", "--firehose"]);
    let lines: Vec<&[u8]> = requests.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    assert!(lines.len() >= 2, "expected several 1 MB requests, got {}", lines.len());
    for line in &lines {
        let request: serde_json::Value = serde_json::from_slice(line).unwrap();
        let data_bytes: usize = request["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"].as_str().unwrap().len() * 3 / 4)
            .sum();
        assert!(data_bytes <= 1024 * 1024 + 3 * request["records"].as_array().unwrap().len());
    }
    let mut command = eventlake();
    command.arg("transform");
    let output = run_with_input(command, &requests);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut results = BTreeMap::<String, usize>::new();
    for response in String::from_utf8(output.stdout).unwrap().lines() {
        let response: serde_json::Value = serde_json::from_str(response).unwrap();
        for record in response["records"].as_array().unwrap() {
            *results.entry(record["result"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    assert_eq!(results.values().sum::<usize>(), 6000);
    assert!(results["Dropped"] > 150, "{results:?}");
    let codes: BTreeSet<String> = log_lines(&output.stderr, "record rejected")
        .iter()
        .map(|line| line["code"].as_str().unwrap().to_owned())
        .collect();
    let expected = [
        "byte_order_mark",
        "created_at_out_of_range",
        "duplicate_field",
        "empty",
        "invalid_event_type",
        "invalid_json",
        "invalid_utf8",
        "invalid_uuid",
        "lone_surrogate",
        "missing_field",
        "negative_created_at",
        "not_an_object",
        "not_base64",
        "wrong_type",
    ];
    assert_eq!(codes, expected.iter().map(|c| c.to_string()).collect());
}

#[test]
fn bad_options_are_refused_with_a_message() {
    for args in [
        &["--events", "1", "--invalid", "1.5"][..],
        &["--events", "x"],
        &["--events", "1", "--start", "2024-13-01"],
    ] {
        let output = eventlake().arg("generate").args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(!output.stderr.is_empty());
    }
}
