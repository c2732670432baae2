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

use crate::json;
use crate::timestamp::{CreatedDate, EventTime, TimeError};

/// Longest allowed `event_type`, in characters (it becomes an S3 path segment).
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// The fields an enriched event sets, in the order they are appended when absent.
const ENRICHED: [&str; 3] = ["created_datetime", "event_type", "event_subtype"];
/// Fields that are columns of their own in the lake; all others form the payload.
const COLUMNS: [&str; 6] = [
    "event_uuid",
    "event_name",
    "created_at",
    "created_datetime",
    "event_type",
    "event_subtype",
];

/// Why a record was rejected. The message tells a person what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The record has no bytes, or only whitespace.
    #[error("record is empty: expected one JSON object")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("record is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    /// The record starts with a UTF-8 byte-order mark.
    #[error("record starts with a byte-order mark: remove the leading EF BB BF bytes")]
    ByteOrderMark,
    /// The record holds valid JSON that is not an object.
    #[error("record is {found}, expected one JSON object")]
    NotAnObject { found: &'static str },
    /// The record is not valid JSON, or holds more than one value.
    #[error("record is not valid JSON: {detail}")]
    InvalidJson { detail: String },
    /// A string escapes one half of a UTF-16 surrogate pair without the other.
    #[error("record has a lone surrogate escape at byte {offset}: escape both halves of the pair or the character itself")]
    LoneSurrogate { offset: usize },
    /// A top-level field appears twice, so its value is ambiguous.
    #[error("field {name:?} appears more than once")]
    DuplicateField { name: String },
    /// A required field is absent.
    #[error("missing required field {field}")]
    MissingField { field: &'static str },
    /// A required field has the wrong JSON type.
    #[error("{field} must be a JSON {expected}, got {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// `event_uuid` is not a UUID in an accepted form.
    #[error("event_uuid {value:?} is not a UUID (accepted: hyphenated, 32 hex digits, {{braced}} or urn:uuid:)")]
    InvalidUuid { value: String },
    /// The first part of `event_name` is empty.
    #[error("event_name {name:?} has an empty event type before the first ':'")]
    EmptyEventType { name: String },
    /// The first part of `event_name` is longer than [`MAX_EVENT_TYPE_LEN`].
    #[error("event type of event_name {name:?} is {len} characters, at most 128 allowed")]
    EventTypeTooLong { name: String, len: usize },
    /// The first part of `event_name` has a character outside `A-Z a-z 0-9 _ - .`.
    #[error("event type of event_name {name:?} has {found:?}: only A-Z a-z 0-9 _ - . are allowed")]
    EventTypeCharacter { name: String, found: char },
    /// `created_at` is below zero.
    #[error("created_at is negative: {value}")]
    NegativeTime { value: String },
    /// `created_at` is at or past year 10000.
    #[error("created_at out of range: {value} {}", hint(*.unit))]
    TimeOutOfRange {
        value: String,
        unit: Option<&'static str>,
    },
}

fn hint(unit: Option<&'static str>) -> String {
    match unit {
        Some(unit) => format!("looks like {unit}: send Unix seconds"),
        None => "is past 9999-12-31T23:59:59Z: send Unix seconds".to_owned(),
    }
}

impl Rejection {
    /// A short stable name for the kind of problem, for metrics and dashboards.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::InvalidUtf8 { .. } => "invalid_utf8",
            Rejection::ByteOrderMark => "byte_order_mark",
            Rejection::NotAnObject { .. } => "not_an_object",
            Rejection::InvalidJson { .. } => "invalid_json",
            Rejection::LoneSurrogate { .. } => "lone_surrogate",
            Rejection::DuplicateField { .. } => "duplicate_field",
            Rejection::MissingField { .. } => "missing_field",
            Rejection::WrongType { .. } => "wrong_type",
            Rejection::InvalidUuid { .. } => "invalid_uuid",
            Rejection::EmptyEventType { .. }
            | Rejection::EventTypeTooLong { .. }
            | Rejection::EventTypeCharacter { .. } => "invalid_event_type",
            Rejection::NegativeTime { .. } => "negative_created_at",
            Rejection::TimeOutOfRange { .. } => "created_at_out_of_range",
        }
    }
}

/// The identity of an event: two records with the same key are the same event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey {
    pub uuid: Uuid,
    pub created_at_millis: i64,
}

/// Where an event lives in the lake: its partition values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKeys<'a> {
    pub event_type: &'a str,
    pub created_date: CreatedDate,
}

/// A valid event: the parsed record and its interpreted contract fields.
#[derive(Debug)]
pub struct Event<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    uuid: Uuid,
    name: Cow<'a, str>,
    /// Byte length of the event type at the start of `name`.
    type_len: usize,
    time: EventTime,
}

