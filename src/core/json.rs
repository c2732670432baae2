//! Byte-level helpers over JSON text that serde_json has already validated.
//!
//! Events keep their values exactly as written, so values are carried as raw JSON
//! text (`serde_json::value::RawValue`) and never rebuilt. These helpers do the few
//! things the raw text still needs: drop insignificant whitespace, find lone UTF-16
//! surrogate escapes (which serde_json tolerates inside skipped values) and name
//! the kind of a value for error messages.

use memchr::{memchr, memchr2, memchr3};

/// Appends `raw` (one valid JSON value) to `out` without insignificant whitespace.
pub fn write_compact(raw: &str, out: &mut Vec<u8>) {
    let bytes = raw.as_bytes();
    // Scalars never hold insignificant whitespace: serde_json's raw values are trimmed.
    if !matches!(bytes.first(), Some(b'{' | b'[')) || !has_whitespace(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        out.push(b);
    }
}

fn has_whitespace(bytes: &[u8]) -> bool {
    memchr3(b' ', b'\n', b'\t', bytes).is_some() || memchr(b'\r', bytes).is_some()
}

/// Byte offset of the first `\uXXXX` escape that is half of a surrogate pair without
/// its other half. In valid JSON every backslash starts an escape; on other text
/// (an error message is being chosen) the answer is a best guess, never a panic.
pub fn find_lone_surrogate(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = memchr(b'\\', bytes.get(at..)?) {
        let start = at + found;
        if bytes.get(start + 1) != Some(&b'u') {
            at = start + 2;
            continue;
        }
        let unit = hex4(bytes, start + 2)?;
        at = start + 6;
        match unit {
            0xD800..=0xDBFF => {
                let low = (bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == Some(&b'u'))
                    .then(|| hex4(bytes, at + 2))
                    .flatten();
                match low {
                    Some(0xDC00..=0xDFFF) => at += 6,
                    _ => return Some(start),
                }
            }
            0xDC00..=0xDFFF => return Some(start),
            _ => {}
        }
    }
    None
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// Byte offset of the first `{` or `[` that opens level `max_depth + 1` of
/// nesting (the outermost value is level 1), or `None` when the text nests no
/// deeper than `max_depth`. Brackets inside strings do not count. Linear in the
/// text and never recursive, so hostile depth costs nothing but the scan; on text
/// that is not JSON the answer is a best guess, never a panic.
pub fn find_too_deep(text: &[u8], max_depth: usize) -> Option<usize> {
    // Text with no more opening brackets than the limit cannot nest deeper: the
    // common case costs one vectorized count.
    let opening = text.iter().filter(|&&b| b == b'{' || b == b'[').count();
    if opening <= max_depth {
        return None;
    }
    let mut depth = 0_usize;
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'"' => at = end_of_string(text, at + 1)?,
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Some(at);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    None
}

/// Offset of the quote that closes the string whose body starts at `at`.
fn end_of_string(text: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += memchr2(b'"', b'\\', text.get(at..)?)?;
        if text[at] == b'"' {
            return Some(at);
        }
        at += 2;
    }
}

/// Appends `text` as a JSON string literal.
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    // Most strings (record ids, names) need no escaping; a branch-free scan finds
    // that faster than escaping byte by byte.
    let needs_escape = text.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if needs_escape {
        // Writing into a Vec cannot fail and a &str always serializes.
        let _ = serde_json::to_writer(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// What kind of JSON value `raw` is, for error messages ("got a string").
pub fn kind_of(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Shortens `text` for an error message, keeping it on one line.
pub fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out: String = text.chars().take(MAX_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(raw: &str) -> String {
        let mut out = Vec::new();
        write_compact(raw, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn compact_drops_whitespace_outside_strings_only() {
        assert_eq!(
            compact("{ \"a b\" : [ 1 ,\n\t2 ] ,\r\n \"c\":\"x \\\" y\" }"),
            r#"{"a b":[1,2],"c":"x \" y"}"#
        );
    }

    #[test]
    fn compact_keeps_scalars_and_escapes_verbatim() {
        assert_eq!(compact(r#""a  \\""#), r#""a  \\""#);
        assert_eq!(compact("0.12345678901234567890123"), "0.12345678901234567890123");
        assert_eq!(compact(r#"["\\", " "]"#), r#"["\\"," "]"#);
    }

    #[test]
    fn lone_surrogates_are_found_and_pairs_pass() {
        assert_eq!(find_lone_surrogate(r#"{"a":"\ud800"}"#), Some(6));
        assert_eq!(find_lone_surrogate(r#"{"a":"\uDC00x"}"#), Some(6));
        assert_eq!(find_lone_surrogate(r#"{"a":"\ud800\u0041"}"#), Some(6));
        assert_eq!(find_lone_surrogate(r#"{"a":"\ud83d\ude00"}"#), None);
        assert_eq!(find_lone_surrogate(r#"{"a":"\\ud800"}"#), None);
        assert_eq!(find_lone_surrogate(r#"{"a":"\u00e9\n"}"#), None);
    }

    #[test]
    fn lone_surrogate_scan_survives_broken_text() {
        for text in ["\\", "x\\", "\\u", "\\ud800\\", "\\ud800\\u", "\\ud8"] {
            let _ = find_lone_surrogate(text);
        }
        assert_eq!(find_lone_surrogate("\\ud800\\"), Some(0));
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        let nested =
            |levels: usize| format!("{{\"a\":{}1{}}}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        assert_eq!(find_too_deep(nested(128).as_bytes(), 128), None);
        assert_eq!(find_too_deep(nested(129).as_bytes(), 128), Some(5 + 127));
        let in_string = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(200), "{".repeat(200));
        assert_eq!(find_too_deep(in_string.as_bytes(), 128), None);
        assert_eq!(find_too_deep("[".repeat(100_000).as_bytes(), 128), Some(128));
        for broken in ["\"[[[", "[\"\\", "]]]]"] {
            assert_eq!(find_too_deep(broken.as_bytes(), 1), None, "{broken}");
        }
    }

    #[test]
    fn strings_are_escaped_only_when_needed() {
        let written = |text: &str| {
            let mut out = Vec::new();
            write_string(text, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(written("plain é 😀"), "\"plain é 😀\"");
        assert_eq!(written("q\"b\\c\nd\u{1}"), r#""q\"b\\c\nd\u0001""#);
    }

    #[test]
    fn excerpt_cuts_long_text() {
        assert_eq!(excerpt("short"), "short");
        assert_eq!(excerpt(&"x".repeat(100)).chars().count(), 81);
    }
}
