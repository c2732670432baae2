//! `eventlake compact`: the partitions of a lake that received no new file for a
//! while, each merged into few large files with one row per dedupe key
//! ([`crate::compaction`]), swapped in atomically for readers: by exchanging
//! directories locally, by switching the Glue partition on S3. The command
//! parses, runs the library's compaction and renders its outcomes.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::compaction::lease::Lease;
use crate::compaction::local::{self, LocalOptions};
use crate::compaction::{self, Outcome, Run, Tally};
use crate::lake::storage::Location;
use crate::views::publish::{compacted_in, publish};

use super::summary::{self, bytes, count};

/// Compact the partitions of a lake: few large files, one row per event.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lake: a directory, or `s3://bucket/prefix` with `--database`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    lake: String,
    /// The Glue database of an S3 lake: its partitions are listed there and
    /// switched to their compacted files.
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// The Glue table of the lake's events.
    #[arg(long, value_name = "NAME", default_value = "events", requires = "database")]
    table: String,
    /// Only partitions with no file newer than this (`0s`, `30m`, `2h`, `7d`):
    /// a partition still receiving events is left alone.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    older_than: Duration,
    /// S3: how long the files a compaction superseded stay after the switch, for
    /// queries planned before it; a later run deletes them.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
    grace: Duration,
    /// Size of the files written, in MiB (a partition smaller than this becomes one file).
    #[arg(long, value_name = "MIB", default_value_t = crate::compaction::DEFAULT_TARGET_MIB, value_parser = clap::value_parser!(u32).range(1..=1024))]
    target_mib: u32,
    /// List the partitions that would be compacted, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// S3: accept a `--grace` shorter than 30 minutes. A query Athena planned
    /// before a switch reads the superseded files for as long as it runs; deleting
    /// them sooner can fail it. Only for a lake nobody is querying.
    #[arg(long)]
    force: bool,
}

/// The shortest `--grace` an S3 compaction takes without `--force`: Athena's
/// default DML query timeout, the longest a query planned before a switch can
/// go on reading the superseded files. (The deployed compactor's grace is whole
/// days: `compaction_grace_days`, at least 1.)
const MIN_S3_GRACE: Duration = Duration::from_secs(30 * 60);

/// `30s`, `15m`, `2h`, `7d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 => Ok(Duration::from_secs(n.saturating_mul(seconds))),
        _ => {
            Err(format!("{text:?} is not a duration: a whole number and s, m, h or d, e.g. 0s, 30m, 2h, 7d"))
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    let root = match location {
        Location::Local(root) => {
            anyhow::ensure!(
                args.database.is_none(),
                "--database needs an s3:// lake: Glue partitions point at S3"
            );
            root
        }
        Location::S3 { bucket, prefix } => return run_s3(&args, bucket, prefix),
    };
    let started = Instant::now();
    let options = LocalOptions {
        older_than: args.older_than,
        target_bytes: (args.target_mib as usize) << 20,
        dry_run: args.dry_run,
    };
    let Run { outcomes, .. } = local::compact_dir(&root, options)?;
    // What the merges counted of each partition they rewrote: the views need not
    // read those partitions again.
    let counted: std::collections::BTreeMap<_, _> = outcomes
        .iter()
        .filter_map(|(partition, outcome)| match outcome {
            Outcome::Compacted { merged, .. } => Some((
                partition.clone(),
                crate::views::stats::WrittenCounts {
                    files: merged
                        .files
                        .iter()
                        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
                        .collect(),
                    stats: merged.counts.clone(),
                    whole_partition: true,
                },
            )),
            _ => None,
        })
        .collect();
    let code = report(compaction::Run { outcomes, files_stranded: 0 }, started.elapsed(), args.dry_run);
    if !args.dry_run {
        let (views, changes) = super::views::keep_current(&root, Some(&counted))?;
        print!("typed views        {views}\n{changes}");
    }
    Ok(code)
}