impl<'a> Event<'a> {
    /// Parses and validates one record (CONTRACT section 1).
    pub fn parse(record: &'a [u8]) -> Result<Self, Rejection> {
        let text = std::str::from_utf8(record).map_err(|e| Rejection::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        if text.starts_with('\u{feff}') {
            return Err(Rejection::ByteOrderMark);
        }
        let fields = parse_object(text)?;
        if let Some(offset) = json::find_lone_surrogate(text) {
            return Err(Rejection::LoneSurrogate { offset });
        }
        let uuid = parse_uuid(required(&fields, "event_uuid")?)?;
        let name = json_string(required(&fields, "event_name")?, "event_name")?;
        let type_len = check_event_type(&name)?;
        let time = parse_time(required(&fields, "created_at")?)?;
        Ok(Event {
            fields,
            uuid,
            name,
            type_len,
            time,
        })
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
        let rest = self.name[self.type_len..].strip_prefix(':')?;
        let subtype = rest.split(':').next().unwrap_or_default();
        (!subtype.is_empty()).then_some(subtype)
    }

    /// The creation time.
    pub fn time(&self) -> EventTime {
        self.time
    }

    /// The dedupe key: canonical UUID and `created_at` in whole milliseconds.
    pub fn dedupe_key(&self) -> DedupeKey {
        DedupeKey {
            uuid: self.uuid,
            created_at_millis: self.time.millis(),
        }
    }

    /// The partition this event belongs to.
    pub fn partition_keys(&self) -> PartitionKeys<'_> {
        PartitionKeys {
            event_type: self.event_type(),
            created_date: self.time.created_date(),
        }
    }

    /// Appends the enriched event (CONTRACT section 2) as one compact JSON line
    /// ending in `\n`. Input keys keep their order; enriched fields overwrite
    /// same-named fields in place and are appended when absent.
    pub fn write_enriched_line(&self, out: &mut Vec<u8>) {
        let datetime = self.time.created_datetime();
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
                        self.write_enriched_value(slot, &datetime, out);
                    }
                    None => json::write_compact(value.get(), out),
                },
            }
        }
        for (slot, field) in ENRICHED
            .iter()
            .enumerate()
            .filter(|(slot, _)| !present[*slot])
        {
            out.push(b',');
            write_key(field, out);
            self.write_enriched_value(slot, &datetime, out);
        }
        out.extend_from_slice(b"}\n");
    }

    fn write_enriched_value(&self, slot: usize, datetime: &str, out: &mut Vec<u8>) {
        match slot {
            0 => json::write_string(datetime, out),
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
        let payload = self
            .fields
            .iter()
            .filter(|(key, _)| !COLUMNS.contains(&key.as_ref()));
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

fn write_key(key: &str, out: &mut Vec<u8>) {
    json::write_string(key, out);
    out.push(b':');
}

/// Parses the record as one JSON object into its top-level fields, in order.
fn parse_object(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, Rejection> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
    match trimmed.as_bytes().first() {
        None => return Err(Rejection::Empty),
        Some(b'{') => {}
        Some(_) => {
            // Name what was sent when it is valid JSON; otherwise report the syntax error.
            let value: &RawValue = serde_json::from_str(text).map_err(invalid_json)?;
            return Err(Rejection::NotAnObject {
                found: json::kind_of(value.get()),
            });
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let fields = deserializer
        .deserialize_map(FieldsVisitor)
        .map_err(invalid_json)?;
    deserializer.end().map_err(invalid_json)?;
    if let Some(name) = first_duplicate(&fields) {
        return Err(Rejection::DuplicateField {
            name: name.to_owned(),
        });
    }
    Ok(fields)
}

fn invalid_json(error: serde_json::Error) -> Rejection {
    Rejection::InvalidJson {
        detail: error.to_string(),
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(entry) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
            fields.push(entry);
        }
        Ok(fields)
    }
}

fn first_duplicate<'f>(fields: &'f [(Cow<'_, str>, &RawValue)]) -> Option<&'f str> {
    // Objects are small: a quadratic scan beats hashing for the usual dozen fields.
    fields.iter().enumerate().find_map(|(index, (key, _))| {
        fields[..index]
            .iter()
            .any(|(earlier, _)| earlier == key)
            .then_some(key.as_ref())
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
        return Err(Rejection::WrongType {
            field,
            expected: "string",
            found,
        });
    }
    // Valid and surrogate-checked already, so this only unescapes.
    serde_json::from_str(raw).map_err(invalid_json)
}

fn parse_uuid(value: &RawValue) -> Result<Uuid, Rejection> {
    let text = json_string(value, "event_uuid")?;
    Uuid::try_parse(&text).map_err(|_| Rejection::InvalidUuid {
        value: json::excerpt(&text),
    })
}

/// Checks the event type (the first part of `event_name`); returns its byte length.
fn check_event_type(name: &str) -> Result<usize, Rejection> {
    let event_type = name.split(':').next().unwrap_or_default();
    if event_type.is_empty() {
        return Err(Rejection::EmptyEventType {
            name: json::excerpt(name),
        });
    }
    if let Some(found) = event_type
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(Rejection::EventTypeCharacter {
            name: json::excerpt(name),
            found,
        });
    }
    if event_type.len() > MAX_EVENT_TYPE_LEN {
        let len = event_type.len();
        return Err(Rejection::EventTypeTooLong {
            name: json::excerpt(name),
            len,
        });
    }
    Ok(event_type.len())
}

fn parse_time(value: &RawValue) -> Result<EventTime, Rejection> {
    let raw = value.get();
    let found = json::kind_of(raw);
    if found != "a number" {
        return Err(Rejection::WrongType {
            field: "created_at",
            expected: "number",
            found,
        });
    }
    EventTime::from_json_number(raw).map_err(|error| {
        let value = json::excerpt(raw);
        match error {
            TimeError::Negative => Rejection::NegativeTime { value },
            TimeError::OutOfRange { unit } => Rejection::TimeOutOfRange { value, unit },
        }
    })
}
