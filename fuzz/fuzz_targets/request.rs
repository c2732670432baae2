//! Any bytes as a Firehose request: transform never panics, and a parsed request
//! gets exactly one response record per request record, in order: counted from
//! the request by an independent parse, not from the transform's own counts.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The request as a strict typed parse sees it: only the record ids. serde's
/// derive refuses a duplicated `records` or `recordId`, which the transform's
/// streaming parse would read differently: such requests are not compared.
#[derive(serde::Deserialize)]
struct Request {
    records: Vec<RecordId>,
}

#[derive(serde::Deserialize)]
struct RecordId {
    #[serde(rename = "recordId")]
    record_id: String,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(transformed) = eventlake::firehose::transform(text) {
        let response: serde_json::Value = serde_json::from_slice(&transformed.response).expect("response is JSON");
        let records = response["records"].as_array().expect("records");
        if let Ok(request) = serde_json::from_str::<Request>(text) {
            assert_eq!(records.len(), request.records.len());
            for (output, input) in records.iter().zip(&request.records) {
                assert_eq!(output["recordId"].as_str(), Some(input.record_id.as_str()));
            }
        }
    }
});
