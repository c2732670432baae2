//! The event contract (CONTRACT sections 1 and 2): one record's bytes become an
//! [`Event`] or a [`Rejection`] that says what to fix.
//!
//! Parsing keeps every top-level value as raw JSON text, so payload numbers keep all
//! their digits, strings keep every character and keys keep their order. Only the
//! three contract fields are interpreted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::core::json;
use crate::core::partition::Partition;
pub use crate::core::rejection::Rejection;
use crate::core::timestamp::{EventTime, TimeError};

/// Longest record the contract accepts: Firehose's own record limit, 1,000 KiB.
pub const MAX_RECORD_BYTES: usize = 1_024_000;
/// Longest line an accepted record can become once enriched: `event_name` is
/// copied into `event_type` and `event_subtype` (each at most as long as the
/// record), plus `created_datetime` and a canonical UUID. The parquet-writer reads
/// enriched lines, so this is its limit.
pub const MAX_ENRICHED_BYTES: usize = 3 * MAX_RECORD_BYTES + 4096;
/// Deepest nesting of objects and arrays the contract accepts (the event object
/// is level 1): serde_json's default, and within what downstream JSON readers take.
pub const MAX_DEPTH: usize = 128;
/// The partition value Hive-style readers (Athena, Spark, DuckDB) take for NULL,
/// so an event type of that name, in any case, would read back as no type.
pub const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Longest allowed `event_type`, in characters (it becomes an S3 path segment).
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// The fields an enriched event sets, in the order they are appended when absent.
const ENRICHED: [&str; 3] = ["created_datetime", "event_type", "event_subtype"];
/// Fields that are columns of their own in the lake; all others form the payload.
const COLUMNS: [&str; 6] =
    ["event_uuid", "event_name", "created_at", "created_datetime", "event_type", "event_subtype"];

/// The identity of an event: two records with the same key are the same event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey {
    pub uuid: Uuid,
    pub created_at_millis: i64,
}

impl DedupeKey {
    /// The key of an event: canonical UUID and `created_at` in whole milliseconds.
    pub fn new(uuid: Uuid, time: EventTime) -> Self {
        DedupeKey { uuid, created_at_millis: time.millis() }
    }
}

/// How far `created_at` may lie from the time a record is processed: a producer
/// whose clock is years off would otherwise open partitions without end (Firehose
/// fails records past 500 active partitions). Either side may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// The processing time, Unix milliseconds.
    pub now_millis: i64,
    /// Days before `now` a record may have been created; `None`: no limit.
    pub max_age_days: Option<u32>,
    /// Days after `now` a record may claim to have been created; `None`: no limit.
    pub max_future_days: Option<u32>,
}

impl TimeWindow {
    /// Checks `time` against the window.
    pub fn check(&self, time: EventTime) -> Result<(), Rejection> {
        const DAY_MILLIS: i64 = 86_400_000;
        let millis = time.millis();
        let before =
            self.max_age_days.filter(|&days| millis < self.now_millis - i64::from(days) * DAY_MILLIS);
        let after =
            self.max_future_days.filter(|&days| millis > self.now_millis + i64::from(days) * DAY_MILLIS);
        let direction = match (before, after) {
            (Some(_), _) => "before",
            (_, Some(_)) => "after",
            (None, None) => return Ok(()),
        };
        let mut datetime = Vec::new();
        time.write_created_datetime(&mut datetime);
        let mut now = Vec::new();
        if let Some(now_time) = EventTime::from_millis(self.now_millis) {
            now_time.write_created_datetime(&mut now);
        }
        Err(Rejection::Implausible {
            datetime: String::from_utf8_lossy(&datetime).into_owned(),
            distance: days_text((millis - self.now_millis).abs() / DAY_MILLIS),
            direction,
            now: format!("the processing time {}", String::from_utf8_lossy(&now)),
            window: self.describe(),
        })
    }

