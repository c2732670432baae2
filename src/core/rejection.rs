//! Why a record was rejected: one variant per rule of CONTRACT section 1, each
//! with a message that tells a person what to fix and a stable code for metrics.

/// Why a record was rejected. The message tells a person what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The record is longer than the contract's limit; it was not read whole.
    #[error("record is {len} bytes, over the limit of {limit} bytes (Firehose's record limit): split the event or move large values elsewhere")]
    TooLarge { len: u64, limit: usize },
    /// Objects and arrays nest deeper than the contract allows.
    #[error("record nests objects and arrays more than {max} levels deep (level {} opens at byte {offset}): flatten the payload", max + 1)]
    TooDeep { max: usize, offset: usize },
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
    WrongType { field: &'static str, expected: &'static str, found: &'static str },
    /// `event_uuid` is not a UUID in an accepted form.
    #[error(
        "event_uuid {value:?} is not a UUID (accepted: hyphenated, 32 hex digits, {{braced}} or urn:uuid:)"
    )]
    InvalidUuid { value: String },
    /// The first part of `event_name` is empty.
    #[error("event_name {name:?} has an empty event type before the first ':'")]
    EmptyEventType { name: String },
    /// The first part of `event_name` is longer than [`MAX_EVENT_TYPE_LEN`](crate::core::event::MAX_EVENT_TYPE_LEN).
    #[error("event type of event_name {name:?} is {len} characters, at most 128 allowed")]
    EventTypeTooLong { name: String, len: usize },
    /// The first part of `event_name` has a character outside `A-Z a-z 0-9 _ - .`.
    #[error("event type of event_name {name:?} has {found:?}: only A-Z a-z 0-9 _ - . are allowed")]
    EventTypeCharacter { name: String, found: char },
    /// The first part of `event_name` is the name Hive-style readers take for NULL.
    #[error("event type of event_name {name:?} is reserved: Athena and other Hive-style readers take __HIVE_DEFAULT_PARTITION__ (in any case) for NULL; rename the type")]
    EventTypeReserved { name: String },
    /// `created_at` is below zero.
    #[error("created_at is negative: {value}")]
    NegativeTime { value: String },
    /// `created_at` lies outside the plausibility window set for this pipeline.
    #[error("created_at {datetime} is {distance} {direction} {now}, outside the accepted window ({window}): fix the producer's clock, or replay with a wider window")]
    Implausible { datetime: String, distance: String, direction: &'static str, now: String, window: String },
    /// `created_at` is at or past year 10000.
    #[error("created_at out of range: {value} {}", hint(*.unit))]
    TimeOutOfRange { value: String, unit: Option<&'static str> },
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
            Rejection::TooLarge { .. } => "record_too_large",
            Rejection::TooDeep { .. } => "too_deeply_nested",
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
            | Rejection::EventTypeCharacter { .. }
            | Rejection::EventTypeReserved { .. } => "invalid_event_type",
            Rejection::NegativeTime { .. } => "negative_created_at",
            Rejection::TimeOutOfRange { .. } => "created_at_out_of_range",
            Rejection::Implausible { .. } => "created_at_implausible",
        }
    }
}
