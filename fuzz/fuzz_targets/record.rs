//! Any bytes as one record: parse never panics, and an accepted record's enriched
//! line is one JSON line that parses again to the same bytes.
#![no_main]

use eventlake::core::event::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::parse(data) else { return };
    let mut line = Vec::new();
    event.write_enriched_line(&mut line);
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(serde_json::from_slice::<&serde_json::value::RawValue>(&line).is_ok());
    let again = Event::parse(&line).expect("an enriched line is a valid record");
    let mut second = Vec::new();
    again.write_enriched_line(&mut second);
    assert_eq!(line, second);
    assert_eq!(event.dedupe_key(), again.dedupe_key());
    assert_eq!(event.partition_keys(), again.partition_keys());
});
