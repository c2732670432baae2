//! Byte-level helpers over JSON text that serde_json has already validated.
//!
//! Events keep their values exactly as written, so values are carried as raw JSON
//! text (`serde_json::value::RawValue`) and never rebuilt. These helpers do the few
//! things the raw text still needs: drop insignificant whitespace, find lone UTF-16
//! surrogate escapes (which serde_json tolerates inside skipped values) and name
//! the kind of a value for error messages. One more reads text nothing has
//! validated: [`value_at`] finds the value a path leads to by scanning, for
//! queries over the lake's `payload` column.

use std::borrow::Cow;

use memchr::{memchr, memchr2, memchr3};
use serde_json::value::RawValue;

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
        } else if is_whitespace(b) {
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

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object's member by name; the first member of that name when there are several.
    Key(String),
    /// An array's element by position, from 0.
    Index(usize),
}

/// The text of the value `steps` lead to in `text` (one JSON value), or `None`
/// when a step finds no such member or element.
///
/// It scans, building nothing: members and elements before the one wanted are
/// skipped by matching brackets (of either kind) outside strings, not checked,
/// and the scan stops at the value found, as a streaming parser would. On valid
/// JSON the answer is the parsed tree's; on text that is not JSON it is `None` or
/// a best guess, the value returned unchecked for the caller to parse. Never
/// recursive and never a panic, whatever the text.
pub fn value_at<'a>(text: &'a str, steps: &[PathStep]) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let mut at = skip_whitespace(bytes, 0);
    for step in steps {
        at = match step {
            PathStep::Key(key) => member(text, at, key)?,
            PathStep::Index(index) => element(bytes, at, *index)?,
        };
    }
    text.get(at..end_of_value(bytes, at)?)
}

/// Where the value of the object member named `key` starts, for the object at `at`.
fn member(text: &str, at: usize, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return None;
    }
    loop {
        if *bytes.get(at)? != b'"' {
            return None;
        }
        let close = end_of_string(bytes, at + 1)?;
        let name = text.get(at..=close)?;
        at = skip_whitespace(bytes, close + 1);
        if *bytes.get(at)? != b':' {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
        if names(name, key) {
            return Some(at);
        }
        at = skip_whitespace(bytes, end_of_value(bytes, at)?);
        if *bytes.get(at)? != b',' {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
    }
}

/// Whether the string literal `quoted` (quotes included) spells `key`.
fn names(quoted: &str, key: &str) -> bool {
    string_literal(quoted).is_some_and(|name| name == key)
}

/// The text a JSON string literal (quotes included) spells: its body as is when it
/// has nothing to decode (no escapes, no control characters, as most have),
/// decoded otherwise; `None` when it is not a valid literal.
pub fn string_literal(quoted: &str) -> Option<Cow<'_, str>> {
    let body = quoted.get(1..quoted.len().checked_sub(1)?)?;
    let plain = body.bytes().fold(true, |plain, b| plain & (b != b'\\') & (b >= 0x20));
    if plain {
        return Some(Cow::Borrowed(body));
    }
    serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
}

/// The members of the JSON object `text` in the order written: (the name as
/// its string literal, quotes included; the value's text). Scanned, not parsed:
/// on text that is not an object, or once the scan meets something it cannot
/// read, it stops. Never recursive.
pub fn members(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, 0);
    let mut at = (bytes.get(start) == Some(&b'{')).then(|| skip_whitespace(bytes, start + 1));
    std::iter::from_fn(move || {
        let from = at.take()?;
        if *bytes.get(from)? != b'"' {
            return None;
        }
        let close = end_of_string(bytes, from + 1)?;
        let colon = skip_whitespace(bytes, close + 1);
        if *bytes.get(colon)? != b':' {
            return None;
        }
        let value = skip_whitespace(bytes, colon + 1);
        let end = end_of_value(bytes, value)?;
        let next = skip_whitespace(bytes, end);
        if bytes.get(next) == Some(&b',') {
            at = Some(skip_whitespace(bytes, next + 1));
        }
        Some((text.get(from..=close)?, text.get(value..end)?))
    })
}

/// The elements of the JSON array `text`, each as its text, scanned as
/// [`members`] scans an object.
pub fn elements(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let start = skip_whitespace(bytes, 0);
    let mut at = (bytes.get(start) == Some(&b'[')).then(|| skip_whitespace(bytes, start + 1));
    std::iter::from_fn(move || {
        let from = at.take()?;
        if matches!(bytes.get(from), None | Some(b']')) {
            return None;
        }
        let end = end_of_value(bytes, from)?;
        let next = skip_whitespace(bytes, end);
        if bytes.get(next) == Some(&b',') {
            at = Some(skip_whitespace(bytes, next + 1));
        }
        text.get(from..end)
    })
}