    /// "30 days back, 1 day ahead".
    pub fn describe(&self) -> String {
        let side = |days: Option<u32>, word: &str| match days {
            Some(days) => format!("{} {word}", days_text(i64::from(days))),
            None => format!("any time {word}"),
        };
        format!("{}, {}", side(self.max_age_days, "back"), side(self.max_future_days, "ahead"))
    }
}

fn days_text(days: i64) -> String {
    if days == 1 {
        "1 day".to_owned()
    } else {
        format!("{days} days")
    }
}

/// Top-level fields in input order, values as raw JSON text.
type Fields<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A valid event: the parsed record and its interpreted contract fields.
#[derive(Debug)]
pub struct Event<'a> {
    fields: Fields<'a>,
    uuid: Uuid,
    name: Cow<'a, str>,
    /// Byte length of the event type at the start of `name`.
    type_len: usize,
    time: EventTime,
}

impl<'a> Event<'a> {
    /// Parses and validates one record (CONTRACT section 1).
    pub fn parse(record: &'a [u8]) -> Result<Self, Rejection> {
        Self::parse_limited(record, MAX_RECORD_BYTES)
    }

    /// [`Event::parse`] with another length limit: the parquet-writer reads
    /// enriched lines, which may be longer than the record they came from
    /// ([`MAX_ENRICHED_BYTES`]).
    pub fn parse_limited(record: &'a [u8], max_bytes: usize) -> Result<Self, Rejection> {
        if record.len() > max_bytes {
            return Err(Rejection::TooLarge { len: record.len() as u64, limit: max_bytes });
        }
        if let Some(offset) = json::find_too_deep(record, MAX_DEPTH) {
            return Err(Rejection::TooDeep { max: MAX_DEPTH, offset });
        }
        let text =
            std::str::from_utf8(record).map_err(|e| Rejection::InvalidUtf8 { offset: e.valid_up_to() })?;
        if text.starts_with('\u{feff}') {
            return Err(Rejection::ByteOrderMark);
        }
        // serde_json rejects a lone surrogate in a key or a string it decodes (with an
        // unclear message) but not in a value it only skips: check on both paths.
        let lone_surrogate =
            || json::find_lone_surrogate(text).map(|offset| Rejection::LoneSurrogate { offset });
        let fields = parse_object(text).map_err(|rejection| lone_surrogate().unwrap_or(rejection))?;
        if let Some(rejection) = lone_surrogate() {
            return Err(rejection);
        }
        let uuid = parse_uuid(required(&fields, "event_uuid")?)?;
        let name = json_string(required(&fields, "event_name")?, "event_name")?;
        let type_len = check_event_type(&name)?;
        let time = parse_time(required(&fields, "created_at")?)?;
        Ok(Event { fields, uuid, name, type_len, time })
    }

    /// The canonical UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// `event_name` as received.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first part of `event_name`.
    pub fn event_type(&self) -> &str {
        &self.name[..self.type_len]
    }

    /// The second part of `event_name`, or `None` when absent or empty.
    pub fn event_subtype(&self) -> Option<&str> {
        self.event_subtype_range().map(|range| &self.name[range])
    }

    /// Where [`Self::event_subtype`] lies in [`Self::name`].
    pub fn event_subtype_range(&self) -> Option<std::ops::Range<usize>> {
        let rest = self.name[self.type_len..].strip_prefix(':')?;
        let length = rest.split(':').next().unwrap_or_default().len();
        let start = self.type_len + 1;
        (length > 0).then_some(start..start + length)
    }

    /// The creation time.
    pub fn time(&self) -> EventTime {
        self.time
    }

    /// The dedupe key: canonical UUID and `created_at` in whole milliseconds.
    pub fn dedupe_key(&self) -> DedupeKey {
        DedupeKey::new(self.uuid, self.time)
    }

    /// The partition this event belongs to.
    pub fn partition(&self) -> Partition<&str> {
        Partition::of(self.event_type(), self.time)
    }

