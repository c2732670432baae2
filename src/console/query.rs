//! The console's Query panel: one read-only statement at a time over
//! `events`, `events_unique` and the typed views, through `eventlake query`'s
//! engine and limits (memory, the deepest statement), stopped after a time
//! limit; the ready queries of `athena/queries/`; CSV export.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::{refuse, Console, QUERY_ON_S3};
use crate::query::{self, Format, QueryError};

/// What bounds one query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    /// Rows a result shows (CSV export takes them all).
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: query::Bounds::default_memory_bytes(),
            timeout: Duration::from_secs(60),
            max_rows: 10_000,
        }
    }
}

/// The ready queries, one click away: `athena/queries/`, embedded.
pub const READY_QUERIES: [(&str, &str); 8] = [
    ("distinct_users", include_str!("../../athena/queries/distinct_users.sql")),
    ("duplicates", include_str!("../../athena/queries/duplicates.sql")),
    ("events_per_type_per_day", include_str!("../../athena/queries/events_per_type_per_day.sql")),
    ("freshness", include_str!("../../athena/queries/freshness.sql")),
    ("funnel", include_str!("../../athena/queries/funnel.sql")),
    ("hourly_volume", include_str!("../../athena/queries/hourly_volume.sql")),
    ("latest_events", include_str!("../../athena/queries/latest_events.sql")),
    ("top_subtypes", include_str!("../../athena/queries/top_subtypes.sql")),
];

pub async fn ready_queries() -> Json<serde_json::Value> {
    Json(READY_QUERIES.iter().map(|(name, sql)| serde_json::json!({ "name": name, "sql": sql })).collect())
}

#[derive(serde::Deserialize)]
pub struct Statement {
    sql: String,
}

/// A result as the panel shows it.
#[derive(serde::Serialize)]
struct Shown {
    columns: Vec<Column>,
    rows: Vec<Vec<serde_json::Value>>,
    /// Rows shown.
    row_count: usize,
    /// The result had more rows than the panel shows (the rest were not computed).
    truncated: bool,
    elapsed_ms: u128,
}

#[derive(serde::Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

/// The most rows a CSV export holds (the rest are not computed; the response
/// says so in [`TRUNCATED_HEADER`]).
pub const MAX_CSV_ROWS: usize = 1_000_000;
/// Set to `true` on a CSV export cut at [`MAX_CSV_ROWS`].
pub const TRUNCATED_HEADER: &str = "x-eventlake-truncated";

pub async fn run(State(console): State<Arc<Console>>, Json(statement): Json<Statement>) -> Response {
    let started = Instant::now();
    match execute(&console, statement.sql, console.query_limits.max_rows).await {
        Ok((schema, batches, truncated)) => match shown(&schema, &batches, truncated, started) {
            Ok(shown) => Json(shown).into_response(),
            Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error:#}")),
        },
        Err(message) => refuse(StatusCode::BAD_REQUEST, &message),
    }
}

pub async fn run_csv(State(console): State<Arc<Console>>, Json(statement): Json<Statement>) -> Response {
    match execute(&console, statement.sql, MAX_CSV_ROWS).await {
        Ok((schema, batches, truncated)) => {
            let mut csv = Vec::new();
            match query::write(&mut csv, schema, &batches, Format::Csv) {
                Ok(()) => (
                    [
                        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                        (header::CONTENT_DISPOSITION, "attachment; filename=\"eventlake-query.csv\""),
                        (
                            header::HeaderName::from_static(TRUNCATED_HEADER),
                            if truncated { "true" } else { "false" },
                        ),
                    ],
                    csv,
                )
                    .into_response(),
                Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
            }
        }
        Err(message) => refuse(StatusCode::BAD_REQUEST, &message),
    }
}

/// Runs `sql` as `eventlake query` does ([`query::run_in_own_thread`]), one
/// query at a time (the slot is held until the query's thread ends, even when
/// the caller went away), keeping at most `max_rows` rows.
async fn execute(console: &Console, sql: String, max_rows: usize) -> Result<query::Limited, String> {
    let limits = console.query_limits;
    let lake = console.local_lake(QUERY_ON_S3)?.to_owned();
    let slot = Arc::clone(&console.query_slot)
        .acquire_owned()
        .await
        .map_err(|_| "the console is shutting down".to_owned())?;
    tokio::task::spawn_blocking(move || {
        let _one_at_a_time = slot;
        let bounds = query::Bounds { memory_bytes: limits.memory_bytes };
        query::run_in_own_thread(&lake, &sql, bounds, max_rows, Some(limits.timeout))
            .map_err(|error: QueryError| format!("{:#}", anyhow::Error::new(error)))
    })
    .await
    .map_err(|error| format!("the query stopped: {error}"))?
}

fn shown(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    truncated: bool,
    started: Instant,
) -> anyhow::Result<Shown> {
    let mut lines = Vec::new();
    query::write(&mut lines, schema.clone(), batches, Format::Json)?;
    let names: Vec<&str> = schema.fields().iter().map(|field| field.name().as_str()).collect();
    let mut rows = Vec::new();
    for line in lines.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)?;
        rows.push(
            names.iter().map(|name| object.get(*name).cloned().unwrap_or(serde_json::Value::Null)).collect(),
        );
    }
    Ok(Shown {
        columns: schema
            .fields()
            .iter()
            .map(|field| Column { name: field.name().clone(), data_type: field.data_type().to_string() })
            .collect(),
        row_count: rows.len(),
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_queries_are_every_file_of_athena_queries() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("athena/queries");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let embedded: Vec<String> = READY_QUERIES.iter().map(|(name, _)| format!("{name}.sql")).collect();
        assert_eq!(embedded, files);
        for (name, sql) in READY_QUERIES {
            assert_eq!(std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap(), sql);
        }
    }
}
