//! `events_unique` as DataFusion runs it. The view's file (`athena/ddl/events_unique.sql`)
//! says which copy of a key is kept: the rows numbered 1 by
//! `row_number() OVER (PARTITION BY <key> ORDER BY <received order>)`. Athena runs that
//! window as a top-1 per key. DataFusion 55 keeps state per window partition (one per
//! key, a million on a 1M-event lake) and cannot move a filter on `event_type` below the
//! window, since the key spans types: `funnel` took 2.7 times DuckDB's time.
//!
//! So DataFusion runs the same rule as an aggregate and a join, built from the file's
//! own PARTITION BY and ORDER BY: per key, the file of its first copy in the received
//! order (`first_value(<path> ORDER BY <received order>)`), joined back to the key's
//! copy in that file. The order ends with the path and a file never holds a key twice
//! (the contract), so that copy is the one the window numbers 1. The aggregate reads
//! only the key's and the order's columns; a filter on the view's other columns reaches
//! the scan that reads them, so a query on one type reads only that type's payloads.
//!
//! The file stays the one owner of the rule: a view not in this form runs as written.

use datafusion::sql::sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement, TableFactor, WindowType};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Athena's hidden column holding the path of a row's file, which the view's tie
/// rule reads; DataFusion names it `input_file_name()`.
const ATHENA_PATH_COLUMN: &str = "\"$path\"";

/// The view as DataFusion runs it: the aggregate-and-join form of the file's window
/// when the file has the form the module header describes, else the file as written;
/// in both, Athena's `"$path"` is read as `input_file_name()`, the one spelling the
/// two engines do not share.
pub(super) fn for_datafusion(view_sql: &str) -> String {
    let sql = kept_copy_rule(view_sql).map_or_else(|| view_sql.to_owned(), |rule| rule.as_aggregate_join());
    in_datafusion_spelling(&sql)
}

/// `sql` with Athena's `"$path"` read as DataFusion's `input_file_name()`.
fn in_datafusion_spelling(sql: &str) -> String {
    sql.replace(ATHENA_PATH_COLUMN, "input_file_name()")
}

/// The SELECT of a view's SQL as written, as DataFusion reads it (`"$path"` as
/// `input_file_name()`), or `None` when the SQL is not one view.
pub(super) fn select_as_written(view_sql: &str) -> Option<String> {
    let statements = parse(view_sql)?;
    let [Statement::CreateView(view)] = statements.as_slice() else { return None };
    Some(in_datafusion_spelling(&view.query.to_string()))
}

/// The dedupe key's terms as the view's PARTITION BY spells them (the contract: the
/// canonical `event_uuid` and the created time to the millisecond). A file never
/// holds that key twice, which is what makes the rewrite exact: the window form is
/// rewritten only when its PARTITION BY holds both.
const DEDUPE_KEY_TERMS: [&str; 2] = ["event_uuid", "from_iso8601_timestamp(created_datetime)"];

/// What a view of the form `CREATE [OR REPLACE] VIEW <name> AS SELECT <columns> FROM
/// (SELECT *, row_number() OVER (PARTITION BY <key> ORDER BY <order>, <file>) AS
/// <number> FROM (SELECT *, "$path" AS <file> FROM <table>)) WHERE <number> = 1` says.
#[derive(Debug, PartialEq)]
struct KeptCopyRule {
    /// `OR REPLACE` was written.
    or_replace: bool,
    /// The view's name.
    name: String,
    /// The view's output columns, plain names.
    columns: Vec<String>,
    /// The table the rows come from.
    table: String,
    /// The alias of Athena's `"$path"`: the column holding each row's file.
    file: String,
    /// The window's PARTITION BY: the dedupe key, perhaps with more terms.
    key: Vec<String>,
    /// The window's ORDER BY terms (direction and null order included); the last
    /// is `file`.
    order: Vec<String>,
    /// The alias of the row number.
    number: String,
}

impl KeptCopyRule {
    /// The rows numbered: every row with its file.
    fn copies(&self) -> String {
        format!("SELECT *, {ATHENA_PATH_COLUMN} AS {file} FROM {table}", file = self.file, table = self.table)
    }

