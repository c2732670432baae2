//! Any bytes as a Firehose request: transform never panics, and a parsed request
//! gets exactly one response record per request record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(transformed) = eventlake::firehose::transform(text) {
        let response: serde_json::Value = serde_json::from_slice(&transformed.response).expect("response is JSON");
        let records = response["records"].as_array().expect("records");
        assert_eq!(records.len(), transformed.stats.records);
    }
});
