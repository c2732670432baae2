//! `eventlake query`: SQL over the local lake, with the same tables, view and
//! functions as Athena, so the files in `athena/queries/` run unchanged.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::query::{self, Format};

/// The largest `--file` (a SQL statement over a few MB is not one a person wrote).
const MAX_SQL_FILE_BYTES: u64 = 4 << 20;

/// Run SQL over a local lake (tables `events`, `events_unique`).
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("statement").required(true).args(["sql", "file"]))]
pub struct Args {
    /// The lake directory (what `eventlake ingest --lake` wrote).
    #[arg(long, value_name = "DIR", value_parser = lake_dir)]
    lake: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Read the SQL from this file (for example athena/queries/events_per_type_per_day.sql).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Memory for the engine (sorts, aggregates, joins, string functions); a
    /// query that needs more fails with an error. Default: half of this machine's.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..))]
    memory_mib: Option<u64>,
    /// Stop the query with an error after this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// The SQL statement: any text, one that starts with a `--` comment included.
    #[arg(value_name = "SQL", allow_hyphen_values = true)]
    sql: Option<String>,
}

fn lake_dir(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("the lake path is empty: name a directory (`.` for this one)".into());
    }
    Ok(PathBuf::from(text))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => super::read_capped(file, MAX_SQL_FILE_BYTES, "a SQL file")?,
        (None, None) => anyhow::bail!("give SQL or --file FILE"),
    };
    let format = args.format;
    let bounds = query::Bounds {
        memory_bytes: args
            .memory_mib
            .map_or_else(query::Bounds::default_memory_bytes, |mib| (mib as usize) << 20),
    };
    if let Some(seconds) = args.timeout {
        // A query that does not yield (a runaway recursive CTE) cannot be
        // cancelled from inside; a watchdog thread ends the process instead.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(seconds));
            let _ = writeln!(std::io::stderr(), "eventlake: error: the query ran past --timeout {seconds} s");
            std::process::exit(1);
        });
    }
    let (schema, batches, _) = query::run_in_own_thread(&args.lake, &sql, bounds, usize::MAX, None)?;
    let mut out = std::io::stdout().lock();
    query::write(&mut out, schema, &batches, format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
