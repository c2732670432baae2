//! Any text and any path: the path scanner behind `json_extract*` never panics,
//! and on text that is JSON what it finds is JSON too; nor does writing it as
//! Athena does (always JSON when it answers), nor counting its fields for the
//! typed views.
#![no_main]

use eventlake::core::json::{value_at, PathStep};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the next bytes are the path (0 to 3): a
    // lowercase letter is that key, another byte below 128 a letter too, a byte
    // from 128 an index. The rest is the text.
    let Some((&count, rest)) = data.split_first() else { return };
    let (path, text) = rest.split_at(usize::from(count % 4).min(rest.len()));
    let Ok(text) = std::str::from_utf8(text) else { return };
    let mut athena = String::new();
    if eventlake::core::json::write_like_athena(text, &mut athena).is_some() {
        assert!(serde_json::from_str::<&serde_json::value::RawValue>(&athena).is_ok(), "{athena:?} from {text:?}");
    }
    eventlake::views::stats::PartitionStats::default().observe(0, "u", text);
    let steps: Vec<PathStep> = path.iter().map(|&b| step(b)).collect();
    let Some(found) = value_at(text, &steps) else { return };
    assert!(!found.is_empty());
    if serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok() {
        assert!(serde_json::from_str::<&serde_json::value::RawValue>(found).is_ok(), "{found:?} in {text:?}");
    }
});

fn step(byte: u8) -> PathStep {
    match byte {
        b'a'..=b'z' => PathStep::Key(char::from(byte).to_string()),
        0..=127 => PathStep::Key(char::from(b'a' + byte % 26).to_string()),
        _ => PathStep::Index(usize::from(byte % 8)),
    }
}