    /// Appends the enriched event (CONTRACT section 2) as one compact JSON line
    /// ending in `\n`. Input keys keep their order; enriched fields overwrite
    /// same-named fields in place and are appended when absent.
    pub fn write_enriched_line(&self, out: &mut Vec<u8>) {
        let mut present = [false; ENRICHED.len()];
        out.push(b'{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_key(key, out);
            match key.as_ref() {
                "event_uuid" => self.write_uuid(out),
                name => match ENRICHED.iter().position(|&field| field == name) {
                    Some(slot) => {
                        present[slot] = true;
                        self.write_enriched_value(slot, out);
                    }
                    None => json::write_compact(value.get(), out),
                },
            }
        }
        for (slot, field) in ENRICHED.iter().enumerate().filter(|(slot, _)| !present[*slot]) {
            out.push(b',');
            write_key(&Cow::Borrowed(field), out);
            self.write_enriched_value(slot, out);
        }
        out.extend_from_slice(b"}\n");
    }

    fn write_enriched_value(&self, slot: usize, out: &mut Vec<u8>) {
        match slot {
            0 => {
                out.push(b'"');
                self.time.write_created_datetime(out);
                out.push(b'"');
            }
            1 => json::write_string(self.event_type(), out),
            _ => match self.event_subtype() {
                Some(subtype) => json::write_string(subtype, out),
                None => out.extend_from_slice(b"null"),
            },
        }
    }

    fn write_uuid(&self, out: &mut Vec<u8>) {
        let mut buffer = Uuid::encode_buffer();
        out.push(b'"');
        out.extend_from_slice(self.uuid.hyphenated().encode_lower(&mut buffer).as_bytes());
        out.push(b'"');
    }

    /// The canonical UUID as text.
    pub fn uuid_string(&self) -> String {
        self.uuid.hyphenated().to_string()
    }

    /// Appends the payload: a compact JSON object of every field that is not a
    /// column of the lake, in input order, values exact.
    pub fn write_payload(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let payload = self.fields.iter().filter(|(key, _)| !COLUMNS.contains(&key.as_ref()));
        for (index, (key, value)) in payload.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_key(key, out);
            json::write_compact(value.get(), out);
        }
        out.push(b'}');
    }
}

#[expect(
    clippy::ptr_arg,
    reason = "whether the key is borrowed is the point: it says the input held no escapes"
)]
fn write_key(key: &Cow<'_, str>, out: &mut Vec<u8>) {
    match key {
        // Borrowed means the input held no escapes: the text is a valid string body.
        Cow::Borrowed(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(text) => json::write_string(text, out),
    }
    out.push(b':');
}

/// Parses the record as one JSON object into its top-level fields, in order.
fn parse_object(text: &str) -> Result<Fields<'_>, Rejection> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    match trimmed.as_bytes().first() {
        None => return Err(Rejection::Empty),
        Some(b'{') => {}
        Some(_) => {
            // Name what was sent when it is valid JSON; otherwise report the syntax error.
            let value: &RawValue = serde_json::from_str(text).map_err(invalid_json)?;
            return Err(Rejection::NotAnObject { found: json::kind_of(value.get()) });
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let fields = deserializer.deserialize_map(FieldsVisitor).map_err(invalid_json)?;
    deserializer.end().map_err(invalid_json)?;
    if let Some(name) = first_duplicate(&fields) {
        return Err(Rejection::DuplicateField { name: name.to_owned() });
    }
    Ok(fields)
}

fn invalid_json(error: serde_json::Error) -> Rejection {
    let detail = if error.to_string().starts_with("trailing characters") {
        format!(
            "a second value follows the object at line {} column {}: send one object per record",
            error.line(),
            error.column()
        )
    } else {
        error.to_string()
    };
    Rejection::InvalidJson { detail }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut fields = Fields::with_capacity(map.size_hint().unwrap_or(16));
        while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
            fields.push((key, value));
        }
        Ok(fields)
    }
}

/// A key that borrows from the input unless it holds escapes (serde's own `Cow`
/// implementation always allocates).
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }
}