    /// The view in the window form, as its file would state it.
    fn as_window(&self) -> String {
        format!(
            "CREATE {or_replace}VIEW {name} AS SELECT {columns} FROM (SELECT *, row_number() OVER \
             (PARTITION BY {key} ORDER BY {order}) AS {number} FROM ({copies})) WHERE {number} = 1",
            or_replace = if self.or_replace { "OR REPLACE " } else { "" },
            name = self.name,
            columns = self.columns.join(", "),
            key = self.key.join(", "),
            order = self.order.join(", "),
            number = self.number,
            copies = self.copies(),
        )
    }

    /// The same rows as the window's: per key, the file of the first copy in the
    /// received order, and the copy of the key in that file (there is one: a file
    /// never holds a key twice). `IS NOT DISTINCT FROM`, as the window's partitions
    /// treat a null like any other value (and DataFusion hashes a join on it only
    /// when every term is one).
    fn as_aggregate_join(&self) -> String {
        let kept_key = |i: usize| format!("kept_key_{i}");
        let key_columns = self.key.iter().enumerate().map(|(i, key)| format!("{key} AS {}", kept_key(i)));
        let key_matches = self
            .key
            .iter()
            .enumerate()
            .map(|(i, key)| format!("({key} IS NOT DISTINCT FROM {})", kept_key(i)));
        format!(
            "CREATE OR REPLACE VIEW {name} AS\nWITH copies AS ({copies})\nSELECT {columns}\nFROM copies\n\
             JOIN (SELECT {key_columns}, first_value({file} ORDER BY {order}) AS kept_file \
             FROM copies GROUP BY {key}) kept_copies\nON {key_matches} AND ({file} IS NOT DISTINCT FROM kept_file)",
            name = self.name,
            copies = self.copies(),
            columns = self.columns.join(", "),
            key_columns = key_columns.collect::<Vec<_>>().join(", "),
            file = self.file,
            order = self.order.join(", "),
            key = self.key.join(", "),
            key_matches = key_matches.collect::<Vec<_>>().join(" AND "),
        )
    }
}

/// The rule of a view in the window form, or `None` for any other SQL. The parts
/// are read from the parsed view, then the window form is stated again from them
/// alone and must parse to the same view: a clause the parts do not carry (a
/// QUALIFY, a `* REPLACE`, a LIMIT, a WHERE on the rows numbered) fails that.
fn kept_copy_rule(view_sql: &str) -> Option<KeptCopyRule> {
    let [view_statement] = parse(view_sql)?.try_into().ok()?;
    let Statement::CreateView(view) = &view_statement else { return None };
    let (columns, numbered) = select_from(&view.query)?;
    let (numbered_items, copies) = select_from(derived(numbered)?)?;
    let [_, SelectItem::ExprWithAlias { expr: Expr::Function(function), alias: number }] = numbered_items
    else {
        return None;
    };
    let Some(WindowType::WindowSpec(window)) = &function.over else { return None };
    let (copies_items, table) = select_from(derived(copies)?)?;
    let [_, SelectItem::ExprWithAlias { alias: file, .. }] = copies_items else { return None };
    let TableFactor::Table { name: table, .. } = table else { return None };
    let columns = columns
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(column)) if column != number => Some(column.to_string()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let rule = KeptCopyRule {
        or_replace: view.or_replace,
        name: view.name.to_string(),
        columns,
        table: table.to_string(),
        file: file.to_string(),
        key: window.partition_by.iter().map(ToString::to_string).collect(),
        order: window.order_by.iter().map(ToString::to_string).collect(),
        number: number.to_string(),
    };
    let holds_the_dedupe_key = DEDUPE_KEY_TERMS.iter().all(|term| rule.key.iter().any(|key| key == term));
    let ends_with_the_file = window.order_by.last().is_some_and(|last| last.expr.to_string() == rule.file);
    let same_view = parse(&rule.as_window())
        .is_some_and(|stated| stated.len() == 1 && stated[0].to_string() == view_statement.to_string());
    (holds_the_dedupe_key && ends_with_the_file && same_view).then_some(rule)
}

fn parse(sql: &str) -> Option<Vec<Statement>> {
    Parser::parse_sql(&GenericDialect {}, sql).ok()
}

/// A `SELECT`'s items and its one relation, whatever else it has (the round trip
/// in `kept_copy_rule` rejects the rest).
fn select_from(query: &Query) -> Option<(&[SelectItem], &TableFactor)> {
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let [from] = select.from.as_slice() else { return None };
    Some((select.projection.as_slice(), &from.relation))
}

