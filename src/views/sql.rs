//! A typed view as Athena SQL (engine v3), the one text both Athena and
//! `eventlake query` run (locally through `query::athena_sql`).
//!
//! Every column reads the payload with `json_extract_scalar` or `json_extract`
//! and converts with a form that gives NULL, never an error, on a value that
//! does not fit: until the next run widens the type, a new kind of value reads
//! NULL in its column (it stays in `payload`), and no query fails on it.

use super::ladder::{ColumnType, Scalar};
use super::naming::{LEADING_COLUMNS, RESCUED_COLUMN};
use super::schema::TypeSchema;

/// `CREATE OR REPLACE VIEW <view> AS SELECT ...` for `schema`.
pub fn create_view(schema: &TypeSchema) -> String {
    format!("CREATE OR REPLACE VIEW {} AS\n{}", quoted(&schema.view), select(schema))
}

/// The view's SELECT.
pub fn select(schema: &TypeSchema) -> String {
    let mut columns: Vec<String> = LEADING_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    let mut misfits = Vec::new();
    for field in &schema.fields {
        let Some(column) = &field.column else { continue };
        let path = json_path(&field.name);
        let value = value_of(field.column_type, &path);
        columns.push(format!("{value} AS {}", quoted(column)));
        if field.declared {
            let text = format!("json_format(json_extract(payload, {path}))");
            misfits.push(format!(
                "CASE WHEN COALESCE({text}, 'null') <> 'null' AND ({value}) IS NULL THEN {} || {text} END",
                sql_string(&json_name(&field.name)),
            ));
        }
    }
    if schema.rescued {
        let parts = if misfits.is_empty() { "NULL".to_owned() } else { misfits.join(",\n        ") };
        columns.push(format!(
            "NULLIF('{{' || concat_ws(',',\n        {parts}) || '}}', '{{}}') AS {}",
            quoted(RESCUED_COLUMN)
        ));
    }
    format!(
        "SELECT {}\nFROM events_unique\nWHERE event_type = {}",
        columns.join(",\n       "),
        sql_string(&schema.event_type)
    )
}

/// The column's value: the field converted to `column_type`, NULL when it is
/// missing, `null`, or does not fit.
fn value_of(column_type: ColumnType, path: &str) -> String {
    let scalar = format!("json_extract_scalar(payload, {path})");
    let json = format!("json_extract(payload, {path})");
    match column_type {
        ColumnType::Scalar(Scalar::Boolean) => {
            format!("CASE json_format({json}) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END")
        }
        ColumnType::Scalar(Scalar::Bigint) => format!("TRY_CAST({scalar} AS BIGINT)"),
        ColumnType::Scalar(Scalar::Double) => format!("TRY_CAST({scalar} AS DOUBLE)"),
        ColumnType::Scalar(Scalar::Timestamp) => timestamp_of(&scalar),
        ColumnType::Scalar(Scalar::Varchar) => scalar,
        ColumnType::Array(Scalar::Timestamp) => {
            format!("transform(TRY_CAST({json} AS ARRAY(VARCHAR)), element -> {})", timestamp_of("element"))
        }
        ColumnType::Array(element) => {
            format!("TRY_CAST({json} AS ARRAY({}))", element.sql().to_ascii_uppercase())
        }
        ColumnType::Json => format!("NULLIF(json_format({json}), 'null')"),
    }
}

/// The RFC 3339 instants the ladder calls timestamps, as a regular expression
/// Java's and Rust's engines read alike (`ladder::rfc3339_millis` also checks
/// the calendar; `try` turns a day that does not exist into NULL).
pub const RFC3339_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// An RFC 3339 text as a UTC timestamp with milliseconds; NULL if it is not
/// one. Athena's `from_iso8601_timestamp` reads more ISO 8601 forms than
/// DataFusion's (`2024`, `2024-03-17T15`): only the ladder's form is read.
fn timestamp_of(text: &str) -> String {
    format!(
        "CASE WHEN regexp_like({text}, '{RFC3339_PATTERN}') THEN try(CAST(from_iso8601_timestamp({text}) AT TIME ZONE 'UTC' AS TIMESTAMP(3))) END"
    )
}

/// The JSON path of a top-level field, in the bracket form both engines read:
/// `'$["name"]'` (names with a quote or backslash get no column).
fn json_path(name: &str) -> String {
    sql_string(&format!("$[\"{name}\"]"))
}

/// A field name as a JSON string literal (the key in `_rescued`).
fn json_name(name: &str) -> String {
    let mut out = Vec::new();
    crate::core::json::write_string(name, &mut out);
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push(':');
    text
}

/// A SQL string literal.
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A quoted SQL identifier (column names are `a-z 0-9 _`, some of them keywords).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
