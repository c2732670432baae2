//! A type's schema file (`_schemas/<event_type>.json`, CONTRACT section 6):
//! folded from its partitions' counts, in date order, so that a run from
//! scratch writes the same file as the runs that came before it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ladder::{ColumnType, Seen};
use super::naming::{self, LEADING_COLUMNS, RESCUED_COLUMN};
use super::stats::{PartitionStats, SeenName};

/// The most payload columns a view has; the most frequent fields get them.
pub const MAX_COLUMNS: usize = 500;

/// A type's schema: its view, its fields and their history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeSchema {
    pub event_type: String,
    pub view: String,
    /// Rows of `events_unique` of the type.
    pub rows: u64,
    /// Whether the view has `_rescued` (something is declared).
    pub rescued: bool,
    /// Fields with a column, by column name, then those without, by name.
    pub fields: Vec<FieldSchema>,
    /// Field values not counted because a partition had more distinct fields
    /// than are counted (`stats::MAX_FIELDS_PER_PARTITION`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uncounted_values: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One top-level payload field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    pub name: String,
    /// Its view column; `None` when it stays in `payload` only (`why`).
    pub column: Option<String>,
    /// The column's type: the declared one, else the inferred one.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// What the values need (the ladder), declared or not.
    pub inferred: ColumnType,
    pub declared: bool,
    /// Values that are not `null`.
    pub count: u64,
    pub first_date: Option<String>,
    pub last_date: Option<String>,
    /// The inferred type's rungs: the first, then each widening.
    pub history: Vec<Rung>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The type a field took on a day, with a value of that day that needed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub date: String,
    pub example: String,
}

/// The declared-type file (`_schemas/<event_type>.declared.json`):
/// `{"fields": {"amount": "double", "tags": "array(varchar)"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    pub fields: BTreeMap<String, ColumnType>,
}

/// Why a field name gets no column whatever its frequency: it holds a
/// character that Athena's and DataFusion's JSON paths do not read alike.
fn unaddressable(name: &str) -> Option<&'static str> {
    name.chars()
        .any(|c| matches!(c, '"' | '\\') || c.is_control())
        .then_some("its name holds a quote, a backslash or a control character, which a JSON path cannot name the same way in Athena and locally; read it from payload")
}

