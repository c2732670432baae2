//! The `eventlake` command line: argument parsing and one module per verb.
//!
//! This is the program's edge: errors become `anyhow` here and are printed with
//! their causes; every rule lives in the library modules the verbs call.

mod catalog;
mod compact;
#[cfg(feature = "query")]
mod console;
mod cost;
mod generate;
mod ingest;
mod interrupt;
#[cfg(feature = "query")]
mod query;
mod replay;
mod schema;
mod send;
mod summary;
#[cfg(feature = "query")]
mod tail;
mod transform;
mod views;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::core::event::TimeWindow;

/// Open data-lake ETL for JSON event streams: the AWS pipeline, on a laptop.
#[derive(Debug, Parser)]
#[command(name = "eventlake", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Transform(transform::Args),
    Generate(generate::Args),
    Ingest(ingest::Args),
    #[cfg(feature = "query")]
    Query(query::Args),
    Catalog(catalog::Args),
    Schema(schema::Args),
    Send(send::Args),
    Cost(cost::Args),
    Replay(replay::Args),
    Compact(compact::Args),
    Views(views::Args),
    #[cfg(feature = "query")]
    Tail(tail::Args),
    #[cfg(feature = "query")]
    Console(console::Args),
}

/// Parses the command line, runs the verb, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(statement_not_an_option(std::env::args_os().collect()));
    crate::telemetry::init_json_logs(std::io::stderr);
    let result = match cli.command {
        Command::Transform(args) => transform::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Ingest(args) => ingest::run(args),
        #[cfg(feature = "query")]
        Command::Query(args) => query::run(args),
        Command::Catalog(args) => catalog::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Send(args) => send::run(args),
        Command::Cost(args) => cost::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Views(args) => views::run(args),
        #[cfg(feature = "query")]
        Command::Tail(args) => tail::run(args),
        #[cfg(feature = "query")]
        Command::Console(args) => console::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "eventlake: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `query`'s SQL given as an argument that starts with `-` and holds white space
/// (`--timeout=1\nSELECT …`, `-- a comment\nSELECT …`) is a statement: no
/// option's name or value of ours holds white space. A `--` goes before it, so
/// that the parser does not take it for an option; `query --lake L -- "<sql>"`
/// is the form that needs no such reading.
fn statement_not_an_option(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if args.get(1).is_none_or(|verb| verb != "query") || args.iter().any(|arg| arg == "--") {
        return args;
    }
    let looks_like_sql = |arg: &std::ffi::OsString| {
        arg.to_str().is_some_and(|text| text.starts_with('-') && text.contains(char::is_whitespace))
    };
    if let Some(at) = args.iter().position(looks_like_sql) {
        args.insert(at, "--".into());
    }
    args
}

/// The plausibility window for `created_at` (CONTRACT section 1 allows any time
/// up to year 9999; off unless asked for).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WindowArgs {
    /// Reject events created more than DAYS before now (a producer clock that is off).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    max_age_days: Option<u32>,
    /// Reject events claiming to be created more than DAYS after now.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    max_future_days: Option<u32>,
}

impl WindowArgs {
    /// The window around `now_millis`.
    pub fn at(&self, now_millis: i64) -> TimeWindow {
        TimeWindow { now_millis, max_age_days: self.max_age_days, max_future_days: self.max_future_days }
    }
}

/// `eventlake generate | head` closes the pipe early; that is not an error.
/// Refuses to write into the S3 lake of `store` without its Glue catalog once it
/// has compacted partitions: a file written into `events/<partition>/` of a
/// compacted partition is not read until it is settled into the partition's
/// location, which needs the catalog (the compactor would hand it over only on
/// its next run).
async fn ensure_catalog_for_compacted(
    store: &crate::aws::s3::S3Store,
    database: Option<&str>,
) -> anyhow::Result<()> {
    if database.is_some() {
        return Ok(());
    }
    let compacted = store.list_directories(crate::compaction::COMPACTED_DIR).await?;
    anyhow::ensure!(
        compacted.is_empty(),
        "{} has compacted partitions (under {}): files written without the catalog would not be read until the \
         next compaction run hands them over. Pass --database NAME (the lake's Glue database) so they are \
         registered and settled into their partitions' locations",
        store.url(""),
        store.url(crate::compaction::COMPACTED_DIR)
    );
    Ok(())
}

/// The text of the file at `path` (an option's argument: `--file`, `--prices`),
/// refused past `limit` bytes, which `what` names (`/dev/zero` must not fill
/// memory).
fn read_capped(path: &std::path::Path, limit: u64, what: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= limit,
        "{} is larger than {} bytes, the most {what} may be",
        path.display(),
        limit
    );
    Ok(text)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
