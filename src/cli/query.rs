//! `eventlake query`: SQL over the local lake, with the same tables, view and
//! functions as Athena, so the files in `athena/queries/` run unchanged.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::query::{self, Format};

/// Run SQL over a local lake (tables `events`, `events_unique`).
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("statement").required(true).args(["sql", "file"]))]
pub struct Args {
    /// The lake directory (what `eventlake ingest --lake` wrote).
    #[arg(long, value_name = "DIR")]
    lake: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Read the SQL from this file (for example athena/queries/events_per_type_per_day.sql).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The SQL statement.
    #[arg(value_name = "SQL")]
    sql: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let sql = match (&args.sql, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, None) => anyhow::bail!("give SQL or --file FILE"),
    };
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (schema, batches) = runtime.block_on(async {
        let ctx = query::session(&args.lake).await?;
        query::run(&ctx, &sql).await
    })?;
    let mut out = std::io::stdout().lock();
    query::write(&mut out, schema, &batches, format)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