fn first_duplicate<'f>(fields: &'f [(Cow<'_, str>, &RawValue)]) -> Option<&'f str> {
    // Objects are small: a quadratic scan beats hashing for the usual dozen fields.
    fields.iter().enumerate().find_map(|(index, (key, _))| {
        fields[..index].iter().any(|(earlier, _)| earlier == key).then_some(key.as_ref())
    })
}

fn required<'a>(
    fields: &[(Cow<'_, str>, &'a RawValue)],
    field: &'static str,
) -> Result<&'a RawValue, Rejection> {
    fields
        .iter()
        .find(|(key, _)| key == field)
        .map(|(_, value)| *value)
        .ok_or(Rejection::MissingField { field })
}

fn json_string<'a>(value: &'a RawValue, field: &'static str) -> Result<Cow<'a, str>, Rejection> {
    let raw = value.get();
    if !raw.starts_with('"') {
        let found = json::kind_of(raw);
        return Err(Rejection::WrongType { field, expected: "string", found });
    }
    // Valid and surrogate-checked already, so this only unescapes.
    serde_json::from_str(raw).map_err(invalid_json)
}

fn parse_uuid(value: &RawValue) -> Result<Uuid, Rejection> {
    let text = json_string(value, "event_uuid")?;
    Uuid::try_parse(&text).map_err(|_| Rejection::InvalidUuid { value: json::excerpt(&text) })
}

/// Checks the event type (the first part of `event_name`); returns its byte length.
/// Whether `text` is a whole valid event type (a partition value read back from a
/// path): non-empty, at most [`MAX_EVENT_TYPE_LEN`] bytes of `A-Z a-z 0-9 _ - .`,
/// and not [`HIVE_NULL_PARTITION`] in any case.
pub fn is_valid_event_type(text: &str) -> bool {
    check_event_type(text).is_ok_and(|len| len == text.len())
}

fn check_event_type(name: &str) -> Result<usize, Rejection> {
    let event_type = name.split(':').next().unwrap_or_default();
    if event_type.is_empty() {
        return Err(Rejection::EmptyEventType { name: json::excerpt(name) });
    }
    if let Some(found) =
        event_type.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(Rejection::EventTypeCharacter { name: json::excerpt(name), found });
    }
    if event_type.len() > MAX_EVENT_TYPE_LEN {
        let len = event_type.len();
        return Err(Rejection::EventTypeTooLong { name: json::excerpt(name), len });
    }
    if event_type.eq_ignore_ascii_case(HIVE_NULL_PARTITION) {
        return Err(Rejection::EventTypeReserved { name: json::excerpt(name) });
    }
    Ok(event_type.len())
}

