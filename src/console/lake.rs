//! The console's Lake panel: every partition with its files, bytes and rows,
//! those that compaction would merge, and the rejected records by reason,
//! from the library's listing of a local lake.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{refuse, Console};
use crate::lake::listing::{self, PartitionSummary};

/// The lake as the panel shows it.
#[derive(Debug, serde::Serialize)]
pub struct Overview {
    pub lake: String,
    pub partitions: Vec<PartitionSummary>,
    /// Partitions of several files smaller on average than compaction's target:
    /// `eventlake compact` would merge them.
    pub small_file_partitions: usize,
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// When the newest compacted file was swapped in, and how many partitions are compacted.
    pub last_compaction: Option<String>,
}

/// Whether compaction would merge a partition's files.
pub fn has_small_files(partition: &PartitionSummary) -> bool {
    let target = u64::from(crate::compaction::DEFAULT_TARGET_MIB) << 20;
    partition.files > 1 && partition.bytes / (partition.files as u64) < target
}

pub async fn overview(State(console): State<Arc<Console>>) -> Response {
    let lake = console.lake.clone();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Overview> {
        let partitions = listing::summaries(&lake)?;
        let small_file_partitions = partitions.iter().filter(|partition| has_small_files(partition)).count();
        let rejected = listing::rejected_by_code(&lake)?;
        let last_compaction = crate::compaction::local::last_compaction(&lake)?.map(|(at, compacted)| {
            let at: chrono::DateTime<chrono::Utc> = at.into();
            format!("{} UTC ({compacted} partitions compacted)", at.format("%Y-%m-%d %H:%M:%S"))
        });
        Ok(Overview {
            lake: lake.display().to_string(),
            partitions,
            small_file_partitions,
            rejected,
            last_compaction,
        })
    })
    .await;
    match read {
        Ok(Ok(overview)) => Json(overview).into_response(),
        Ok(Err(error)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading the lake: {error}")),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading the lake: {error}")),
    }
}
