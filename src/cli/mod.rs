//! The `eventlake` command line: argument parsing and one module per verb.
//!
//! This is the program's edge: errors become `anyhow` here and are printed with
//! their causes; every rule lives in the library modules the verbs call.

mod catalog;
mod generate;
mod ingest;
#[cfg(feature = "query")]
mod query;
mod schema;
mod transform;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

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
}

/// Parses the command line, runs the verb, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_json_logs(std::io::stderr);
    let result = match cli.command {
        Command::Transform(args) => transform::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Ingest(args) => ingest::run(args),
        #[cfg(feature = "query")]
        Command::Query(args) => query::run(args),
        Command::Catalog(args) => catalog::run(args),
        Command::Schema(args) => schema::run(args),
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

/// Structured JSON logs, one object per line, filtered by `RUST_LOG` (default `info`).
/// Used by the Lambdas and the CLI alike so both log the same fields.
pub fn init_json_logs<W>(writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init();
}

/// `eventlake generate | head` closes the pipe early; that is not an error.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
