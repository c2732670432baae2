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

/// The files a run wrote into one partition and the counts of their rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenCounts {
    /// File names, in the partition's directory.
    pub files: Vec<String>,
    pub stats: PartitionStats,
    /// The files are the whole partition (a compaction's outputs), not files
    /// added beside others (a writer's).
    pub whole_partition: bool,
}

/// One partition's first copies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Rows where the field is present and not `null`.
    pub count: u64,
    /// What its values need.
    pub seen: SeenName,
    /// Per state a value needs alone (`bigint`, `array(double)`, ...): the
    /// first such value in the partition's order (created time, then key),
    /// whatever order the rows were counted in.
    pub examples: BTreeMap<SeenName, Example>,
}

/// A value of a field, with the row it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Example {
    pub created_millis: i64,
    pub event_uuid: String,
    /// Its JSON text, cut to a few dozen characters.
    pub value: String,
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
    pub fn observe(&mut self, created_millis: i64, event_uuid: &str, payload: &str) {
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
            let earlier = |known: &Example| {
                (created_millis, event_uuid) < (known.created_millis, known.event_uuid.as_str())
            };
            match field.examples.get_mut(&SeenName(seen)) {
                Some(known) if !earlier(known) => {}
                slot => {
                    let example =
                        Example { created_millis, event_uuid: event_uuid.to_owned(), value: example(value) };
                    match slot {
                        Some(known) => *known = example,
                        None => {
                            field.examples.insert(SeenName(seen), example);
                        }
                    }
                }
            }
        }
    }

    /// Adds the counts of rows `other` counted (rows with other keys than
    /// this one's).
    pub fn absorb(&mut self, other: PartitionStats) {
        self.rows += other.rows;
        self.untracked += other.untracked;
        self.first_event_millis = match (self.first_event_millis, other.first_event_millis) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (name, theirs) in other.fields {
            if !self.fields.contains_key(&name) && self.fields.len() >= MAX_FIELDS_PER_PARTITION {
                self.untracked += theirs.count;
                continue;
            }
            let ours = self.fields.entry(name).or_default();
            ours.count += theirs.count;
            ours.seen = SeenName(ours.seen.0.widen(theirs.seen.0));
            for (state, example) in theirs.examples {
                match ours.examples.get_mut(&state) {
                    Some(known) if *known <= example => {}
                    Some(known) => *known = example,
                    None => {
                        ours.examples.insert(state, example);
                    }
                }
            }
        }
    }
}

/// Counts a chunk of lake rows (the lake's schema: `event_uuid` is column 0,
/// `payload` column 5, `created_ts` column 6).
pub fn observe_chunk(stats: &mut PartitionStats, chunk: &arrow::array::RecordBatch) {
    use arrow::array::AsArray;
    let uuids = chunk.column(0).as_string::<i32>();
    let payloads = chunk.column(5).as_string::<i32>();
    let created = chunk.column(6).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    for row in 0..chunk.num_rows() {
        stats.observe(created.value(row), uuids.value(row), payloads.value(row));
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
        stats.observe(2_000, "b", r#"{"a":1,"b":null,"c":"x"}"#);
        stats.observe(1_000, "c", r#"{"a":2.5,"a":"ignored","c":"2024-03-17T15:34:56Z"}"#);
        stats.observe(3_000, "a", r#"{"a":3}"#);
        stats.observe(2_000, "a", r#"{"a":4}"#);
        assert_eq!(stats.rows, 4);
        assert_eq!(stats.first_event_millis, Some(1_000));
        let a = &stats.fields["a"];
        assert_eq!((a.count, a.seen.0), (4, Seen::Scalar(Scalar::Double)));
        assert_eq!(a.examples[&SeenName(Seen::Scalar(Scalar::Bigint))].value, "4", "created first, then key");
        assert_eq!(a.examples[&SeenName(Seen::Scalar(Scalar::Double))].value, "2.5");
        assert_eq!((stats.fields["b"].count, stats.fields["b"].seen.0), (0, Seen::Nothing));
        assert_eq!(stats.fields["c"].seen.0, Seen::Scalar(Scalar::Varchar));
        let text = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<PartitionStats>(&text).unwrap(), stats);
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_counted_without_a_panic(text in proptest::prelude::any::<String>()) {
            PartitionStats::default().observe(0, "u", &text);
        }
    }

    #[test]
    fn counts_of_two_sets_of_rows_add_up_to_the_counts_of_both() {
        let rows = [
            (5, "e", r#"{"a":1,"t":"2024-03-17T15:34:56Z"}"#),
            (1, "d", r#"{"a":"x","n":null}"#),
            (5, "a", r#"{"a":[1,2],"t":"later"}"#),
            (3, "b", r#"{"a":2}"#),
        ];
        let mut all = PartitionStats::default();
        rows.iter().for_each(|(m, u, p)| all.observe(*m, u, p));
        for split in 0..=rows.len() {
            let (mut first, mut second) = (PartitionStats::default(), PartitionStats::default());
            rows[..split].iter().for_each(|(m, u, p)| first.observe(*m, u, p));
            rows[split..].iter().rev().for_each(|(m, u, p)| second.observe(*m, u, p));
            first.absorb(second);
            assert_eq!(first, all, "split at {split}");
        }
    }
}