fn parse_time(value: &RawValue) -> Result<EventTime, Rejection> {
    let raw = value.get();
    let found = json::kind_of(raw);
    if found != "a number" {
        return Err(Rejection::WrongType { field: "created_at", expected: "number", found });
    }
    EventTime::from_json_number(raw).map_err(|error| {
        let value = json::excerpt(raw);
        match error {
            TimeError::Negative => Rejection::NegativeTime { value },
            TimeError::OutOfRange { unit } => Rejection::TimeOutOfRange { value, unit },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

    fn record(fields: &str) -> String {
        format!(
            r#"{{"event_uuid":"{UUID}","event_name":"payment:order:completed","created_at":1710689696{fields}}}"#
        )
    }

    fn enriched(input: &str) -> String {
        let event = Event::parse(input.as_bytes()).unwrap();
        let mut out = Vec::new();
        event.write_enriched_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn reason(input: &[u8]) -> String {
        Event::parse(input).unwrap_err().to_string()
    }

    #[test]
    fn enriches_with_datetime_type_and_subtype_at_the_end() {
        assert_eq!(
            enriched(&record(r#","amount":12.50"#)),
            format!(
                r#"{{"event_uuid":"{UUID}","event_name":"payment:order:completed","created_at":1710689696,"amount":12.50,"created_datetime":"2024-03-17T15:34:56Z","event_type":"payment","event_subtype":"order"}}"#
            ) + "\n"
        );
    }

    #[test]
    fn enriched_fields_overwrite_in_place() {
        let input = format!(
            r#"{{"event_type":"x","event_uuid":"{UUID}","created_datetime":1,"event_name":"a","created_at":0,"event_subtype":"y"}}"#
        );
        assert_eq!(
            enriched(&input),
            format!(
                r#"{{"event_type":"a","event_uuid":"{UUID}","created_datetime":"1970-01-01T00:00:00Z","event_name":"a","created_at":0,"event_subtype":null}}"#
            ) + "\n"
        );
    }

    #[test]
    fn payload_values_keep_every_digit_character_and_key_order() {
        let payload = r#""z":123456789012345678901234567890,"a":0.12345678901234567890123,"s":"\u00e9 \"q\" 😀","n":[1.0,-0,1e400]"#;
        let line = enriched(&record(&format!(",{payload}")));
        assert!(line.contains(payload), "{line}");
        let event_text = record(&format!(",{payload}"));
        let event = Event::parse(event_text.as_bytes()).unwrap();
        let mut out = Vec::new();
        event.write_payload(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), format!("{{{payload}}}"));
    }

    #[test]
    fn output_is_compact_and_surrounding_whitespace_is_allowed() {
        let input = format!(
            " \t\r\n{{ \"event_uuid\" : \"{UUID}\" ,\n \"event_name\":\"a:b\", \"created_at\": 1 , \"p\": {{ \"k\" : [ 1 , \"x y\" ] }} }} \n"
        );
        let line = enriched(&input);
        assert!(line.contains(r#""p":{"k":[1,"x y"]}"#), "{line}");
        assert_eq!(line.matches(' ').count(), 1, "only the space inside the string: {line}");
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
    }

    #[test]
    fn uuid_forms_are_canonicalized() {
        let canonical = "8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
        for form in [
            canonical,
            "8F0E1A2B-3C4D-4E5F-8A9B-0C1D2E3F4A5B",
            "8f0e1a2b3c4d4e5f8a9b0c1d2e3f4a5b",
            "{8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b}",
            "urn:uuid:8F0E1A2B-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        ] {
            let input = format!(r#"{{"event_uuid":"{form}","event_name":"a","created_at":1}}"#);
            let event = Event::parse(input.as_bytes()).unwrap();
            assert_eq!(event.uuid_string(), canonical, "{form}");
            assert!(enriched(&input).contains(&format!(r#""event_uuid":"{canonical}""#)));
        }
    }

    #[test]
    fn bad_uuids_are_rejected_with_the_value() {
        for form in [
            " 8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
            "8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5",
            "8f0e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5g",
            "8f0e1a2b3c4d-4e5f-8a9b-0c1d2e3f4a5b",
            "",
        ] {
            let input = format!(r#"{{"event_uuid":"{form}","event_name":"a","created_at":1}}"#);
            assert_eq!(
                reason(input.as_bytes()),
                format!("event_uuid {form:?} is not a UUID (accepted: hyphenated, 32 hex digits, {{braced}} or urn:uuid:)")
            );
        }
        assert_eq!(
            reason(br#"{"event_uuid":12,"event_name":"a","created_at":1}"#),
            "event_uuid must be a JSON string, got a number"
        );
    }

    #[test]
    fn event_name_parts_give_type_and_subtype() {
        let parts = |name: &str| {
            let input = format!(
                r#"{{"event_uuid":"{UUID}","event_name":{},"created_at":1}}"#,
                serde_json::json!(name)
            );
            let event = Event::parse(input.as_bytes()).unwrap();
            (event.event_type().to_owned(), event.event_subtype().map(str::to_owned))
        };
        assert_eq!(parts("payment:order:completed"), ("payment".into(), Some("order".into())));
        assert_eq!(parts("payment"), ("payment".into(), None));
        assert_eq!(parts("payment:"), ("payment".into(), None));
        assert_eq!(parts("payment::completed"), ("payment".into(), None));
        assert_eq!(parts("a.B-9_z:sub type é:x:y"), ("a.B-9_z".into(), Some("sub type é".into())));
        assert_eq!(parts(&"t".repeat(128)).0.len(), 128);
    }

    #[test]
    fn escaped_names_and_keys_are_read_unescaped() {
        let input =
            format!(r#"{{"event\u005fuuid":"{UUID}","event_name":"pay\u006dent:\u00e9","created_at":1}}"#);
        let event = Event::parse(input.as_bytes()).unwrap();
        assert_eq!(event.event_type(), "payment");
        assert_eq!(event.event_subtype(), Some("é"));
        assert!(enriched(&input)
            .starts_with(&format!(r#"{{"event_uuid":"{UUID}","event_name":"pay\u006dent:\u00e9""#)));
    }

    #[test]
    fn bad_event_types_are_rejected() {
        let check = |name: &str, expected: &str| {
            let input = format!(
                r#"{{"event_uuid":"{UUID}","event_name":{},"created_at":1}}"#,
                serde_json::json!(name)
            );
            assert_eq!(reason(input.as_bytes()), expected, "{name}");
        };
        check("", r#"event_name "" has an empty event type before the first ':'"#);
        check(":a", r#"event_name ":a" has an empty event type before the first ':'"#);
        check("a/b:c", r#"event type of event_name "a/b:c" has '/': only A-Z a-z 0-9 _ - . are allowed"#);
        check("é:c", r#"event type of event_name "é:c" has 'é': only A-Z a-z 0-9 _ - . are allowed"#);
        check("a b", r#"event type of event_name "a b" has ' ': only A-Z a-z 0-9 _ - . are allowed"#);
        for reserved in ["__HIVE_DEFAULT_PARTITION__", "__hive_default_partition__:x"] {
            check(
                reserved,
                &format!("event type of event_name {reserved:?} is reserved: Athena and other Hive-style readers take __HIVE_DEFAULT_PARTITION__ (in any case) for NULL; rename the type"),
            );
            assert!(!is_valid_event_type(reserved.split(':').next().unwrap()));
        }
        assert!(is_valid_event_type("__HIVE_DEFAULT_PARTITION__x"));
        let long = "t".repeat(129);
        check(
            &long,
            &format!(
                "event type of event_name {:?} is 129 characters, at most 128 allowed",
                json::excerpt(&long)
            ),
        );
        assert_eq!(
            reason(format!(r#"{{"event_uuid":"{UUID}","event_name":null,"created_at":1}}"#).as_bytes()),
            "event_name must be a JSON string, got null"
        );
    }

    #[test]
    fn created_at_must_be_an_in_range_number() {
        let check = |raw: &str, expected: &str| {
            let input = format!(r#"{{"event_uuid":"{UUID}","event_name":"a","created_at":{raw}}}"#);
            assert_eq!(reason(input.as_bytes()), expected, "{raw}");
        };
        check(r#""1710689696""#, "created_at must be a JSON number, got a string");
        check("true", "created_at must be a JSON number, got a boolean");
        check("null", "created_at must be a JSON number, got null");
        check("[1]", "created_at must be a JSON number, got an array");
        check("-1", "created_at is negative: -1");
        check(
            "1710689696123",
            "created_at out of range: 1710689696123 looks like milliseconds: send Unix seconds",
        );
        check(
            "253402300800",
            "created_at out of range: 253402300800 is past 9999-12-31T23:59:59Z: send Unix seconds",
        );
    }

    #[test]
    fn missing_fields_are_named() {
        for field in ["event_uuid", "event_name", "created_at"] {
            let mut value: serde_json::Value = serde_json::from_str(&record("")).unwrap();
            value.as_object_mut().unwrap().remove(field);
            assert_eq!(reason(value.to_string().as_bytes()), format!("missing required field {field}"));
        }
    }

    #[test]
    fn malformed_records_are_rejected_with_reasons() {
        assert_eq!(reason(b""), "record is empty: expected one JSON object");
        assert_eq!(reason(b" \n\t"), "record is empty: expected one JSON object");
        assert_eq!(reason(b"[1]"), "record is an array, expected one JSON object");
        assert_eq!(reason(b"\"x\""), "record is a string, expected one JSON object");
        assert_eq!(reason(b"12"), "record is a number, expected one JSON object");
        assert_eq!(reason(b"nul"), "record is not valid JSON: EOF while parsing a value at line 1 column 3");
        assert_eq!(
            reason(b"\xEF\xBB\xBF{}"),
            "record starts with a byte-order mark: remove the leading EF BB BF bytes"
        );
        assert_eq!(reason(b"{\"a\":\"\xC3\x28\"}"), "record is not valid UTF-8 (first bad byte at offset 6)");
        assert_eq!(
            reason(format!("{} {{}}", record("")).as_bytes()),
            "record is not valid JSON: a second value follows the object at line 1 column 118: send one object per record"
        );
        assert_eq!(
            reason(format!("{}\n{}", record(""), record("")).as_bytes()),
            "record is not valid JSON: a second value follows the object at line 2 column 1: send one object per record"
        );
        assert_eq!(
            reason(record(r#","x":NaN"#).as_bytes()),
            "record is not valid JSON: expected value at line 1 column 121"
        );
        assert_eq!(
            reason(record(r#","x":Infinity"#).as_bytes()),
            "record is not valid JSON: expected value at line 1 column 121"
        );
        assert_eq!(
            reason(b"{\"a\":1"),
            "record is not valid JSON: EOF while parsing an object at line 1 column 6"
        );
    }

    #[test]
    fn lone_surrogates_anywhere_are_rejected() {
        let nested = record(r#","p":{"deep":["\udc00"]}"#);
        assert_eq!(
            reason(nested.as_bytes()),
            "record has a lone surrogate escape at byte 130: escape both halves of the pair or the character itself"
        );
        let in_key = record(r#","\ud800":1"#);
        assert_eq!(Event::parse(in_key.as_bytes()).unwrap_err(), Rejection::LoneSurrogate { offset: 117 });
        assert!(Event::parse(record(r#","p":"\ud83d\ude00""#).as_bytes()).is_ok());
    }

    #[test]
    fn nesting_is_limited_to_128_levels_with_the_event_as_level_one() {
        let nested =
            |levels: usize| record(&format!(r#","p":{}1{}"#, "[".repeat(levels - 1), "]".repeat(levels - 1)));
        assert!(Event::parse(nested(128).as_bytes()).is_ok());
        let too_deep = nested(129);
        let offset = too_deep.find('[').unwrap() + 127;
        assert_eq!(
            reason(too_deep.as_bytes()),
            format!("record nests objects and arrays more than 128 levels deep (level 129 opens at byte {offset}): flatten the payload")
        );
        let hostile = record(&format!(r#","p":{}"#, "{\"a\":".repeat(100_000)));
        assert_eq!(Event::parse(hostile.as_bytes()).unwrap_err().code(), "too_deeply_nested");
        // Brackets inside strings are text, not nesting.
        assert!(Event::parse(record(&format!(r#","p":"{}""#, "[".repeat(1000))).as_bytes()).is_ok());
    }

    #[test]
    fn the_time_window_rejects_implausible_clocks_and_is_open_by_default() {
        let now = 1_710_689_696_000; // 2024-03-17T15:34:56Z
        let window = TimeWindow { now_millis: now, max_age_days: Some(30), max_future_days: Some(1) };
        let at = |seconds: &str| EventTime::from_json_number(seconds).unwrap();
        assert_eq!(window.check(at("1710689696")), Ok(()));
        assert_eq!(window.check(at(&(1_710_689_696 - 30 * 86_400).to_string())), Ok(()));
        assert_eq!(window.check(at(&(1_710_689_696 + 86_400).to_string())), Ok(()));
        assert_eq!(
            window.check(at("1552836896")).unwrap_err().to_string(),
            "created_at 2019-03-17T15:34:56Z is 1827 days before the processing time 2024-03-17T15:34:56Z, \
             outside the accepted window (30 days back, 1 day ahead): fix the producer's clock, or replay with a wider window"
        );
        let ahead = window.check(at(&(1_710_689_696 + 86_401).to_string())).unwrap_err();
        assert_eq!(ahead.code(), "created_at_implausible");
        assert!(ahead.to_string().contains("is 1 day after"), "{ahead}");
        let open = TimeWindow { now_millis: now, ..TimeWindow::default() };
        assert_eq!(open.check(at("0")), Ok(()));
        assert_eq!(open.check(at("253402300799")), Ok(()));
    }

    #[test]
    fn records_over_1000_kib_are_rejected() {
        let filler = |len: usize| {
            let bare = record(r#","p":"""#);
            record(&format!(r#","p":"{}""#, "x".repeat(len - bare.len())))
        };
        assert_eq!(filler(MAX_RECORD_BYTES).len(), 1_024_000);
        assert!(Event::parse(filler(MAX_RECORD_BYTES).as_bytes()).is_ok());
        assert_eq!(
            reason(filler(MAX_RECORD_BYTES + 1).as_bytes()),
            "record is 1024001 bytes, over the limit of 1024000 bytes (Firehose's record limit): split the event or move large values elsewhere"
        );
    }

    #[test]
    fn enriched_lines_stay_within_the_writers_limit() {
        // The shape that grows most: a name as long as the record allows, whose
        // type and subtype are copied out of it.
        let name = format!("{}:{}", "t".repeat(128), "s".repeat(MAX_RECORD_BYTES - 300));
        let input =
            format!(r#"{{"event_uuid":"{}","event_name":"{name}","created_at":0.5}}"#, UUID.replace('-', ""));
        assert!(input.len() <= MAX_RECORD_BYTES);
        let line = enriched(&input);
        assert!(line.len() > MAX_RECORD_BYTES && line.len() <= MAX_ENRICHED_BYTES, "{}", line.len());
        assert!(Event::parse_limited(line.trim_end().as_bytes(), MAX_ENRICHED_BYTES).is_ok());
    }

    #[test]
    fn duplicate_top_level_fields_are_rejected() {
        assert_eq!(reason(record(r#","a":1,"a":2"#).as_bytes()), r#"field "a" appears more than once"#);
        assert_eq!(
            reason(record(r#","event_uuid":"x""#).as_bytes()),
            r#"field "event_uuid" appears more than once"#
        );
        // Nested objects are payload: kept exactly as sent.
        assert!(Event::parse(record(r#","p":{"a":1,"a":2}"#).as_bytes()).is_ok());
    }

    #[test]
    fn dedupe_key_is_canonical_uuid_and_rounded_millis() {
        let base = record("");
        let a = Event::parse(base.as_bytes()).unwrap();
        let upper = format!(
            r#"{{"event_uuid":"{}","event_name":"b","created_at":1710689696.0004}}"#,
            UUID.to_uppercase()
        );
        let b = Event::parse(upper.as_bytes()).unwrap();
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        let shifted = base.replace("1710689696", "1710689696.001");
        let later = Event::parse(shifted.as_bytes()).unwrap();
        assert_ne!(a.dedupe_key(), later.dedupe_key());
    }

    #[test]
    fn partition_keys_are_type_and_utc_date() {
        let input = record("");
        let event = Event::parse(input.as_bytes()).unwrap();
        let keys = event.partition();
        assert_eq!(keys.event_type, "payment");
        assert_eq!(keys.created_date.to_string(), "2024-03-17");
    }

    #[test]
    fn enriching_an_enriched_line_gives_the_same_bytes() {
        let once = enriched(&record(r#","p":{ "k" : 1 }"#));
        assert_eq!(enriched(&once), once);
    }

    #[test]
    fn every_rejection_has_a_code() {
        let codes = [
            reason_code(b""),
            reason_code(b"\xFF"),
            reason_code(b"\xEF\xBB\xBF{}"),
            reason_code(b"[]"),
            reason_code(b"{"),
        ];
        assert_eq!(codes, ["empty", "invalid_utf8", "byte_order_mark", "not_an_object", "invalid_json"]);
        assert_eq!(reason_code(&vec![b' '; MAX_RECORD_BYTES + 1]), "record_too_large");
    }

    fn reason_code(input: &[u8]) -> &'static str {
        Event::parse(input).unwrap_err().code()
    }
}
