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

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, GroupByExpr, Query, SelectItem, SetExpr, Statement, TableFactor, WindowType,
};
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
    sql.replace(ATHENA_PATH_COLUMN, "input_file_name()")
}

/// What a view of the form `SELECT <columns> FROM (SELECT *, row_number() OVER
/// (PARTITION BY <key> ORDER BY <order>) AS n FROM (<copies>)) WHERE n = 1` says.
#[derive(Debug, PartialEq)]
struct KeptCopyRule {
    /// `CREATE [OR REPLACE] VIEW <name>`.
    name: String,
    /// The view's output columns, as written.
    columns: Vec<String>,
    /// The rows numbered: the innermost query, as written.
    copies: String,
    /// The window's PARTITION BY: the dedupe key.
    key: Vec<String>,
    /// The window's ORDER BY terms (direction and null order included).
    order: Vec<String>,
    /// The column holding each row's file path, the order's last term.
    file: String,
}

impl KeptCopyRule {
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
            copies = self.copies,
            columns = self.columns.join(", "),
            key_columns = key_columns.collect::<Vec<_>>().join(", "),
            file = self.file,
            order = self.order.join(", "),
            key = self.key.join(", "),
            key_matches = key_matches.collect::<Vec<_>>().join(" AND "),
        )
    }
}

/// The rule of a view in the window form, or `None` for any other SQL.
fn kept_copy_rule(view_sql: &str) -> Option<KeptCopyRule> {
    let statements = Parser::parse_sql(&GenericDialect {}, view_sql).ok()?;
    let [Statement::CreateView(view)] = statements.as_slice() else { return None };
    let (columns, numbered, kept_where) = select_from_subquery(&view.query)?;
    let (numbered_items, copies, no_filter) = select_from_subquery(numbered)?;
    if no_filter.is_some() {
        return None;
    }
    let [SelectItem::Wildcard(_), SelectItem::ExprWithAlias { expr: Expr::Function(function), alias }] =
        numbered_items
    else {
        return None;
    };
    let Some(WindowType::WindowSpec(window)) = &function.over else { return None };
    let only_first = kept_where.is_some_and(|filter| filter.to_string() == format!("{alias} = 1"));
    let plain_row_number = function.name.to_string().eq_ignore_ascii_case("row_number")
        && matches!(&function.args, FunctionArguments::List(list) if list.args.is_empty())
        && function.filter.is_none()
        && window.window_name.is_none()
        && window.window_frame.is_none();
    let file = window.order_by.last().and_then(|last| file_column(copies, &last.expr));
    if !only_first || !plain_row_number || window.partition_by.is_empty() {
        return None;
    }
    let columns = columns
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(Expr::Identifier(column)) => Some(column.to_string()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(KeptCopyRule {
        name: view.name.to_string(),
        columns,
        copies: copies.to_string(),
        key: window.partition_by.iter().map(ToString::to_string).collect(),
        order: window.order_by.iter().map(ToString::to_string).collect(),
        file: file?,
    })
}

/// `term`, when it is the alias `copies` gives Athena's `"$path"`: no two copies of
/// a key tie on an order that ends with it, since a file never holds a key twice.
fn file_column(copies: &Query, term: &Expr) -> Option<String> {
    let SetExpr::Select(select) = copies.body.as_ref() else { return None };
    let Expr::Identifier(alias) = term else { return None };
    let named =
        select.projection.iter().any(|item| item.to_string() == format!("{ATHENA_PATH_COLUMN} AS {alias}"));
    named.then(|| alias.to_string())
}

/// A plain `SELECT <items> FROM (<subquery>) [WHERE <filter>]`: its items, subquery
/// and filter.
fn select_from_subquery(query: &Query) -> Option<(&[SelectItem], &Query, Option<&Expr>)> {
    let plain = query.with.is_none() && query.order_by.is_none() && query.limit_clause.is_none();
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let [from] = select.from.as_slice() else { return None };
    let TableFactor::Derived { lateral: false, subquery, .. } = &from.relation else { return None };
    let simple = select.distinct.is_none()
        && matches!(&select.group_by, GroupByExpr::Expressions(keys, modifiers) if keys.is_empty() && modifiers.is_empty())
        && select.having.is_none()
        && from.joins.is_empty();
    (plain && simple).then_some((select.projection.as_slice(), subquery.as_ref(), select.selection.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_views_file_has_the_window_form_and_gives_its_rule() {
        let rule = kept_copy_rule(super::super::EVENTS_UNIQUE_VIEW).expect("the window form");
        assert_eq!(rule.name, "events_unique");
        assert_eq!(rule.key, ["created_date", "event_uuid", "from_iso8601_timestamp(created_datetime)"]);
        assert_eq!(rule.order, ["ingested_at NULLS FIRST", "source_file"]);
        assert_eq!(rule.file, "source_file");
        assert_eq!(rule.copies, "SELECT *, \"$path\" AS source_file FROM events");
        assert_eq!(rule.columns.first().map(String::as_str), Some("event_uuid"));
        assert_eq!(rule.columns.last().map(String::as_str), Some("created_date"));
    }

    #[test]
    fn the_aggregate_join_matches_on_the_key_and_the_first_copys_file() {
        let sql = for_datafusion(super::super::EVENTS_UNIQUE_VIEW);
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

    #[test]
    fn any_other_view_runs_as_written() {
        let views = [
            // Not numbered 1.
            "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER (PARTITION BY a ORDER BY f) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 2",
            // Another window function.
            "CREATE VIEW v AS SELECT a FROM (SELECT *, rank() OVER (PARTITION BY a ORDER BY f) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1",
            // No PARTITION BY.
            "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER (ORDER BY f) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1",
            // An expression among the columns.
            "CREATE VIEW v AS SELECT a + 1 FROM (SELECT *, row_number() OVER (PARTITION BY a ORDER BY f) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1",
            // An order that does not end with the file: copies of a key could tie.
            "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER (PARTITION BY a ORDER BY b) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1",
            // A frame.
            "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER (PARTITION BY a ORDER BY f ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1",
            "SELECT 1",
            "not sql at all (",
        ];
        let accepted = "CREATE VIEW v AS SELECT a FROM (SELECT *, row_number() OVER (PARTITION BY a ORDER BY f) AS n FROM (SELECT *, \"$path\" AS f FROM t)) WHERE n = 1";
        assert!(kept_copy_rule(accepted).is_some(), "each view below differs from this one in one way");
        for view in views {
            assert_eq!(kept_copy_rule(view), None, "{view}");
            assert_eq!(for_datafusion(view), view.replace(ATHENA_PATH_COLUMN, "input_file_name()"));
        }
    }
}