/// The query of a derived table.
fn derived(relation: &TableFactor) -> Option<&Query> {
    let TableFactor::Derived { subquery, .. } = relation else { return None };
    Some(subquery)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: &str = crate::query::EVENTS_UNIQUE_VIEW;

    #[test]
    fn the_views_file_has_the_window_form_and_gives_its_rule() {
        let rule = kept_copy_rule(VIEW).expect("the window form");
        assert_eq!(rule.name, "events_unique");
        assert_eq!(rule.key, ["created_date", "event_uuid", "from_iso8601_timestamp(created_datetime)"]);
        assert_eq!(rule.order, ["ingested_at NULLS FIRST", "source_file"]);
        assert_eq!(rule.file, "source_file");
        assert_eq!(rule.table, "events");
        assert_eq!(rule.columns.first().map(String::as_str), Some("event_uuid"));
        assert_eq!(rule.columns.last().map(String::as_str), Some("created_date"));
    }

    #[test]
    fn the_aggregate_join_matches_on_the_key_and_the_first_copys_file() {
        let sql = for_datafusion(VIEW);
        assert!(!sql.contains("row_number"), "{sql}");
        assert!(!sql.contains("$path"), "{sql}");
        assert!(
            sql.contains("WITH copies AS (SELECT *, input_file_name() AS source_file FROM events)"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "first_value(source_file ORDER BY ingested_at NULLS FIRST, source_file) AS kept_file"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "GROUP BY created_date, event_uuid, from_iso8601_timestamp(created_datetime)) kept_copies"
            ),
            "{sql}"
        );
        assert!(sql.ends_with("(source_file IS NOT DISTINCT FROM kept_file)"), "{sql}");
    }

    /// A view in the window form with the dedupe key; each case below changes one
    /// part of it.
    const ACCEPTED: &str = "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER \
        (PARTITION BY event_uuid, from_iso8601_timestamp(created_datetime) ORDER BY t DESC, f) AS n \
        FROM (SELECT *, \"$path\" AS f FROM events)) WHERE n = 1";

    #[test]
    fn any_other_view_runs_as_written() {
        assert!(kept_copy_rule(ACCEPTED).is_some());
        let key = "PARTITION BY event_uuid, from_iso8601_timestamp(created_datetime)";
        let changes = [
            ("WHERE n = 1", "WHERE n = 2"),
            ("row_number()", "rank()"),
            ("row_number()", "row_number(a)"),
            // A key coarser than the dedupe key: a file may hold two of its rows.
            (key, "PARTITION BY event_uuid"),
            (key, ""),
            ("SELECT a FROM", "SELECT a + 1 FROM"),
            ("SELECT a FROM", "SELECT a, n FROM"),
            ("VIEW v AS", "VIEW v (b) AS"),
            // An order that does not end with the file: copies of a key could tie.
            ("ORDER BY t DESC, f)", "ORDER BY f, t DESC)"),
            ("ORDER BY t DESC, f)", "ORDER BY t DESC, f ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"),
            ("SELECT *, row_number()", "SELECT * REPLACE (upper(a) AS a), row_number()"),
            ("WHERE n = 1", "WHERE n = 1 QUALIFY count(*) OVER () > 5"),
            ("WHERE n = 1", "WHERE n = 1 LIMIT 5"),
            ("WHERE n = 1", "WHERE n = 1 AND a > 0"),
            ("FROM events)", "FROM events WHERE random() < 0.5)"),
            ("FROM events)", "FROM events LIMIT 5)"),
            ("FROM events)", "FROM events JOIN other ON true)"),
            ("\"$path\" AS f", "a AS f"),
            ("FROM events)) WHERE", "FROM events) copies (x, y)) WHERE"),
        ];
        let views = changes.map(|(from, to)| {
            assert!(ACCEPTED.contains(from), "{from}");
            ACCEPTED.replacen(from, to, 1)
        });
        for view in views.iter().map(String::as_str).chain(["SELECT 1", "not sql at all ("]) {
            assert_eq!(kept_copy_rule(view), None, "{view}");
            assert_eq!(for_datafusion(view), in_datafusion_spelling(view));
        }
    }
}
