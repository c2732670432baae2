//! The type ladder of typed views (CONTRACT section 6): the type one JSON value
//! needs, and the narrowest type that holds two.

use serde::{Deserialize, Serialize};

use crate::core::json;

/// A scalar column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scalar {
    Boolean,
    Bigint,
    Double,
    Timestamp,
    Varchar,
}

impl Scalar {
    /// The narrowest scalar that holds both: integers widen to doubles, any
    /// other mix of two scalars is text.
    fn widen(self, other: Scalar) -> Scalar {
        match (self, other) {
            (a, b) if a == b => a,
            (Scalar::Bigint, Scalar::Double) | (Scalar::Double, Scalar::Bigint) => Scalar::Double,
            _ => Scalar::Varchar,
        }
    }

    /// The type's name in Athena SQL.
    pub fn sql(self) -> &'static str {
        match self {
            Scalar::Boolean => "boolean",
            Scalar::Bigint => "bigint",
            Scalar::Double => "double",
            Scalar::Timestamp => "timestamp",
            Scalar::Varchar => "varchar",
        }
    }
}

/// What the values seen of a field need: a rung of the ladder, or one of the
/// two states before a column type is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seen {
    /// No value but `null` (or nothing) yet.
    Nothing,
    /// Arrays, none with a non-null element yet.
    EmptyArrays,
    Scalar(Scalar),
    Array(Scalar),
    /// Objects, mixed arrays, scalars mixed with arrays or objects.
    Json,
}

/// A view column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColumnType {
    Scalar(Scalar),
    Array(Scalar),
    /// Shown as `varchar` holding the value's compact JSON text.
    Json,
}

impl ColumnType {
    /// How the type is named in schema files, declared-type files and docs:
    /// `bigint`, `array(double)`, `json`.
    pub fn name(self) -> String {
        match self {
            ColumnType::Scalar(scalar) => scalar.sql().to_owned(),
            ColumnType::Array(scalar) => format!("array({})", scalar.sql()),
            ColumnType::Json => "json".to_owned(),
        }
    }

    /// Reads a name written by [`ColumnType::name`] (any case, spaces around
    /// the element type allowed).
    pub fn parse(text: &str) -> Option<ColumnType> {
        let text = text.trim().to_ascii_lowercase();
        let scalar = |name: &str| match name.trim() {
            "boolean" => Some(Scalar::Boolean),
            "bigint" => Some(Scalar::Bigint),
            "double" => Some(Scalar::Double),
            "timestamp" => Some(Scalar::Timestamp),
            "varchar" => Some(Scalar::Varchar),
            _ => None,
        };
        if text == "json" {
            return Some(ColumnType::Json);
        }
        if let Some(inner) = text.strip_prefix("array(").and_then(|rest| rest.strip_suffix(')')) {
            return scalar(inner).map(ColumnType::Array);
        }
        scalar(&text).map(ColumnType::Scalar)
    }

    /// The type the view shows in Athena's terms (`json` is shown as `varchar`).
    pub fn athena(self) -> String {
        match self {
            ColumnType::Json => "varchar".to_owned(),
            other => other.name(),
        }
    }
}

impl Serialize for ColumnType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ColumnType::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a column type: boolean, bigint, double, timestamp, varchar, json or array(<one of the first five>)"
            ))
        })
    }
}

impl Seen {
    /// The narrowest state that holds both.
    pub fn widen(self, other: Seen) -> Seen {
        use Seen::*;
        match (self, other) {
            (Nothing, x) | (x, Nothing) => x,
            (EmptyArrays, EmptyArrays) => EmptyArrays,
            (EmptyArrays, Array(s)) | (Array(s), EmptyArrays) => Array(s),
            (Scalar(a), Scalar(b)) => Scalar(a.widen(b)),
            (Array(a), Array(b)) => Array(a.widen(b)),
            _ => Json,
        }
    }

