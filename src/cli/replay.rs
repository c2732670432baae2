//! `eventlake replay`: the command line of [`crate::replay`], which re-validates
//! records that did not reach the lake and writes the good ones in, minus what
//! the lake already holds.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::aws::{self, s3::S3Store};
use crate::catalog::{self, Catalog};
use crate::lake::storage::Location;
use crate::replay::{self, Found, Options, Replayed, Target};
use crate::telemetry;

/// Replay records that did not reach the lake: Firehose's error output, the
/// lake's rejected records, or events fixed by hand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root: a local directory or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|s3://bucket/prefix")]
    lake: String,
    /// Files, directories or s3://bucket/prefix locations of Firehose error records
    /// (`errors/...`), the lake's `_rejected/` records or NDJSON events; gzip is
    /// detected and read transparently.
    #[arg(required = true, value_name = "SOURCE")]
    sources: Vec<String>,
    #[command(flatten)]
    window: super::WindowArgs,
    /// Register the partitions the replay adds in this Glue database (S3 lakes).
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// The Glue table.
    #[arg(long, value_name = "NAME", default_value = "events", requires = "database")]
    table: String,
    /// Show what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Unreadable lines printed (all are counted).
const EXAMPLES: usize = replay::EXAMPLES;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    let window = args.window.at(telemetry::now_millis());
    let options = Options { window, dry_run: args.dry_run };
    let config = match (&location, args.sources.iter().any(|source| source.starts_with("s3://"))) {
        (Location::S3 { .. }, _) | (_, true) => Some(aws::load_config().await),
        _ => None,
    };
    let report = match &location {
        Location::Local(dir) => {
            anyhow::ensure!(
                args.database.is_none(),
                "--database needs an s3:// lake: Glue partitions point at S3"
            );
            let (replayed, views) = replay::into_local(dir, &args.sources, options, config.as_ref()).await?;
            let report = render(&replayed, None);
            match views {
                None => report,
                Some(reports) => {
                    let (views, changes) = super::views::render_changes(dir, &reports);
                    format!("{report}typed views: {views}\n{changes}")
                }
            }
        }
        Location::S3 { bucket, prefix } => {
            let config = config.as_ref().expect("loaded above for an s3:// lake");
            let store = S3Store::new(aws::s3::s3_client(config), bucket, prefix);
            let catalog = args
                .database
                .as_ref()
                .map(|database| Catalog::new(catalog::glue_client(config), database, &args.table));
            if !args.dry_run {
                super::ensure_catalog_for_compacted(&store, args.database.as_deref()).await?;
            }
            let target = match &catalog {
                Some(catalog) => Target::Glue { store: &store, catalog },
                None => Target::Directories,
            };
            let replayed =
                replay::replay(store.clone(), &target, &args.sources, options, Some(config), Some(&store))
                    .await?;
            render(&replayed, target.catalog())
        }
    };
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// What a replay did, as printed: the first pass, what was (or would be)
/// written, what is still rejected.
fn render(replayed: &Replayed, catalog: Option<&Catalog>) -> String {
    let mut out = report_head(&replayed.found, replayed.already, &replayed.inputs);
    match &replayed.written {
        None => {
            out += &format!(
                "dry run: would write {} events into {} partitions:\n",
                replayed.adding,
                replayed.added_partitions.len()
            );
            for partition in &replayed.added_partitions {
                out += &format!("  {}\n", partition.directory());
            }
        }
        Some(written) => {
            out += &report_written(&written.summary, written.registered, catalog);
            if written.moved > 0 {
                out += &format!("moved into compacted partitions: {} files\n", written.moved);
            }
        }
    }
    out + &report_rejected(&replayed.found)
}

fn report_head(found: &Found, already: u64, names: &[String]) -> String {
    let rejected: u64 = found.still_rejected.values().map(|(count, _)| count).sum();
    format!(
        "replay: {} lines in {} inputs: {} events pass today's rules ({} already in the lake), {} still rejected, \
         {} lines unreadable\n",
        found.lines,
        names.len(),
        found.passing,
        already,
        rejected,
        found.unreadable.len(),
    )
}

fn report_written(
    summary: &crate::lake::writer::Summary,
    registered: usize,
    catalog: Option<&Catalog>,
) -> String {
    let mut out = format!(
        "written: {} events into {} partitions ({} files){}\n",
        summary.written,
        summary.touched.len(),
        summary.files,
        if summary.duplicates > 0 {
            format!(", {} duplicates among the replayed", summary.duplicates)
        } else {
            String::new()
        },
    );
    if let Some(catalog) = catalog {
        out += &format!("registered: {registered} new partitions in {}\n", catalog.name());
    }
    if summary.rejected_total() > 0 {
        out += &format!("rejected while writing (kept under _rejected/): {:?}\n", summary.rejected);
    }
    out
}

fn report_rejected(found: &Found) -> String {
    let mut out = String::new();
    for (code, (count, examples)) in &found.still_rejected {
        out += &format!("still rejected, {code}: {count}\n");
        for example in examples {
            out += &format!("  {example}\n");
        }
    }
    for line in found.unreadable.iter().take(EXAMPLES) {
        out += &format!("unreadable: {line}\n");
    }
    out
}
