//! The console's Rejected and Trace panels: the lake's rejected records with
//! their reasons, a selection replayed through `eventlake replay`'s own code
//! (each event added at most once), and where one `event_uuid` is.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{refuse, Console};
use crate::core::event::TimeWindow;
use crate::lake::listing;

/// Rejected records listed at once.
const SHOWN: usize = 500;
/// Records one replay takes.
const MAX_REPLAYED: usize = 1_000;

pub async fn list(State(console): State<Arc<Console>>) -> Response {
    let lake = console.lake.clone();
    match tokio::task::spawn_blocking(move || listing::rejected_records(&lake, SHOWN, |_| true)).await {
        Ok(Ok((records, total))) => {
            Json(serde_json::json!({ "records": records, "total": total })).into_response()
        }
        Ok(Err(error)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading _rejected/: {error}")),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

#[derive(serde::Deserialize)]
pub struct Selection {
    ids: Vec<String>,
}

/// Replays the selected records: their `_rejected/` lines into a file of their
/// own, then [`crate::replay::into_local`] on it, under the console's lake write lock.
pub async fn replay(State(console): State<Arc<Console>>, Json(selection): Json<Selection>) -> Response {
    if selection.ids.is_empty() || selection.ids.len() > MAX_REPLAYED {
        return refuse(StatusCode::BAD_REQUEST, &format!("select 1 to {MAX_REPLAYED} records"));
    }
    let console = Arc::clone(&console);
    let replayed = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, (StatusCode, String)> {
        let bad = |error: std::io::Error| (StatusCode::BAD_REQUEST, error.to_string());
        let lines = listing::rejected_lines(&console.lake, &selection.ids).map_err(bad)?;
        let dir = tempfile::tempdir().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let path = dir.path().join("selection.ndjson");
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        std::fs::write(&path, text).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let _one_at_a_time = console.live.lake_writes.lock().map_err(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, "the lake's write lock is poisoned".to_owned())
        })?;
        let options = crate::replay::Options {
            window: TimeWindow { now_millis: crate::telemetry::now_millis(), ..TimeWindow::default() },
            dry_run: false,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let sources = [path.display().to_string()];
        let (replayed, _) = runtime
            .block_on(crate::replay::into_local(&console.lake, &sources, options, None))
            .map_err(|error| (StatusCode::CONFLICT, error.to_string()))?;
        let added = replayed.written.as_ref().map_or(0, |written| written.summary.written);
        let still: u64 = replayed.found.still_rejected.values().map(|(count, _)| count).sum();
        let reasons: Vec<String> =
            replayed.found.still_rejected.keys().map(|code| code.to_string()).collect();
        Ok(serde_json::json!({
            "added": added,
            "already": replayed.already,
            "still_rejected": still,
            "still_rejected_reasons": reasons,
        }))
    })
    .await;
    match replayed {
        Ok(Ok(result)) => Json(result).into_response(),
        Ok(Err((status, message))) => refuse(status, &message),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

#[derive(serde::Deserialize)]
pub struct TraceQuery {
    event_uuid: String,
}

pub async fn trace(State(console): State<Arc<Console>>, Query(query): Query<TraceQuery>) -> Response {
    let lake = console.lake.clone();
    match tokio::task::spawn_blocking(move || crate::lake::trace::trace(&lake, &query.event_uuid)).await {
        Ok(Ok(trace)) => {
            let first = trace.copies.iter().filter_map(|copy| copy.ingested_at).min();
            let summary = match (trace.copies.len(), trace.rejected.len()) {
                (0, 0) => format!("{} is not in the lake and no rejected record names it.", trace.event_uuid),
                (0, _) => format!("{} was rejected; it is not in the lake.", trace.event_uuid),
                (1, _) => format!("{} is in the lake once.", trace.event_uuid),
                (n, _) => format!(
                    "{} is in the lake {n} times: events_unique and compaction keep the copy ingested first.",
                    trace.event_uuid
                ),
            };
            let copies: Vec<serde_json::Value> = trace
                .copies
                .iter()
                .map(|copy| {
                    serde_json::json!({
                        "partition": copy.partition,
                        "file": copy.file,
                        "row": copy.row,
                        "ingested_at": copy.ingested_at.and_then(chrono::DateTime::from_timestamp_millis).map(|at| at.to_rfc3339()),
                        "first": trace.copies.len() > 1 && copy.ingested_at.is_some() && copy.ingested_at == first,
                    })
                })
                .collect();
            Json(serde_json::json!({
                "event_uuid": trace.event_uuid,
                "summary": summary,
                "copies": copies,
                "rejected": trace.rejected,
            }))
            .into_response()
        }
        Ok(Err(error @ crate::lake::trace::TraceError::NotUuid(_))) => {
            refuse(StatusCode::BAD_REQUEST, &error.to_string())
        }
        Ok(Err(error)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}