/// Compacts an S3 lake through its Glue table ([`crate::compaction`]).
fn run_s3(args: &Args, bucket: String, prefix: String) -> anyhow::Result<ExitCode> {
    let Some(database) = &args.database else {
        anyhow::bail!(
            "an s3:// lake needs --database: its partitions are compacted by switching their Glue locations"
        )
    };
    anyhow::ensure!(
        args.grace >= MIN_S3_GRACE || args.force,
        "--grace {}s is shorter than {} minutes: queries planned before a switch may still read the files it \
         deletes. Add --force if nobody is querying this lake.",
        args.grace.as_secs(),
        MIN_S3_GRACE.as_secs() / 60
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let run = runtime.block_on(async {
        let config = crate::aws::load_config().await;
        let store = crate::aws::s3::S3Store::new(crate::aws::s3::s3_client(&config), bucket, prefix);
        let catalog =
            crate::catalog::Catalog::new(crate::catalog::glue_client(&config), database, &args.table);
        let options = compaction::Options {
            older_than: args.older_than,
            target_bytes: (args.target_mib as usize) << 20,
            dry_run: args.dry_run,
            now_millis: crate::telemetry::now_millis(),
            created_since: None,
            grace: args.grace,
        };
        if args.dry_run {
            return Ok((compaction::compact_lake(&store, &catalog, options, None, || true).await?, None));
        }
        let holder = format!("eventlake compact on {}, process {}", host_name(), std::process::id());
        let lease = Lease::acquire(&store, &holder, LEASE_TTL, options.now_millis).await?;
        let run = compaction::compact_lake(&store, &catalog, options, Some(&lease), || true).await;
        // The typed views, as the deployed compactor keeps them after its runs.
        let views = match &run {
            Ok(run) => Some(publish(&store, Some(&catalog), &compacted_in(run)).await),
            Err(_) => None,
        };
        lease.release().await?;
        Ok::<_, anyhow::Error>((run?, views))
    })?;
    let (run, views) = run;
    let mut code = report(run, started.elapsed(), args.dry_run);
    match views {
        Some(Ok(published)) => print!("typed views        {}", super::views::published_line(&published)),
        Some(Err(error)) => {
            eprintln!("eventlake: typed views not published: {:#}", anyhow::Error::from(error));
            code = ExitCode::FAILURE;
        }
        None => {}
    }
    Ok(code)
}

/// Prints the partitions a dry run would compact, the failures on stderr, then
/// the summary table; the exit status says whether a partition failed.
/// How long the lease lasts past its last renewal (before each partition and
/// each switch): a run killed holds the lake at most this long.
const LEASE_TTL: Duration = Duration::from_secs(15 * 60);

/// This machine's name, for the lease a second runner is shown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unnamed host".into())
}

fn report(run: compaction::Run, elapsed: Duration, dry_run: bool) -> ExitCode {
    let tally = Tally::of(&run);
    for (partition, outcome) in &run.outcomes {
        match outcome {
            Outcome::Planned { files, bytes: size } => {
                println!("{}  {files} files, {}", partition.directory(), bytes(*size))
            }
            Outcome::Failed { message, .. } => eprintln!("eventlake: {}: {message}", partition.directory()),
            _ => {}
        }
    }
    print!("{}", render(&tally, elapsed, dry_run));
    if tally.partitions_failed_total() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The summary table of a run.
fn render(tally: &Tally, elapsed: Duration, dry_run: bool) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mut rows = vec![
        (if dry_run { "to compact" } else { "compacted" }.to_owned(), count(tally.partitions_compacted)),
        ("already compact".to_owned(), count(tally.partitions_already_compact)),
        ("too recent".to_owned(), count(tally.partitions_too_recent)),
        ("changed meanwhile".to_owned(), count(tally.partitions_deferred)),
        ("failed".to_owned(), count(tally.partitions_failed_total())),
        ("files in".to_owned(), count(tally.files_in)),
        ("bytes in".to_owned(), bytes(tally.bytes_in)),
    ];
    if !dry_run {
        rows.extend([
            ("files out".to_owned(), count(tally.files_out)),
            ("bytes out".to_owned(), bytes(tally.bytes_out)),
            ("rows in".to_owned(), count(tally.rows_in)),
            ("rows out".to_owned(), count(tally.rows_out)),
            ("duplicates removed".to_owned(), count(tally.duplicates_removed)),
        ]);
        if tally.files_stranded > 0 {
            rows.push(("stranded files handed over".to_owned(), count(tally.files_stranded)));
        }
        rows.extend([
            ("elapsed".to_owned(), format!("{seconds:.2} s")),
            ("throughput".to_owned(), format!("{}/s", bytes((tally.bytes_in as f64 / seconds) as u64))),
        ]);
    }
    summary::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "2", "2w", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