/// The schema of `event_type` from its partitions' counts (by `created_date`),
/// its declared types and its view's name.
pub fn fold(
    event_type: &str,
    view: &str,
    partitions: &BTreeMap<String, PartitionStats>,
    declared: &Declared,
) -> TypeSchema {
    struct Running {
        seen: Seen,
        count: u64,
        first: Option<String>,
        last: Option<String>,
        history: Vec<Rung>,
    }
    let mut running: BTreeMap<&str, Running> = BTreeMap::new();
    let (mut rows, mut uncounted) = (0, 0);
    for (date, partition) in partitions {
        rows += partition.rows;
        uncounted += partition.untracked;
        for (name, stats) in &partition.fields {
            let field = running.entry(name).or_insert(Running {
                seen: Seen::Nothing,
                count: 0,
                first: None,
                last: None,
                history: Vec::new(),
            });
            field.count += stats.count;
            field.first.get_or_insert_with(|| date.clone());
            field.last = Some(date.clone());
            let before = field.seen;
            field.seen = before.widen(stats.seen.0);
            let changed = field.seen.column_type() != before.column_type() || before == Seen::Nothing;
            if field.seen != Seen::Nothing && changed {
                // A value of the type reached, else one that needed the widening.
                let needed = stats.examples.get(&SeenName(field.seen)).or_else(|| {
                    let widens = |state: &SeenName| {
                        state.0 != Seen::Nothing
                            && (before == Seen::Nothing || before.widen(state.0) != before)
                    };
                    stats.examples.iter().find(|(state, _)| widens(state)).map(|(_, example)| example)
                });
                field.history.push(Rung {
                    column_type: field.seen.column_type(),
                    date: date.clone(),
                    example: needed.map(|example| example.value.clone()).unwrap_or_default(),
                });
            }
        }
    }
    for name in declared.fields.keys() {
        running.entry(name).or_insert(Running {
            seen: Seen::Nothing,
            count: 0,
            first: None,
            last: None,
            history: Vec::new(),
        });
    }
    // The columns: declared fields first, then the most frequent, at most MAX_COLUMNS.
    let mut by_rank: Vec<(&str, u64)> = running
        .iter()
        .filter(|(name, _)| unaddressable(name).is_none())
        .map(|(name, field)| (*name, field.count))
        .collect();
    by_rank.sort_by(|a, b| {
        let declared_first = |name: &str| !declared.fields.contains_key(name);
        (declared_first(a.0), std::cmp::Reverse(a.1), a.0).cmp(&(
            declared_first(b.0),
            std::cmp::Reverse(b.1),
            b.0,
        ))
    });
    let with_column: BTreeSet<&str> = by_rank.iter().take(MAX_COLUMNS).map(|(name, _)| *name).collect();
    let rescued = !declared.fields.is_empty();
    let taken = LEADING_COLUMNS.iter().copied().chain(rescued.then_some(RESCUED_COLUMN));
    let names = naming::deduplicate(with_column.iter().map(|name| naming::plain_column_name(name)), taken);
    let columns: BTreeMap<&str, String> = with_column.iter().copied().zip(names).collect();
    let mut fields: Vec<FieldSchema> = running
        .into_iter()
        .map(|(name, field)| {
            let inferred = field.seen.column_type();
            let declared_type = declared.fields.get(name).copied();
            let column = columns.get(name).cloned();
            let why = match (&column, unaddressable(name)) {
                (Some(_), _) => None,
                (None, Some(why)) => Some(why.to_owned()),
                (None, None) => Some(format!("the view has {MAX_COLUMNS} columns for its most frequent fields; read this one from payload")),
            };
            FieldSchema {
                name: name.to_owned(),
                column,
                column_type: declared_type.unwrap_or(inferred),
                inferred,
                declared: declared_type.is_some(),
                count: field.count,
                first_date: field.first,
                last_date: field.last,
                history: field.history,
                why,
            }
        })
        .collect();
    fields.sort_by(|a, b| {
        (a.column.is_none(), &a.column, &a.name).cmp(&(b.column.is_none(), &b.column, &b.name))
    });
    TypeSchema {
        event_type: event_type.to_owned(),
        view: view.to_owned(),
        rows,
        rescued,
        fields,
        uncounted_values: uncounted,
    }
}

/// Each type's view name: its plain name, or with `_2`, `_3`, ... when an
/// earlier type (by first event, then name) or a base view has it.
pub fn view_names<'a>(types: impl IntoIterator<Item = (&'a str, Option<i64>)>) -> BTreeMap<String, String> {
    let mut ordered: Vec<(Option<i64>, &str)> =
        types.into_iter().map(|(name, first)| (first, name)).collect();
    // A type with no event yet sorts last.
    ordered.sort_by_key(|&(first, name)| (first.is_none(), first, name));
    let names = naming::deduplicate(
        ordered.iter().map(|(_, name)| naming::plain_view_name(name)),
        naming::RESERVED_VIEW_NAMES,
    );
    ordered.into_iter().map(|(_, name)| name.to_owned()).zip(names).collect()
}

/// A change a run made to a type's schema, for `eventlake views` to print.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A field with a column it did not have.
    NewField { name: String, column: String, column_type: ColumnType, count: u64, example: String },
    /// A field whose inferred type widened.
    Widened { name: String, from: ColumnType, to: ColumnType, count: u64, example: String },
}