/// Where element `index` starts, for the array at `at`.
fn element(bytes: &[u8], at: usize, index: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    let mut at = skip_whitespace(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return None;
    }
    for _ in 0..index {
        at = skip_whitespace(bytes, end_of_value(bytes, at)?);
        if *bytes.get(at)? != b',' {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
    }
    Some(at)
}

/// The offset just past the value that starts at `at`: a string's closing quote,
/// the bracket that closes an object or array (brackets are counted outside
/// strings, of either kind), or the end of a number or literal.
fn end_of_value(bytes: &[u8], mut at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => return Some(end_of_string(bytes, at + 1)? + 1),
        b'{' | b'[' => {}
        _ => {
            let rest = bytes.get(at..)?;
            let length = rest
                .iter()
                .position(|&b| matches!(b, b',' | b'}' | b']') || is_whitespace(b))
                .unwrap_or(rest.len());
            return (length > 0).then_some(at + length);
        }
    }
    let mut depth = 0_usize;
    loop {
        match *bytes.get(at)? {
            b'"' => at = end_of_string(bytes, at + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_whitespace(b)) {
        at += 1;
    }
    at
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

/// Appends the JSON value `raw` as Athena's `json_extract` and `json_format`
/// give it back (Trino re-serializes the value with Jackson): no whitespace,
/// strings re-escaped (only `"`, `\\` and control characters; `\\b \\t \\n
/// \\f \\r` short, others as uppercase `\\u00XX`; everything else as UTF-8),
/// integers in their plain decimal digits (`-0` is `0`), other numbers as
/// Java's `Double.toString` prints them (`1.50` is `1.5`, `1e5` is `100000.0`,
/// `1e21` is `1.0E21`). `None` when `raw` is not valid JSON (or nests deeper
/// than serde_json's 128 levels). Then a pass over the tokens.
pub fn write_like_athena(raw: &str, out: &mut String) -> Option<()> {
    serde_json::from_str::<&RawValue>(raw).ok()?;
    let bytes = raw.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b if is_whitespace(b) => at += 1,
            b'{' | b'}' | b'[' | b']' | b',' | b':' => {
                out.push(char::from(bytes[at]));
                at += 1;
            }
            b'"' => {
                let close = end_of_string(bytes, at + 1)?;
                write_jackson_string(&string_literal(raw.get(at..=close)?)?, out);
                at = close + 1;
            }
            _ => {
                let end = end_of_value(bytes, at)?;
                let token = raw.get(at..end)?;
                match token {
                    "true" | "false" | "null" => out.push_str(token),
                    number => write_jackson_number(number, out)?,
                }
                at = end;
            }
        }
    }
    Some(())
}

fn write_jackson_string(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize) >> 4]));
                out.push(char::from(HEX[(c as usize) & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as Jackson copies it: an integer as its digits, anything with
/// a fraction or an exponent through a double.
fn write_jackson_number(number: &str, out: &mut String) -> Option<()> {
    let digits = number.strip_prefix('-').unwrap_or(number);
    let valid_integer = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if valid_integer {
        out.push_str(if digits == "0" { "0" } else { number });
        return Some(());
    }
    serde_json::from_str::<&RawValue>(number).ok()?;
    let value: f64 = number.parse().ok()?;
    out.push_str(&java_double(value));
    Some(())
}

/// `Double.toString` (Java 19 and later, the shortest digits that read back as
/// the same double): plain decimals from 10^-3 up to 10^7, at least one digit
/// after the point; otherwise `d.dddE±n`. Jackson writes a value too large for
/// a double as the string `"Infinity"`.
pub fn java_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "\"Infinity\"".into() } else { "\"-Infinity\"".into() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sign = if value < 0.0 { "-" } else { "" };
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let point = exponent + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{text}")
    } else {
        let fraction = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{fraction}E{exponent}", &digits[..1])
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

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return.
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
    fn members_and_elements_are_scanned_in_order_and_stop_at_broken_text() {
        let object = r#"{ "a" : 1 , "b\"c":{"x":[1,2]}, "a":"again","e":[] }"#;
        let found: Vec<_> = members(object).collect();
        assert_eq!(
            found,
            [("\"a\"", "1"), ("\"b\\\"c\"", r#"{"x":[1,2]}"#), ("\"a\"", "\"again\""), ("\"e\"", "[]")]
        );
        assert_eq!(members("{}").count(), 0);
        assert_eq!(members("[1]").count(), 0);
        assert_eq!(members(r#"{"a":1,"b""#).collect::<Vec<_>>(), [("\"a\"", "1")]);
        assert_eq!(
            elements(r#"[ 1, "x,]", [2,3] ,null]"#).collect::<Vec<_>>(),
            ["1", "\"x,]\"", "[2,3]", "null"]
        );
        assert_eq!(elements("[]").count(), 0);
        assert_eq!(elements("{}").count(), 0);
    }

    fn athena(raw: &str) -> Option<String> {
        let mut out = String::new();
        write_like_athena(raw, &mut out).map(|()| out)
    }

    #[test]
    fn values_are_written_back_as_athena_reserializes_them() {
        assert_eq!(
            athena(r#"{ "a" : [1, -0, 1.50, 1e5, 2E-4, 1e21, 123456789012345678901234] }"#).unwrap(),
            r#"{"a":[1,0,1.5,100000.0,2.0E-4,1.0E21,123456789012345678901234]}"#
        );
        assert_eq!(athena(r#""\u00e9\/\u0001\n\"""#).unwrap(), "\"é/\\u0001\\n\\\"\"");
        assert_eq!(
            athena("[true,false,null,0.001,9999999.0,10000000.0,-3.25]").unwrap(),
            "[true,false,null,0.001,9999999.0,1.0E7,-3.25]"
        );
        assert_eq!(athena("1e400").unwrap(), "\"Infinity\"");
        assert_eq!(athena("-0.0").unwrap(), "-0.0");
        assert_eq!(athena("0.1").unwrap(), "0.1");
        assert_eq!(athena("123.456e2").unwrap(), "12345.6");
        assert_eq!(athena("[01]"), None);
        assert_eq!(athena(r#""open"#), None);
    }

    #[test]
    fn excerpt_cuts_long_text() {
        assert_eq!(excerpt("short"), "short");
        assert_eq!(excerpt(&"x".repeat(100)).chars().count(), 81);
    }

    fn path(steps: &[&str]) -> Vec<PathStep> {
        steps
            .iter()
            .map(|step| match step.parse() {
                Ok(index) => PathStep::Index(index),
                Err(_) => PathStep::Key((*step).to_owned()),
            })
            .collect()
    }

    #[test]
    fn value_at_follows_members_and_elements_by_scanning() {
        let text =
            r#" { "a" : [ 1 , {"b":"x\"]}"} , [] ] , "a\u0062": {"c" : null}, "d":1,"d":2, "e":-1.5e3 } "#;
        let at = |steps: &[&str]| value_at(text, &path(steps));
        assert_eq!(at(&[]), Some(text.trim()));
        assert_eq!(at(&["a", "0"]), Some("1"));
        assert_eq!(at(&["a", "1", "b"]), Some(r#""x\"]}""#));
        assert_eq!(at(&["a", "2"]), Some("[]"));
        assert_eq!(at(&["ab", "c"]), Some("null"), "an escaped name is decoded");
        assert_eq!(at(&["d"]), Some("1"), "the first of duplicate names");
        assert_eq!(at(&["e"]), Some("-1.5e3"));
        for missing in [&["z"][..], &["a", "3"], &["a", "2", "0"], &["d", "x"], &["a", "x"]] {
            assert_eq!(at(missing), None, "{missing:?}");
        }
    }

    #[test]
    fn value_at_stops_at_the_value_and_survives_broken_text() {
        assert_eq!(value_at(r#"{"a":1, "b": oops"#, &path(&["a"])), Some("1"), "what follows is not read");
        for broken in
            [r#"{"a" 1}"#, r#"{"a":}"#, r#"{a:1}"#, r#"{"a":1 "b":2}"#, r#"{"x":"#, "[1,", "", "\"", "{"]
        {
            for steps in [path(&["b"]), path(&["0"]), path(&[])] {
                assert_ne!(value_at(broken, &steps), Some("2"), "{broken}");
            }
        }
        let deep = "[".repeat(100_000);
        assert_eq!(value_at(&deep, &path(&["0", "0"])), None, "no recursion, no end");
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Eighths: exact in binary, so the tree compared against reads them back equal.
            any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "a\"b", "a\\b", "é", "ключ", "]}", "", "\u{1}"])
            .prop_map(str::to_owned)
    }

    fn steps() -> impl Strategy<Value = Vec<PathStep>> {
        let step = prop_oneof![key().prop_map(PathStep::Key), (0..5_usize).prop_map(PathStep::Index)];
        prop::collection::vec(step, 0..4)
    }

    proptest! {
        #[test]
        fn value_at_agrees_with_a_parsed_tree(
            value in json_value(),
            steps in steps(),
            pretty in any::<bool>(),
        ) {
            let text =
                if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            let text = text.unwrap();
            let expected = steps.iter().try_fold(&value, |current, step| match step {
                PathStep::Key(key) => current.get(key),
                PathStep::Index(index) => current.get(index),
            });
            let found = value_at(&text, &steps)
                .map(|found| serde_json::from_str::<serde_json::Value>(found).unwrap());
            prop_assert_eq!(found.as_ref(), expected);
        }

        #[test]
        fn value_at_never_panics(
            text in any::<String>(),
            value in json_value(),
            cut in any::<prop::sample::Index>(),
            steps in steps(),
        ) {
            value_at(&text, &steps);
            let valid = serde_json::to_string(&value).unwrap();
            let cut = cut.index(valid.len() + 1);
            if let Some(prefix) = valid.get(..cut) {
                value_at(prefix, &steps);
            }
        }

        #[test]
        fn values_written_like_athena_are_the_same_json_and_odd_text_is_refused(
            value in json_value(),
            pretty in any::<bool>(),
            text in any::<String>(),
        ) {
            let written =
                if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            let mut out = String::new();
            prop_assert!(write_like_athena(&written.unwrap(), &mut out).is_some());
            let read: serde_json::Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(read, value, "{}", out);
            // Any text: an answer that is JSON, or none; never a panic.
            let mut out = String::new();
            if write_like_athena(&text, &mut out).is_some() {
                prop_assert!(serde_json::from_str::<&RawValue>(&out).is_ok(), "{:?} from {:?}", out, text);
            }
        }
    }
}
