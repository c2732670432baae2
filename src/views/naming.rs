//! Names of typed views and their columns (CONTRACT section 6).

use std::collections::HashSet;

/// The columns every typed view starts with, in order.
pub const LEADING_COLUMNS: [&str; 8] = [
    "event_uuid",
    "event_name",
    "event_subtype",
    "created_at",
    "created_datetime",
    "created_ts",
    "ingested_at",
    "created_date",
];

/// The column of fields that did not fit their declared type.
pub const RESCUED_COLUMN: &str = "_rescued";

/// Names the views of the lake's base tables take, which no typed view may.
pub const RESERVED_VIEW_NAMES: [&str; 2] = ["events", "events_unique"];

/// `events_` + the event type in lower case, `-` and `.` as `_`.
pub fn plain_view_name(event_type: &str) -> String {
    let body: String = event_type
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    format!("events_{body}")
}

/// A field name made a column name: lower case, every character outside
/// `a-z 0-9 _` as `_`, a leading digit prefixed with `_` (an empty name is `_`).
pub fn plain_column_name(field: &str) -> String {
    let mut name: String = field
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Gives each of `plain` names, in order, the name itself or, when it is
/// taken (by `taken` or by an earlier one), itself + `_2`, `_3`, ...: the
/// first suffix that is free.
pub fn deduplicate<'a>(
    plain: impl IntoIterator<Item = String>,
    taken: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut used: HashSet<String> = taken.into_iter().map(str::to_owned).collect();
    plain
        .into_iter()
        .map(|name| {
            let chosen = if used.contains(&name) {
                (2..)
                    .map(|n| format!("{name}_{n}"))
                    .find(|candidate| !used.contains(candidate))
                    .unwrap_or_default()
            } else {
                name
            };
            used.insert(chosen.clone());
            chosen
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_follow_the_contract() {
        assert_eq!(plain_view_name("Payment-v2"), "events_payment_v2");
        assert_eq!(plain_view_name("a.b_C"), "events_a_b_c");
        let names =
            deduplicate(["events_a".into(), "events_a".into(), "events_unique".into()], RESERVED_VIEW_NAMES);
        assert_eq!(names, ["events_a", "events_a_2", "events_unique_2"]);
    }

    #[test]
    fn column_names_follow_the_contract() {
        assert_eq!(plain_column_name("Amount"), "amount");
        assert_eq!(plain_column_name("order-id.v2"), "order_id_v2");
        assert_eq!(plain_column_name("3d"), "_3d");
        assert_eq!(plain_column_name("prix€"), "prix_");
        assert_eq!(plain_column_name(""), "_");
        let names = deduplicate(
            ["amount".into(), "amount".into(), "created_at".into(), "amount_2".into()],
            LEADING_COLUMNS,
        );
        assert_eq!(names, ["amount", "amount_2", "created_at_2", "amount_2_2"]);
    }
}