/// What changed from `before` (the schema file as the last run left it) to `after`.
pub fn changes(before: Option<&TypeSchema>, after: &TypeSchema) -> Vec<Change> {
    let old: BTreeMap<&str, &FieldSchema> =
        before.map(|b| b.fields.iter().map(|f| (f.name.as_str(), f)).collect()).unwrap_or_default();
    let mut out = Vec::new();
    for field in &after.fields {
        let example = field.history.last().map(|rung| rung.example.clone()).unwrap_or_default();
        match (old.get(field.name.as_str()), &field.column) {
            (Some(previous), _) if previous.inferred != field.inferred && !previous.history.is_empty() => {
                out.push(Change::Widened {
                    name: field.name.clone(),
                    from: previous.inferred,
                    to: field.inferred,
                    count: field.count,
                    example,
                });
            }
            (previous, Some(column)) if previous.is_none_or(|p| p.column.is_none()) => {
                out.push(Change::NewField {
                    name: field.name.clone(),
                    column: column.clone(),
                    column_type: field.column_type,
                    count: field.count,
                    example,
                })
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::ladder::Scalar;

    fn partition(rows: &[(i64, &str)]) -> PartitionStats {
        let mut stats = PartitionStats::default();
        for (millis, payload) in rows {
            stats.observe(*millis, &format!("{millis:08}"), payload);
        }
        stats
    }

    #[test]
    fn a_widening_on_a_later_day_is_in_the_history_with_its_example() {
        let partitions = BTreeMap::from([
            ("2024-03-17".to_owned(), partition(&[(1, r#"{"Amount":1,"z":null}"#), (2, r#"{"Amount":2}"#)])),
            ("2024-03-18".to_owned(), partition(&[(3, r#"{"Amount":2.5,"amount":"x"}"#)])),
        ]);
        let schema = fold("payment", "events_payment", &partitions, &Declared::default());
        assert_eq!(schema.rows, 3);
        let names: Vec<_> = schema.fields.iter().map(|f| (f.name.as_str(), f.column.as_deref())).collect();
        assert_eq!(names, [("Amount", Some("amount")), ("amount", Some("amount_2")), ("z", Some("z"))]);
        let amount = &schema.fields[0];
        assert_eq!(amount.column_type, ColumnType::Scalar(Scalar::Double));
        assert_eq!(amount.count, 3);
        assert_eq!(
            (amount.first_date.as_deref(), amount.last_date.as_deref()),
            (Some("2024-03-17"), Some("2024-03-18"))
        );
        assert_eq!(
            amount.history,
            [
                Rung {
                    column_type: ColumnType::Scalar(Scalar::Bigint),
                    date: "2024-03-17".into(),
                    example: "1".into()
                },
                Rung {
                    column_type: ColumnType::Scalar(Scalar::Double),
                    date: "2024-03-18".into(),
                    example: "2.5".into()
                },
            ]
        );
        assert_eq!((schema.fields[2].column_type, schema.fields[2].count), (ColumnType::Json, 0));
        assert!(schema.fields[2].history.is_empty());
        let before = fold(
            "payment",
            "events_payment",
            &BTreeMap::from([partitions.first_key_value().map(|(k, v)| (k.clone(), v.clone())).unwrap()]),
            &Declared::default(),
        );
        let changes = changes(Some(&before), &schema);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            matches!(&changes[0], Change::Widened { name, count: 3, example, .. } if name == "Amount" && example == "2.5")
        );
        assert!(matches!(&changes[1], Change::NewField { column, .. } if column == "amount_2"));
    }

    #[test]
    fn the_most_frequent_fields_get_the_columns_and_declared_ones_come_first() {
        let payload: String = format!(
            "{{{}}}",
            (0..MAX_COLUMNS + 2).map(|i| format!("\"f{i:03}\":{i}")).collect::<Vec<_>>().join(",")
        );
        let partitions = BTreeMap::from([(
            "2024-03-17".to_owned(),
            partition(&[(1, &payload), (2, r#"{"f000":1,"f001":1,"q\"x":1}"#)]),
        )]);
        let declared =
            Declared { fields: BTreeMap::from([("f501".to_owned(), ColumnType::Scalar(Scalar::Varchar))]) };
        let schema = fold("t", "events_t", &partitions, &declared);
        let without: Vec<_> =
            schema.fields.iter().filter(|f| f.column.is_none()).map(|f| f.name.as_str()).collect();
        assert_eq!(without, ["f499", "f500", "q\"x"]);
        assert_eq!(schema.fields.iter().filter(|f| f.column.is_some()).count(), MAX_COLUMNS);
        assert!(schema.rescued);
        let f501 = schema.fields.iter().find(|f| f.name == "f501").unwrap();
        assert_eq!(
            (f501.column_type, f501.inferred, f501.declared),
            (ColumnType::Scalar(Scalar::Varchar), ColumnType::Scalar(Scalar::Bigint), true)
        );
    }

    #[test]
    fn view_names_go_to_types_in_the_order_of_their_first_event() {
        let names =
            view_names([("a", Some(5)), ("A", Some(3)), ("unique", Some(1)), ("a_2", Some(4)), ("b", None)]);
        assert_eq!(names["A"], "events_a");
        assert_eq!(names["a_2"], "events_a_2");
        assert_eq!(names["a"], "events_a_3");
        assert_eq!(names["unique"], "events_unique_2");
        assert_eq!(names["b"], "events_b");
    }
}
