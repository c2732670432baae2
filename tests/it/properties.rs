//! Property tests of the transform (CONTRACT section 3) on arbitrary input.
//!
//! `PROPTEST_CASES` sets the number of batches (default 256; `make fuzz` runs many more).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use eventlake::firehose;
use proptest::prelude::*;
use serde_json::Value;

/// One request record's data: arbitrary bytes, near-valid events, or valid events.
#[derive(Debug, Clone)]
enum Data {
    Encoded(Vec<u8>),
    NotBase64(String),
}

fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?",
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#""\ud83d\ude00 \u00e9 \\ \" \n""#.to_owned()),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[ {} ]", items.join(" , "))),
            prop::collection::vec(("[a-z\u{e9}_]{1,6}", inner), 0..4).prop_map(|fields| {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?} :{v}")).collect();
                format!("{{ {} }}", body.join(",\n"))
            }),
        ]
    })
}

fn uuid_text() -> impl Strategy<Value = String> {
    (any::<u128>(), 0..5u8, any::<bool>()).prop_map(|(bits, form, upper)| {
        let uuid = uuid::Uuid::from_u128(bits);
        let text = match form {
            0 => uuid.simple().to_string(),
            1 => uuid.braced().to_string(),
            2 => uuid.urn().to_string(),
            _ => uuid.hyphenated().to_string(),
        };
        if upper && form != 2 {
            text.to_uppercase()
        } else {
            text
        }
    })
}

fn created_at_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..253_402_300_800_i64).prop_map(|s| s.to_string()),
        (0..253_402_300_800_i64, "[0-9]{1,8}").prop_map(|(s, f)| format!("{s}.{f}")),
        (1..99_999_i64, -3..12_i32).prop_map(|(m, e)| format!("{m}e{e}")),
        "-?[0-9]{1,20}(\\.[0-9]{0,5})?",
    ]
}

fn event_text() -> impl Strategy<Value = String> {
    (
        uuid_text(),
        "[A-Za-z0-9_.-]{1,12}(:[^\"\\\\]{0,8}){0,3}",
        created_at_text(),
        prop::collection::vec(("[a-z_]{1,10}", json_text()), 0..5),
    )
        .prop_map(|(uuid, name, created_at, payload)| {
            let mut text = format!(
                r#"{{"event_uuid":"{uuid}","event_name":{},"created_at":{created_at}"#,
                serde_json::json!(name)
            );
            for (key, value) in payload {
                text.push_str(&format!(",{key:?}: {value}"));
            }
            text.push('}');
            text
        })
}

