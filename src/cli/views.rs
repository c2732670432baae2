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
    /// Print each view's Athena SQL (`CREATE OR REPLACE VIEW ...;`) instead of
    /// its columns: what to run in Athena by hand, or read.
    #[arg(long)]
    sql: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = match Location::parse(&args.lake).map_err(anyhow::Error::msg)? {
        Location::Local(root) => root,
        Location::S3 { .. } => anyhow::bail!(
            "views of an s3:// lake are kept by the deployed stack (the compactor publishes them to Glue); \
             `eventlake views` runs on a local lake"
        ),
    };
    let mut reports = local::refresh(&root, None)?;
    reports.sort_by(|a, b| a.schema.view.cmp(&b.schema.view));
    let mut out = String::new();
    for report in &reports {
        if args.changes_only && report.changes.is_empty() {
            continue;
        }
        if args.sql {
            out.push_str(&crate::views::sql::create_view(&report.schema));
            out.push_str(";\n\n");
        } else {
            out.push_str(&render(report));
        }
    }
    if args.sql {
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
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
/// (`written`: what the writer counted, see [`local::refresh`]): the summary
/// line, and the changes, a view at a time, to print after it.
pub fn keep_current(
    root: &std::path::Path,
    written: Option<
        &std::collections::BTreeMap<crate::core::partition::Partition, crate::views::stats::WrittenCounts>,
    >,
) -> anyhow::Result<(String, String)> {
    let reports = local::refresh(root, written)?;
    let changed: Vec<&TypeReport> = reports.iter().filter(|r| !r.changes.is_empty()).collect();
    let line = format!("{} up to date, {} changed", reports.len(), changed.len());
    let changes =
        changed.iter().map(|report| format!("{}:\n{}", report.schema.view, change_lines(report))).collect();
    Ok((line, changes))
}

/// One view: its name, rows, columns with types, and its changes.
pub fn render(report: &TypeReport) -> String {
    let schema = &report.schema;
    let mut out = format!("{} (event type {}, {} rows)\n", schema.view, schema.event_type, schema.rows);
    for field in &schema.fields {
        let Some(column) = &field.column else { continue };
        let declared = if field.declared { " (declared)" } else { "" };
        out.push_str(&format!(
            "  {column:<32} {:<18} {:>12} values{declared}\n",
            shown(field.column_type),
            field.count
        ));
    }
    if schema.rescued {
        out.push_str("  _rescued                         varchar            (declared fields whose value did not fit)\n");
    }
    let payload_only = schema.fields.iter().filter(|f| f.column.is_none()).count();
    if payload_only > 0 {
        out.push_str(&format!("  {payload_only} fields in payload only (listed in the schema file)\n"));
    }
    out.push_str(&change_lines(report));
    out
}

/// A view's changes, one line each.
fn change_lines(report: &TypeReport) -> String {
    let schema = &report.schema;
    let mut out = String::new();
    for change in &report.changes {
        out.push_str(&match change {
            Change::NewField { name, column, column_type, count, example } => format!(
                "  + new field {name:?} as {column} {} ({count} values, e.g. {example})\n",
                shown(*column_type)
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

/// A column's type as printed: Athena's, with `json` named (Athena shows it
/// as `varchar`).
fn shown(column_type: crate::views::ladder::ColumnType) -> String {
    match column_type {
        crate::views::ladder::ColumnType::Json => "json".to_owned(),
        other => other.athena(),
    }
}
