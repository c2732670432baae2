//! The scheduled compaction of the deployed lake: an EventBridge schedule invokes
//! the `parquet-writer` binary's compactor mode (`EVENTLAKE_HANDLER=compactor`,
//! its own function and role in `terraform/compaction.tf`), which compacts the
//! partitions of the last few days that received no file for a while, and
//! deletes the files earlier runs superseded once their grace period is over
//! ([`crate::compaction`]). Partitions not started when the function's time runs
//! short are left for the next run; one that fails is counted and the others go on.

use std::time::Duration;

use crate::aws::s3::S3Store;
use crate::catalog::Catalog;
use crate::compaction::lease::{Lease, LeaseError};
use crate::compaction::{self, CompactorError, Options, Tally};
use crate::core::timestamp::EventTime;
use crate::views::publish::{compacted_in, publish};

/// A setting the function cannot run without, or one it cannot read.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?}: {why}")]
    Bad { name: &'static str, value: String, why: &'static str },
}

/// Settings, read once per container.
#[derive(Debug, Clone)]
pub struct Config {
    pub lake_bucket: String,
    pub lake_prefix: String,
    pub glue_database: String,
    pub glue_table: String,
    /// Only partitions with no file newer than this (`COMPACT_OLDER_THAN_SECONDS`).
    pub older_than: Duration,
    /// The size of the files written (`COMPACT_TARGET_MIB`).
    pub target_mib: u32,
    /// Partitions of today and this many days before (`COMPACT_LOOKBACK_DAYS`).
    pub lookback_days: u32,
    /// No partition is started with less than this left before the timeout
    /// (`COMPACT_SECONDS_PER_PARTITION`).
    pub seconds_per_partition: Duration,
    /// How long superseded files stay after a switch (`COMPACT_GRACE_SECONDS`).
    pub grace: Duration,
}

impl Config {
    /// `LAKE_BUCKET` and `GLUE_DATABASE` (required), `LAKE_PREFIX` (default
    /// empty), `GLUE_TABLE` (default `events`), `COMPACT_OLDER_THAN_SECONDS`
    /// (default 3600), `COMPACT_TARGET_MIB` (default 128, 1–1024),
    /// `COMPACT_LOOKBACK_DAYS` (default 3), `COMPACT_SECONDS_PER_PARTITION`
    /// (default 120), `COMPACT_GRACE_SECONDS` (default 86400).
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    fn from_vars(var: impl Fn(&'static str) -> Option<String>) -> Result<Self, SettingError> {
        let number =
            |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>, why| match var(name) {
                None => Ok(default),
                Some(value) => value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or(SettingError::Bad { name, value, why }),
            };
        Ok(Config {
            lake_bucket: var("LAKE_BUCKET").ok_or(SettingError::Missing("LAKE_BUCKET"))?,
            lake_prefix: var("LAKE_PREFIX").unwrap_or_default(),
            glue_database: var("GLUE_DATABASE").ok_or(SettingError::Missing("GLUE_DATABASE"))?,
            glue_table: var("GLUE_TABLE").unwrap_or_else(|| "events".into()),
            older_than: Duration::from_secs(number(
                "COMPACT_OLDER_THAN_SECONDS",
                3600,
                0..=u64::from(u32::MAX),
                "a whole number of seconds",
            )?),
            target_mib: number("COMPACT_TARGET_MIB", 128, 1..=1024, "a whole number of MiB, 1 to 1024")?
                as u32,
            lookback_days: number("COMPACT_LOOKBACK_DAYS", 3, 0..=3650, "a whole number of days, 0 to 3650")?
                as u32,
            seconds_per_partition: Duration::from_secs(number(
                "COMPACT_SECONDS_PER_PARTITION",
                120,
                1..=900,
                "a whole number of seconds, 1 to 900",
            )?),
            grace: Duration::from_secs(number(
                "COMPACT_GRACE_SECONDS",
                86_400,
                0..=u64::from(u32::MAX),
                "a whole number of seconds",
            )?),
        })
    }
}

/// How long the lease outlasts the function's timeout (clocks differ a little).
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The handler state: built once per container.
pub struct Handler {
    store: S3Store,
    catalog: Catalog,
    config: Config,
}

impl Handler {
    pub fn new(store: S3Store, catalog: Catalog, config: Config) -> Self {
        Handler { store, catalog, config }
    }

