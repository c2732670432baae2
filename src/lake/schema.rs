//! The lake's one schema (CONTRACT section 4), defined once as an Arrow schema.
//!
//! The Parquet writer uses [`arrow_schema`]; the Glue table (Terraform reads
//! [`glue_json`]) and the Athena DDL ([`athena_ddl`]) are derived from it, and tests
//! fail when a copy elsewhere drifts.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{json, Value};

use crate::core::partition;

/// Partition columns: they live in the object path, not inside the files.
pub const PARTITION_COLUMNS: [(&str, &str); 2] = [
    (partition::KEYS[0], "first part of event_name"),
    (partition::KEYS[1], "UTC date of created_at, YYYY-MM-DD"),
];

/// The kinds of value the lake's columns hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int64,
    /// An instant in milliseconds, UTC-adjusted: Parquet `TIMESTAMP(MILLIS, true)`,
    /// Athena `timestamp`.
    TimestampMillis,
}

impl Kind {
    fn arrow(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::Int64 => DataType::Int64,
            Kind::TimestampMillis => timestamp_millis(),
        }
    }

    /// The Athena (Hive DDL) type.
    fn athena(self) -> &'static str {
        match self {
            Kind::Text => "string",
            Kind::Int64 => "bigint",
            Kind::TimestampMillis => "timestamp",
        }
    }
}

/// The Arrow type of the timestamp columns: milliseconds, UTC.
pub fn timestamp_millis() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(TIMEZONE.into()))
}

/// The time zone the timestamp columns are adjusted to.
pub const TIMEZONE: &str = "UTC";

/// The file columns, in file order: name, kind, nullable, description. Columns
/// are only ever appended (CONTRACT section 4): a file written before one was
/// added lacks it, and readers see null.
const COLUMNS: [(&str, Kind, bool, &str); 8] = [
    ("event_uuid", Kind::Text, false, "canonical lowercase hyphenated UUID"),
    ("event_name", Kind::Text, false, "event name as received"),
    ("event_subtype", Kind::Text, true, "second part of event_name, null when absent or empty"),
    ("created_at", Kind::Int64, false, "Unix seconds of created_datetime, floored"),
    ("created_datetime", Kind::Text, false, "ISO 8601 UTC creation time, milliseconds when given"),
    ("payload", Kind::Text, false, "compact JSON object of every other field, values exact"),
    (
        "created_ts",
        Kind::TimestampMillis,
        true,
        "created_datetime as a timestamp, milliseconds, UTC; null in files written before it",
    ),
    (
        "ingested_at",
        Kind::TimestampMillis,
        true,
        "when the record reached the lake writer (staged object delivered, or ingest run started); null in files written before it",
    ),
];

/// The Arrow schema of every Parquet file in the lake.
pub fn arrow_schema() -> SchemaRef {
    let fields: Vec<Field> =
        COLUMNS.iter().map(|(name, kind, nullable, _)| Field::new(*name, kind.arrow(), *nullable)).collect();
    Arc::new(Schema::new(fields))
}

/// A column as Glue and Athena see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub athena_type: &'static str,
    pub comment: &'static str,
}

/// The file columns, in file order, with their Athena types.
pub fn columns() -> Vec<Column> {
    COLUMNS
        .iter()
        .map(|(name, kind, _, comment)| Column { name, athena_type: kind.athena(), comment })
        .collect()
}

/// The partition columns (strings in the object path).
pub fn partition_columns() -> Vec<Column> {
    PARTITION_COLUMNS.iter().map(|&(name, comment)| Column { name, athena_type: "string", comment }).collect()
}

/// Glue table columns and partition keys as JSON, the shape Terraform's
/// `aws_glue_catalog_table` takes (`name`, `type`, `comment`).
pub fn glue_json() -> Value {
    let as_json = |columns: Vec<Column>| -> Vec<Value> {
        columns.iter().map(|c| json!({"name": c.name, "type": c.athena_type, "comment": c.comment})).collect()
    };
    json!({"columns": as_json(columns()), "partition_keys": as_json(partition_columns())})
}

/// `CREATE EXTERNAL TABLE` for Athena over the lake at `location` (`s3://…/events/`).
pub fn athena_ddl(table: &str, location: &str) -> String {
    let render = |columns: Vec<Column>| -> Vec<String> {
        let width = columns.iter().map(|c| c.name.len() + 2).max().unwrap_or(0);
        columns
            .iter()
            .map(|c| {
                format!("  {:<width$} {} COMMENT '{}'", format!("`{}`", c.name), c.athena_type, c.comment)
            })
            .collect()
    };
    let (columns, partitions) = (render(columns()), render(partition_columns()));
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{}\n)\nPARTITIONED BY (\n{}\n)\nSTORED AS PARQUET\nLOCATION '{location}'\nTBLPROPERTIES ('parquet.compression' = 'ZSTD');\n",
        columns.join(",\n"),
        partitions.join(",\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_contract_order_and_types() {
        let schema = arrow_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "event_uuid",
                "event_name",
                "event_subtype",
                "created_at",
                "created_datetime",
                "payload",
                "created_ts",
                "ingested_at"
            ]
        );
        assert_eq!(
            schema.field_with_name("ingested_at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(schema.field_with_name("created_at").unwrap().data_type(), &DataType::Int64);
        assert!(schema.field_with_name("event_subtype").unwrap().is_nullable());
        assert!(!schema.field_with_name("payload").unwrap().is_nullable());
    }

    #[test]
    fn glue_and_ddl_are_derived_from_the_arrow_schema() {
        let glue = glue_json();
        assert_eq!(
            glue["columns"][3],
            json!({"name": "created_at", "type": "bigint", "comment": "Unix seconds of created_datetime, floored"})
        );
        assert_eq!(glue["partition_keys"][1]["name"], "created_date");
        let ddl = athena_ddl("events", "s3://bucket/lake/events/");
        assert!(ddl.contains("`created_at`       bigint COMMENT"), "{ddl}");
        assert!(ddl.contains("PARTITIONED BY (\n  `event_type`   string"), "{ddl}");
        assert!(ddl.contains("LOCATION 's3://bucket/lake/events/'"));
    }
}
