//! The console's Lake panel: every partition with its files, bytes and rows,
//! those that compaction would merge, and the rejected records by reason,
//! from the library's listing of a local lake.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{refuse, Console, LakeAt};
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
    let read = match &console.lake {
        LakeAt::Local(dir) => {
            let lake = dir.clone();
            tokio::task::spawn_blocking(move || local_overview(&lake))
                .await
                .unwrap_or_else(|error| Err(anyhow::anyhow!("{error}")))
        }
        LakeAt::S3 { store, catalog, config, failed } => {
            s3_overview(store, catalog, config, failed.as_deref(), console.lake.describe()).await
        }
    };
    match read {
        Ok(overview) => Json(overview).into_response(),
        Err(error) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading the lake: {error:#}")),
    }
}

fn local_overview(lake: &std::path::Path) -> anyhow::Result<Overview> {
    let partitions = listing::summaries(lake)?;
    let small_file_partitions = partitions.iter().filter(|partition| has_small_files(partition)).count();
    let rejected = listing::rejected(lake, 0, |_| true)?.by_code;
    let last_compaction = crate::compaction::local::last_compaction(lake)?
        .map(|(at, compacted)| when_compacted(at.into(), compacted));
    Ok(Overview {
        lake: lake.display().to_string(),
        partitions,
        small_file_partitions,
        rejected,
        last_compaction,
    })
}

async fn s3_overview(
    store: &crate::aws::s3::S3Store,
    catalog: &crate::catalog::Catalog,
    config: &crate::aws::SdkConfig,
    failed: Option<&str>,
    described: String,
) -> anyhow::Result<Overview> {
    let (partitions, newest) = super::s3::partitions(store, catalog).await?;
    let small_file_partitions = partitions.iter().filter(|partition| has_small_files(partition)).count();
    let rejected = super::s3::rejected(store, 0).await?;
    let mut by_code = rejected.by_code;
    let mut cut = rejected.cut;
    if let Some(source) = failed {
        let failed = super::s3::failed(config, source, 0).await?;
        cut |= failed.cut;
        for (code, count) in failed.by_code {
            *by_code.entry(code).or_insert(0) += count;
        }
    }
    if cut {
        by_code
            .insert(format!("(the first {} MiB of _rejected/ read)", super::s3::MAX_REJECTED_BYTES >> 20), 0);
    }
    let last_compaction = newest.and_then(|(millis, compacted)| {
        Some(when_compacted(chrono::DateTime::from_timestamp_millis(millis)?, compacted))
    });
    Ok(Overview { lake: described, partitions, small_file_partitions, rejected: by_code, last_compaction })
}

fn when_compacted(at: chrono::DateTime<chrono::Utc>, compacted: usize) -> String {
    format!("{} UTC ({compacted} partitions compacted)", at.format("%Y-%m-%d %H:%M:%S"))
}