    /// One scheduled run (the event's content is not used) in the name of
    /// `holder` (the function and its request): takes the lake's compaction lease
    /// until the function's timeout (a run that finds another runner's lease ends
    /// with an empty report and a warning), then compacts what it can while
    /// `remaining` (the time before the timeout) leaves at least
    /// [`Config::seconds_per_partition`]. An error only when the lake cannot be
    /// listed: a failed partition is in the report, not an error.
    pub async fn run(
        &self,
        holder: &str,
        now_millis: i64,
        remaining: impl Fn() -> Duration,
    ) -> Result<Tally, CompactorError> {
        let today = EventTime::from_millis(now_millis).map(EventTime::created_date);
        let options = Options {
            older_than: self.config.older_than,
            target_bytes: (self.config.target_mib as usize) << 20,
            dry_run: false,
            now_millis,
            created_since: today.map(|today| today.days_before(self.config.lookback_days)),
            grace: self.config.grace,
        };
        // Held until the timeout: a run killed then holds the lake no longer.
        let ttl = remaining() + LEASE_MARGIN;
        let lease = match Lease::acquire(&self.store, holder, ttl, now_millis).await {
            Ok(lease) => lease,
            Err(error @ LeaseError::Held { .. }) => {
                tracing::warn!(error = %error, "compaction run skipped");
                return Ok(Tally::default());
            }
            Err(error) => return Err(error.into()),
        };
        let keep_going = || remaining() >= self.config.seconds_per_partition;
        let run =
            compaction::compact_lake(&self.store, &self.catalog, options, Some(&lease), keep_going).await;
        let mut report = run.as_ref().map(Tally::of).unwrap_or_default();
        if let Ok(run) = &run {
            // Under the lease still: one run at a time folds the counts.
            if lease.renew(crate::telemetry::now_millis()).await.is_ok() {
                self.publish_views(run, &mut report).await;
            }
        }
        lease.release().await?;
        run?;
        tracing::info!(
            compacted = report.partitions_compacted,
            already_compact = report.partitions_already_compact,
            too_recent = report.partitions_too_recent,
            deferred = report.partitions_deferred,
            failed = report.partitions_failed_total(),
            files_in = report.files_in,
            files_out = report.files_out,
            duplicates_removed = report.duplicates_removed,
            files_stranded = report.files_stranded,
            schema_changes = report.schema_changes,
            fields_widened = report.fields_widened,
            types_at_column_budget = report.types_at_column_budget,
            "compaction run"
        );
        Ok(report)
    }

    /// Folds what the writers and this run's compactions counted into the typed
    /// views and publishes the changed ones to Glue; a failure is logged and
    /// counted as a failed partition (reason `views`), never fails the run.
    async fn publish_views(&self, run: &compaction::Run, report: &mut Tally) {
        match publish(&self.store, Some(&self.catalog), &compacted_in(run)).await {
            Ok(published) => {
                report.schema_changes = published.schema_changes();
                report.fields_widened = published.fields_widened();
                report.types_at_column_budget = published.types_at_column_budget();
                tracing::info!(
                    views = published.types.len(),
                    views_published = published.views_published,
                    observations = published.observations_read,
                    "typed views"
                );
            }
            Err(error) => {
                tracing::error!(error = %crate::telemetry::error_chain(&error), "typed views not published; the next run tries again");
                *report.partitions_failed.entry("views").or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&'static str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
    }

    #[test]
    fn settings_have_defaults_and_bad_ones_are_named() {
        let config = Config::from_vars(vars(&[("LAKE_BUCKET", "b"), ("GLUE_DATABASE", "d")])).unwrap();
        assert_eq!(config.older_than, Duration::from_secs(3600));
        assert_eq!((config.target_mib, config.lookback_days), (128, 3));
        assert_eq!(config.glue_table, "events");
        let missing = Config::from_vars(vars(&[("LAKE_BUCKET", "b")])).unwrap_err();
        assert_eq!(missing.to_string(), "environment variable GLUE_DATABASE is not set");
        for (name, value) in [
            ("COMPACT_TARGET_MIB", "0"),
            ("COMPACT_LOOKBACK_DAYS", "-1"),
            ("COMPACT_SECONDS_PER_PARTITION", "901"),
        ] {
            let error =
                Config::from_vars(vars(&[("LAKE_BUCKET", "b"), ("GLUE_DATABASE", "d"), (name, value)]))
                    .unwrap_err()
                    .to_string();
            assert!(error.starts_with(&format!("environment variable {name}=")), "{error}");
        }
    }
}
