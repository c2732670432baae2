//! What the first copies of one partition hold of their type's payload fields:
//! counted while they are read, kept per partition so that a run reads again
//! only the partitions that changed, and folded into a type's schema.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ladder::{ColumnType, Seen};
use crate::core::json;

/// The most distinct fields counted per partition: memory stays bounded on a
/// payload that invents field names. Fields beyond are counted together.
pub const MAX_FIELDS_PER_PARTITION: usize = 10_000;
/// Examples are cut to this many characters.
const EXAMPLE_CHARS: usize = 120;

/// One partition's first copies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionStats {
    /// Rows (one per dedupe key).
    pub rows: u64,
    /// The earliest `created_ts` of the partition, Unix milliseconds.
    pub first_event_millis: Option<i64>,
    /// Field occurrences not counted: the partition had more than
    /// [`MAX_FIELDS_PER_PARTITION`] distinct fields.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untracked: u64,
    pub fields: BTreeMap<String, FieldStats>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One field in one partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Rows where the field is present and not `null`.
    pub count: u64,
    /// What its values need.
    pub seen: SeenName,
    /// Per state a value needs alone (`bigint`, `array(double)`, ...): the
    /// first such value in the partition's order (created time, then key).
    pub examples: BTreeMap<SeenName, String>,
}

/// A [`Seen`] as schema files write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeenName(pub Seen);

impl Default for SeenName {
    fn default() -> Self {
        SeenName(Seen::Nothing)
    }
}

impl SeenName {
    fn text(self) -> String {
        match self.0 {
            Seen::Nothing => "null".to_owned(),
            Seen::EmptyArrays => "array()".to_owned(),
            Seen::Scalar(s) => ColumnType::Scalar(s).name(),
            Seen::Array(s) => ColumnType::Array(s).name(),
            Seen::Json => "json".to_owned(),
        }
    }

    fn parse(text: &str) -> Option<SeenName> {
        Some(SeenName(match text {
            "null" => Seen::Nothing,
            "array()" => Seen::EmptyArrays,
            other => match ColumnType::parse(other)? {
                ColumnType::Scalar(s) => Seen::Scalar(s),
                ColumnType::Array(s) => Seen::Array(s),
                ColumnType::Json => Seen::Json,
            },
        }))
    }
}

impl Serialize for SeenName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for SeenName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SeenName::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a value state")))
    }
}

impl PartitionStats {
    /// Counts one row: its created time and its payload (a JSON object, as the
    /// lake's `payload` column holds it). A field written twice in one payload
    /// counts once, by its first value, as Athena's `json_extract` reads it.
    pub fn observe(&mut self, created_millis: i64, payload: &str) {
        self.rows += 1;
        self.first_event_millis =
            Some(self.first_event_millis.map_or(created_millis, |m| m.min(created_millis)));
        let mut names_in_row: HashSet<std::borrow::Cow<'_, str>> = HashSet::new();
        for (quoted, value) in json::members(payload) {
            let Some(name) = json::string_literal(quoted) else { continue };
            if !names_in_row.insert(name.clone()) {
                continue;
            }
            if !self.fields.contains_key(name.as_ref()) && self.fields.len() >= MAX_FIELDS_PER_PARTITION {
                self.untracked += 1;
                continue;
            }
            let field = self.fields.entry(name.into_owned()).or_default();
            let seen = Seen::of_value(value);
            if seen != Seen::Nothing {
                field.count += 1;
            }
            field.seen = SeenName(field.seen.0.widen(seen));
            field.examples.entry(SeenName(seen)).or_insert_with(|| example(value));
        }
    }
}

/// A value as an example: its JSON text, cut to [`EXAMPLE_CHARS`] characters.
fn example(value: &str) -> String {
    let mut out: String = value.chars().take(EXAMPLE_CHARS).collect();
    if out.len() < value.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::ladder::Scalar;

    #[test]
    fn a_partition_counts_non_null_values_and_keeps_the_first_example_of_each_state() {
        let mut stats = PartitionStats::default();
        stats.observe(2_000, r#"{"a":1,"b":null,"c":"x"}"#);
        stats.observe(1_000, r#"{"a":2.5,"a":"ignored","c":"2024-03-17T15:34:56Z"}"#);
        stats.observe(3_000, r#"{"a":3}"#);
        assert_eq!(stats.rows, 3);
        assert_eq!(stats.first_event_millis, Some(1_000));
        let a = &stats.fields["a"];
        assert_eq!((a.count, a.seen.0), (3, Seen::Scalar(Scalar::Double)));
        assert_eq!(a.examples[&SeenName(Seen::Scalar(Scalar::Bigint))], "1");
        assert_eq!(a.examples[&SeenName(Seen::Scalar(Scalar::Double))], "2.5");
        assert_eq!((stats.fields["b"].count, stats.fields["b"].seen.0), (0, Seen::Nothing));
        assert_eq!(stats.fields["c"].seen.0, Seen::Scalar(Scalar::Varchar));
        let text = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<PartitionStats>(&text).unwrap(), stats);
    }
}