    /// The column type of a field whose values were all seen: a field never
    /// seen but null is `json`; one only ever an empty array is `array(varchar)`.
    pub fn column_type(self) -> ColumnType {
        match self {
            Seen::Nothing | Seen::Json => ColumnType::Json,
            Seen::EmptyArrays => ColumnType::Array(Scalar::Varchar),
            Seen::Scalar(scalar) => ColumnType::Scalar(scalar),
            Seen::Array(scalar) => ColumnType::Array(scalar),
        }
    }

    /// The state of one value, given as its JSON text (valid JSON, as the
    /// lake's payload holds it).
    pub fn of_value(raw: &str) -> Seen {
        match raw.as_bytes().first() {
            Some(b'n') | None => Seen::Nothing,
            Some(b'{') => Seen::Json,
            Some(b'[') => json::elements(raw).fold(Seen::EmptyArrays, |seen, element| {
                match (seen, scalar_of(element)) {
                    (seen, Some(None)) => seen,
                    (Seen::EmptyArrays, Some(Some(scalar))) => Seen::Array(scalar),
                    (Seen::Array(a), Some(Some(b))) => Seen::Array(a.widen(b)),
                    _ => Seen::Json,
                }
            }),
            _ => scalar_of(raw).flatten().map_or(Seen::Json, Seen::Scalar),
        }
    }
}

/// The scalar type of a scalar value: `Some(None)` for `null`, `None` for an
/// object or an array.
fn scalar_of(raw: &str) -> Option<Option<Scalar>> {
    Some(Some(match raw.as_bytes().first()? {
        b'n' => return Some(None),
        b'{' | b'[' => return None,
        b't' | b'f' => Scalar::Boolean,
        b'"' => match json::string_literal(raw) {
            Some(text) if is_rfc3339_instant(&text) => Scalar::Timestamp,
            _ => Scalar::Varchar,
        },
        _ if is_integer_within_64_bits(raw) => Scalar::Bigint,
        _ => Scalar::Double,
    }))
}

/// A JSON number written without fraction or exponent that fits a signed
/// 64-bit integer.
fn is_integer_within_64_bits(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<i64>().is_ok()
}

/// An RFC 3339 instant as both engines read it the same way:
/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, then `Z` or
/// `±HH:MM`; upper-case `T` and `Z`, a real calendar date, no leap second.
pub fn is_rfc3339_instant(text: &str) -> bool {
    rfc3339_millis(text).is_some()
}

