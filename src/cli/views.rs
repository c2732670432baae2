//! `eventlake views`: the lake's typed views brought up to date, printed with
//! what changed.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::lake::storage::Location;
use crate::views::local::{self, TypeReport};
use crate::views::schema::Change;

/// Bring the typed views (one per event type, payload fields as columns) up to
/// date with what the lake holds, write `_schemas/`, and print each view with
/// its columns and what changed since the last run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lake directory.
    #[arg(long, value_name = "DIR")]
    lake: String,
    /// Print only the views that changed.
    #[arg(long)]
    changes_only: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = match Location::parse(&args.lake).map_err(anyhow::Error::msg)? {
        Location::Local(root) => root,
        Location::S3 { .. } => anyhow::bail!(
            "views of an s3:// lake are kept by the deployed stack (the compactor publishes them to Glue); \
             `eventlake views` runs on a local lake"
        ),
    };
    let reports = local::refresh(&root, None)?;
    let mut out = String::new();
    for report in &reports {
        if args.changes_only && report.changes.is_empty() {
            continue;
        }
        out.push_str(&render(report));
    }
    let changed = reports.iter().filter(|r| !r.changes.is_empty()).count();
    let read: usize = reports.iter().map(|r| r.partitions_read).sum();
    let partitions: usize = reports.iter().map(|r| r.partitions).sum();
    out.push_str(&format!(
        "{} views, {changed} changed; {read} of {partitions} partitions read; schemas in {}\n",
        reports.len(),
        PathBuf::from(&root).join(crate::views::SCHEMAS_DIR).display()
    ));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Brings a local lake's views up to date after a command wrote into it
/// (`written`: what the writer counted, see [`local::refresh`]); the line to
/// print.
pub fn keep_current(
    root: &std::path::Path,
    written: Option<&std::collections::BTreeMap<crate::core::partition::Partition, crate::views::stats::WrittenCounts>>,
) -> anyhow::Result<String> {
    let reports = local::refresh(root, written)?;
    let changed = reports.iter().filter(|r| !r.changes.is_empty()).count();
    Ok(format!(
        "{} up to date, {changed} changed{}",
        reports.len(),
        if changed > 0 { " (eventlake views shows what changed)" } else { "" }
    ))
}

/// One view: its name, rows, columns with types, and its changes.
pub fn render(report: &TypeReport) -> String {
    let schema = &report.schema;
    let mut out = format!("{} (event type {}, {} rows)\n", schema.view, schema.event_type, schema.rows);
    for field in &schema.fields {
        let Some(column) = &field.column else { continue };
        let declared = if field.declared { " (declared)" } else { "" };
        out.push_str(&format!("  {column:<32} {:<18} {:>12} values{declared}\n", field.column_type.athena(), field.count));
    }
    if schema.rescued {
        out.push_str("  _rescued                         varchar            (declared fields whose value did not fit)\n");
    }
    let payload_only = schema.fields.iter().filter(|f| f.column.is_none()).count();
    if payload_only > 0 {
        out.push_str(&format!("  {payload_only} fields in payload only (listed in the schema file)\n"));
    }
    for change in &report.changes {
        out.push_str(&match change {
            Change::NewField { name, column, column_type, count, example } => format!(
                "  + new field {name:?} as {column} {} ({count} values, e.g. {example})\n",
                column_type.athena()
            ),
            Change::Widened { name, from, to, count, example } => format!(
                "  ~ {name:?} widened from {} to {} ({count} values, e.g. {example}); declare its type in _schemas/{}.declared.json to keep {}\n",
                from.name(),
                to.name(),
                schema.event_type,
                from.name()
            ),
        });
    }
    out
}
