//! The console's Rejected and Trace panels: the lake's rejected records with
//! their reasons, a selection replayed through `eventlake replay`'s own code
//! (each event added at most once), and where one `event_uuid` is.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{refuse, Console, LakeAt};
use crate::core::event::TimeWindow;
use crate::lake::listing;

/// Rejected records listed at once.
const SHOWN: usize = 500;
/// Records one replay takes.
const MAX_REPLAYED: usize = 1_000;

pub async fn list(State(console): State<Arc<Console>>) -> Response {
    let listed = match &console.lake {
        LakeAt::Local(dir) => {
            let lake = dir.clone();
            tokio::task::spawn_blocking(move || listing::rejected(&lake, SHOWN, |_| true))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|read| read.map(|found| (found.records, found.total)).map_err(anyhow::Error::from))
        }
        LakeAt::S3 { store, config, failed, .. } => s3_records(store, config, failed.as_deref()).await,
    };
    match listed {
        Ok((records, total)) => {
            Json(serde_json::json!({ "records": records, "total": total })).into_response()
        }
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading _rejected/: {error:#}")),
    }
}

#[derive(serde::Deserialize)]
pub struct Selection {
    ids: Vec<String>,
}

/// Replays the selected records: their `_rejected/` lines into a file of their
/// own, then `eventlake replay`'s code on it: [`crate::replay::into_local`]
/// under the console's lake write lock, or, on S3, through the Glue table.
pub async fn replay(State(console): State<Arc<Console>>, Json(selection): Json<Selection>) -> Response {
    if selection.ids.is_empty() || selection.ids.len() > MAX_REPLAYED {
        return refuse(StatusCode::BAD_REQUEST, &format!("select 1 to {MAX_REPLAYED} records"));
    }
    let options = crate::replay::Options {
        window: TimeWindow { now_millis: crate::telemetry::now_millis(), ..TimeWindow::default() },
        dry_run: false,
    };
    let replayed = match &console.lake {
        LakeAt::Local(_) => {
            let console = Arc::clone(&console);
            tokio::task::spawn_blocking(move || replay_local(&console, &selection.ids, options))
                .await
                .unwrap_or_else(|error| Err((StatusCode::INTERNAL_SERVER_ERROR, error.to_string())))
        }
        LakeAt::S3 { store, catalog, config, failed } => {
            replay_s3(store, catalog, config, failed.as_deref(), &selection.ids, options).await
        }
    };
    match replayed {
        Ok(replayed) => {
            let added = replayed.written.as_ref().map_or(0, |written| written.summary.written);
            let still: u64 = replayed.found.still_rejected.values().map(|(count, _)| count).sum();
            let reasons: Vec<&String> = replayed.found.still_rejected.keys().collect();
            Json(serde_json::json!({
                "added": added,
                "already": replayed.already,
                "still_rejected": still,
                "still_rejected_reasons": reasons,
            }))
            .into_response()
        }
        Err((status, message)) => refuse(status, &message),
    }
}

type Failed = (StatusCode, String);

fn internal(error: impl std::fmt::Display) -> Failed {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// The selected lines as a source file in a directory of their own.
fn selection_file(lines: &[Vec<u8>]) -> Result<(tempfile::TempDir, String), Failed> {
    let dir = tempfile::tempdir().map_err(internal)?;
    let path = dir.path().join("selection.ndjson");
    let mut text = lines.join(&b'\n');
    text.push(b'\n');
    std::fs::write(&path, text).map_err(internal)?;
    let path = path.display().to_string();
    Ok((dir, path))
}

fn replay_local(
    console: &Console,
    ids: &[String],
    options: crate::replay::Options,
) -> Result<crate::replay::Replayed, Failed> {
    let Some(lake) = console.lake.local() else { return Err(internal("not a local lake")) };
    let lines =
        listing::rejected_lines(lake, ids).map_err(|error| (StatusCode::BAD_REQUEST, error.to_string()))?;
    let (_dir, source) = selection_file(&lines)?;
    let _one_at_a_time =
        console.live.lake_writes.lock().map_err(|_| internal("the lake's write lock is poisoned"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(internal)?;
    let (replayed, _) = runtime
        .block_on(crate::replay::into_local(lake, &[source], options, None))
        .map_err(|error| (StatusCode::CONFLICT, error.to_string()))?;
    Ok(replayed)
}

/// The rejected records under `_rejected/`, then the failed ones under `failed`.
async fn s3_records(
    store: &crate::aws::s3::S3Store,
    config: &crate::aws::SdkConfig,
    failed: Option<&str>,
) -> anyhow::Result<(Vec<listing::RejectedRecord>, u64)> {
    let mut found = super::s3::rejected(store, SHOWN).await?;
    if let Some(source) = failed {
        let more = super::s3::failed(config, source, SHOWN.saturating_sub(found.records.len())).await?;
        found.records.extend(more.records);
        found.total += more.total;
    }
    Ok((found.records, found.total))
}

async fn replay_s3(
    store: &crate::aws::s3::S3Store,
    catalog: &crate::catalog::Catalog,
    config: &crate::aws::SdkConfig,
    failed: Option<&str>,
    ids: &[String],
    options: crate::replay::Options,
) -> Result<crate::replay::Replayed, Failed> {
    let bad = |error: anyhow::Error| (StatusCode::BAD_REQUEST, format!("{error:#}"));
    let (failed_ids, rejected_ids): (Vec<String>, Vec<String>) =
        ids.iter().cloned().partition(|id| id.starts_with(super::s3::FAILED_ID));
    let mut lines = super::s3::rejected_lines(store, &rejected_ids).await.map_err(bad)?;
    if !failed_ids.is_empty() {
        let source =
            failed.ok_or_else(|| bad(anyhow::anyhow!("no --failed prefix: no failed record to replay")))?;
        lines.extend(super::s3::failed_lines(config, source, &failed_ids).await.map_err(bad)?);
    }
    let (_dir, source) = selection_file(&lines)?;
    let target = crate::replay::Target::Glue { store, catalog };
    crate::replay::replay(store.clone(), &target, &[source], options, Some(config), Some(store))
        .await
        .map_err(|error| (StatusCode::CONFLICT, error.to_string()))
}

#[derive(serde::Deserialize)]
pub struct TraceQuery {
    event_uuid: String,
}

pub async fn trace(State(console): State<Arc<Console>>, Query(query): Query<TraceQuery>) -> Response {
    let lake = match console.local_lake(super::TRACE_ON_S3) {
        Ok(lake) => lake.to_owned(),
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
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