fn mutated_event() -> impl Strategy<Value = Vec<u8>> {
    (event_text(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(|(text, at, byte, how)| {
        let mut bytes = text.into_bytes();
        let at = at.index(bytes.len());
        match how {
            0 => bytes[at] = byte,
            1 => bytes.truncate(at),
            _ => bytes.insert(at, byte),
        }
        bytes
    })
}

/// The dedupe key of an event, computed here, not by the code under test: the
/// UUID's bits and `created_at` in whole milliseconds.
type Key = (u128, i64);

/// An event valid by construction, with its key: a UUID from a small pool (so
/// batches hold duplicates) or any, in any accepted form; a valid event type;
/// `created_at` whole or with exactly three decimals; payload fields whose names
/// cannot collide with the contract's or each other.
fn valid_event() -> impl Strategy<Value = (Vec<u8>, Key)> {
    (
        prop_oneof![0..4_u128, any::<u128>()],
        0..4_u8,
        any::<bool>(),
        "[A-Za-z0-9_.-]{1,12}(:[a-z]{0,8}){0,2}",
        0..253_402_300_000_i64,
        prop::option::of(0..1000_i64),
        prop::collection::btree_map("p_[a-z]{1,8}", json_text(), 0..4),
    )
        .prop_map(|(bits, form, upper, name, seconds, millis, payload)| {
            let uuid = uuid::Uuid::from_u128(bits);
            let mut uuid_text = match form {
                0 => uuid.simple().to_string(),
                1 => uuid.braced().to_string(),
                2 => uuid.urn().to_string(),
                _ => uuid.hyphenated().to_string(),
            };
            if upper && form != 2 {
                uuid_text = uuid_text.to_uppercase();
            }
            let created_at = match millis {
                Some(ms) => format!("{seconds}.{ms:03}"),
                None => seconds.to_string(),
            };
            let mut text =
                format!(r#"{{"event_uuid":"{uuid_text}","event_name":"{name}","created_at":{created_at}"#);
            for (key, value) in payload {
                text.push_str(&format!(",{key:?}: {value}"));
            }
            text.push('}');
            (text.into_bytes(), (bits, seconds * 1000 + millis.unwrap_or(0)))
        })
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        3 => event_text().prop_map(|t| Data::Encoded(t.into_bytes())),
        2 => mutated_event().prop_map(Data::Encoded),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Data::Encoded),
        1 => any::<String>().prop_map(Data::NotBase64),
    ]
}

fn request(batch: &[Data]) -> String {
    let records: Vec<Value> = batch
        .iter()
        .enumerate()
        .map(|(index, data)| {
            let data = match data {
                Data::Encoded(bytes) => STANDARD.encode(bytes),
                Data::NotBase64(text) => text.clone(),
            };
            serde_json::json!({"recordId": format!("r{index}\u{e9}\"/"), "approximateArrivalTimestamp": 1, "data": data})
        })
        .collect();
    serde_json::json!({"invocationId": "i", "records": records}).to_string()
}

fn response_records(request: &str) -> Vec<Value> {
    let transformed = firehose::transform(request).expect("a parsable request never fails");
    let response: Value = serde_json::from_slice(&transformed.response).expect("response is JSON");
    response["records"].as_array().expect("records").clone()
}

fn valid_event_type(text: &str) -> bool {
    (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

proptest! {
    #[test]
    fn one_response_record_per_request_record_and_ok_outputs_are_stable(batch in prop::collection::vec(data(), 0..24)) {
        let text = request(&batch);
        let input: Value = serde_json::from_str(&text).unwrap();
        let records = response_records(&text);
        let inputs = input["records"].as_array().unwrap();
        prop_assert_eq!(records.len(), inputs.len());
        let mut ok_lines = Vec::new();
        for (record, input) in records.iter().zip(inputs) {
            prop_assert_eq!(&record["recordId"], &input["recordId"]);
            match record["result"].as_str().unwrap() {
                "Ok" => {
                    let line = STANDARD.decode(record["data"].as_str().unwrap()).unwrap();
                    prop_assert_eq!(line.last(), Some(&b'\n'));
                    prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                    // Grammar check only: payload numbers such as 1e400 are valid JSON
                    // that a typed parser would refuse as out of range.
                    let event: std::collections::HashMap<String, &serde_json::value::RawValue> =
                        serde_json::from_slice(&line).unwrap();
                    let event_type: String = serde_json::from_str(event["event_type"].get()).unwrap();
                    prop_assert!(valid_event_type(&event_type), "{}", event_type);
                    prop_assert_eq!(record["metadata"]["partitionKeys"]["event_type"].as_str(), Some(event_type.as_str()));
                    ok_lines.push(line);
                }
                "Dropped" | "ProcessingFailed" => prop_assert_eq!(&record["data"], &input["data"]),
                other => prop_assert!(false, "unexpected result {}", other),
            }
        }
        // Transforming the Ok outputs again gives Ok with the same bytes.
        let again = request(&ok_lines.iter().map(|line| Data::Encoded(line.clone())).collect::<Vec<_>>());
        for (record, line) in response_records(&again).iter().zip(&ok_lines) {
            prop_assert_eq!(record["result"].as_str(), Some("Ok"));
            prop_assert_eq!(&STANDARD.decode(record["data"].as_str().unwrap()).unwrap(), line);
        }
    }

    #[test]
    fn the_first_valid_record_of_each_key_is_ok_and_its_copies_are_dropped(
        batch in prop::collection::vec(prop_oneof![
            2 => valid_event().prop_map(|(bytes, key)| (Data::Encoded(bytes), Some(key))),
            1 => data().prop_map(|data| (data, None)),
        ], 0..24)
    ) {
        let data: Vec<Data> = batch.iter().map(|(data, _)| data.clone()).collect();
        let records = response_records(&request(&data));
        // Counted from the request itself: one answer per record.
        prop_assert_eq!(records.len(), batch.len());
        // Records from `data()` may be valid too and take a key first: track every
        // key an Ok record delivered, read back from its output.
        let mut delivered = std::collections::HashSet::new();
        for (record, (_, key)) in records.iter().zip(&batch) {
            let result = record["result"].as_str().unwrap();
            if let Some(key) = key {
                let expected = if delivered.contains(key) { "Dropped" } else { "Ok" };
                prop_assert_eq!(result, expected, "valid record {:?}", key);
            }
            if result == "Ok" {
                let line = STANDARD.decode(record["data"].as_str().unwrap()).unwrap();
                // Raw values: payload numbers such as 1e400 are valid JSON a typed
                // parser would refuse.
                let event: std::collections::HashMap<String, &serde_json::value::RawValue> =
                    serde_json::from_slice(&line).unwrap();
                let text = |field: &str| serde_json::from_str::<String>(event[field].get()).unwrap();
                let uuid = uuid::Uuid::parse_str(&text("event_uuid")).unwrap().as_u128();
                let datetime = chrono::DateTime::parse_from_rfc3339(&text("created_datetime")).unwrap();
                prop_assert!(delivered.insert((uuid, datetime.timestamp_millis())), "two Ok records share a key");
            }
        }
    }

    #[test]
    fn dedupe_is_idempotent(batch in prop::collection::vec(data(), 0..16)) {
        let once = response_records(&request(&batch));
        let twice = response_records(&request(&[batch.clone(), batch].concat()));
        prop_assert_eq!(&twice[..once.len()], &once[..]);
        for record in &twice[once.len()..] {
            prop_assert_ne!(record["result"].as_str(), Some("Ok"));
        }
    }

    #[test]
    fn the_record_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = eventlake::core::event::Event::parse(&bytes);
    }
}

proptest! {
    #[test]
    fn no_record_can_name_a_path_outside_its_partition(data in data()) {
        let bytes = match data {
            Data::Encoded(bytes) => bytes,
            Data::NotBase64(text) => text.into_bytes(),
        };
        if let Ok(event) = eventlake::core::event::Event::parse(&bytes) {
            let keys = event.partition();
            let partition = keys.to_owned();
            let source = eventlake::lake::writer::SourceId::from_identity(&bytes);
            let key = eventlake::lake::writer::part_key(&partition, &source, 0);
            prop_assert!(eventlake::lake::storage::validate_key(&key).is_ok(), "{}", key);
            let segments: Vec<&str> = key.split('/').collect();
            prop_assert_eq!(segments.len(), 4, "{}", key);
            prop_assert_eq!(segments[0], "events");
            prop_assert_eq!(segments[1].strip_prefix("event_type="), Some(keys.event_type));
            let date = keys.created_date.to_string();
            prop_assert_eq!(segments[2].strip_prefix("created_date="), Some(date.as_str()));
        }
    }
}