/// The instant of [`is_rfc3339_instant`] text in Unix milliseconds, a fraction
/// beyond milliseconds cut off (as Athena's `from_iso8601_timestamp` does).
pub fn rfc3339_millis(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes
            .get(from..to)?
            .iter()
            .try_fold(0_u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, separator)| bytes[at] == separator) {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0_u32;
    if bytes[at] == b'.' {
        let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        let fraction = number(at + 1, at + 1 + digits)?;
        nanos = fraction * 10_u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset_minutes: i64 = match &bytes[at..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = i64::from(hours * 60 + minutes);
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if second > 59 {
        return None;
    }
    let time = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    let millis = time.and_utc().timestamp_millis();
    Some(millis - offset_minutes * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(raw: &str) -> Seen {
        Seen::of_value(raw)
    }

    #[test]
    fn each_value_takes_its_rung() {
        assert_eq!(seen("true"), Seen::Scalar(Scalar::Boolean));
        assert_eq!(seen("-12"), Seen::Scalar(Scalar::Bigint));
        assert_eq!(seen("9223372036854775807"), Seen::Scalar(Scalar::Bigint));
        assert_eq!(seen("9223372036854775808"), Seen::Scalar(Scalar::Double));
        assert_eq!(seen("-9223372036854775809"), Seen::Scalar(Scalar::Double));
        assert_eq!(seen("12.0"), Seen::Scalar(Scalar::Double));
        assert_eq!(seen("1e3"), Seen::Scalar(Scalar::Double));
        assert_eq!(seen(r#""2024-03-17T15:34:56Z""#), Seen::Scalar(Scalar::Timestamp));
        assert_eq!(seen(r#""2024-03-17T15:34:56.123+02:00""#), Seen::Scalar(Scalar::Timestamp));
        assert_eq!(seen(r#""2024-03-17 15:34:56Z""#), Seen::Scalar(Scalar::Varchar));
        assert_eq!(seen(r#""2024-02-30T15:34:56Z""#), Seen::Scalar(Scalar::Varchar));
        assert_eq!(seen(r#""12""#), Seen::Scalar(Scalar::Varchar));
        assert_eq!(seen("null"), Seen::Nothing);
        assert_eq!(seen("{}"), Seen::Json);
        assert_eq!(seen("[]"), Seen::EmptyArrays);
        assert_eq!(seen("[null]"), Seen::EmptyArrays);
        assert_eq!(seen("[1,null,2]"), Seen::Array(Scalar::Bigint));
        assert_eq!(seen("[1,2.5]"), Seen::Array(Scalar::Double));
        assert_eq!(seen(r#"[1,"a"]"#), Seen::Array(Scalar::Varchar));
        assert_eq!(seen("[1,[2]]"), Seen::Json);
        assert_eq!(seen(r#"[{"a":1}]"#), Seen::Json);
    }

    #[test]
    fn types_only_widen() {
        use Scalar::*;
        let s = Seen::Scalar;
        assert_eq!(s(Bigint).widen(s(Double)), s(Double));
        assert_eq!(s(Boolean).widen(s(Bigint)), s(Varchar));
        assert_eq!(s(Timestamp).widen(s(Varchar)), s(Varchar));
        assert_eq!(s(Timestamp).widen(s(Bigint)), s(Varchar));
        assert_eq!(Seen::Nothing.widen(s(Boolean)), s(Boolean));
        assert_eq!(Seen::EmptyArrays.widen(Seen::Array(Bigint)), Seen::Array(Bigint));
        assert_eq!(Seen::Array(Bigint).widen(Seen::Array(Double)), Seen::Array(Double));
        assert_eq!(s(Bigint).widen(Seen::Array(Bigint)), Seen::Json);
        assert_eq!(Seen::Json.widen(Seen::Nothing), Seen::Json);
        assert_eq!(Seen::Nothing.column_type(), ColumnType::Json);
        assert_eq!(Seen::EmptyArrays.column_type(), ColumnType::Array(Varchar));
        // Every pair widens to a state that holds both, whatever the order.
        let all = [
            Seen::Nothing,
            Seen::EmptyArrays,
            s(Boolean),
            s(Bigint),
            s(Double),
            s(Timestamp),
            s(Varchar),
            Seen::Array(Bigint),
            Seen::Array(Timestamp),
            Seen::Json,
        ];
        for a in all {
            for b in all {
                assert_eq!(a.widen(b), b.widen(a));
                assert_eq!(a.widen(b).widen(a), a.widen(b));
                assert_eq!(a.widen(b).widen(b), a.widen(b));
            }
        }
    }

    #[test]
    fn instants_follow_rfc3339_with_offsets_and_fractions_cut_to_milliseconds() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("1970-01-01T02:00:00.5+02:00"), Some(500));
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00.123999999-00:30"), Some(1_800_123));
        assert_eq!(rfc3339_millis("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(rfc3339_millis("2024-03-17T15:34:60Z"), None);
        assert_eq!(rfc3339_millis("2024-03-17t15:34:56z"), None);
        assert_eq!(rfc3339_millis("2024-03-17T15:34:56.Z"), None);
        assert_eq!(rfc3339_millis("2024-03-17T15:34:56.1234567890Z"), None);
        assert_eq!(rfc3339_millis("2024-03-17T15:34:56+24:00"), None);
        assert_eq!(rfc3339_millis("2024-03-17T15:34:56"), None);
    }

    #[test]
    fn type_names_read_back() {
        for name in [
            "boolean",
            "bigint",
            "double",
            "timestamp",
            "varchar",
            "json",
            "array(bigint)",
            "array(timestamp)",
        ] {
            assert_eq!(ColumnType::parse(name).unwrap().name(), name);
        }
        assert_eq!(ColumnType::parse(" ARRAY( Double ) "), Some(ColumnType::Array(Scalar::Double)));
        assert_eq!(ColumnType::parse("array(json)"), None);
        assert_eq!(ColumnType::parse("int"), None);
    }
}
