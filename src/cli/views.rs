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
    /// The lake: a directory, or `s3://bucket/prefix` (whose writers and
    /// compactions counted its fields; see docs/query.md).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    lake: String,
    /// The Glue database of an S3 lake: the views that changed are created or
    /// replaced there, for Athena.
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// Print only the views that changed.
    #[arg(long)]
    changes_only: bool,
    /// S3: count every partition from its files again (they are read from S3
    /// to this machine's disk, one partition at a time), as a run from scratch:
    /// for a lake written before the stack kept typed views, or to check it.
    #[arg(long, requires = "database")]
    rebuild: bool,
    /// Print each view's Athena SQL (`CREATE OR REPLACE VIEW ...;`) instead of
    /// its columns: what to run in Athena by hand, or read.
    #[arg(long)]
    sql: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = match Location::parse(&args.lake).map_err(anyhow::Error::msg)? {
        Location::Local(root) => {
            anyhow::ensure!(args.database.is_none(), "--database needs an s3:// lake: Glue views read S3");
            anyhow::ensure!(
                root.join(crate::core::partition::EVENTS_DIR).is_dir(),
                "{} holds no lake (no events/ directory); write one with `eventlake ingest --lake {} FILE`",
                root.display(),
                root.display()
            );
            root
        }
        Location::S3 { bucket, prefix } => return run_s3(&args, bucket, prefix),
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

/// An S3 lake's views: the writers' observations folded, the schema files
/// written, the changed views published to `--database`; under the lake's
/// compaction lease, as the deployed compactor does it.
fn run_s3(args: &Args, bucket: String, prefix: String) -> anyhow::Result<ExitCode> {
    use crate::compaction::lease::Lease;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let published = runtime.block_on(async {
        let config = crate::aws::load_config().await;
        let store = crate::aws::s3::S3Store::new(crate::aws::s3::s3_client(&config), bucket, prefix);
        let catalog = args.database.as_ref().map(|database| {
            crate::catalog::Catalog::new(crate::catalog::glue_client(&config), database, "events")
        });
        let holder = format!("eventlake views, process {}", std::process::id());
        let now = crate::telemetry::now_millis();
        let lease = Lease::acquire(&store, &holder, std::time::Duration::from_secs(15 * 60), now).await?;
        let counted = match (&catalog, args.rebuild) {
            (Some(catalog), true) => crate::views::publish::count_every_partition(&store, catalog).await,
            _ => Ok(Vec::new()),
        };
        let published = match counted {
            Ok(counted) => crate::views::publish::publish(&store, catalog.as_ref(), &counted).await,
            Err(error) => Err(error),
        };
        lease.release().await?;
        Ok::<_, anyhow::Error>(published?)
    })?;
    let mut out = String::new();
    let mut types: Vec<_> = published.types.iter().collect();
    types.sort_by(|a, b| a.0.view.cmp(&b.0.view));
    for (schema, changes) in types {
        if args.changes_only && changes.is_empty() {
            continue;
        }
        let report = TypeReport {
            schema: schema.clone(),
            changes: changes.clone(),
            partitions_read: 0,
            partitions: 0,
        };
        out.push_str(&if args.sql {
            format!("{};\n\n", crate::views::sql::create_view(schema))
        } else {
            render(&report)
        });
    }
    out.push_str(&published_line(&published));
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The summary of a run on an S3 lake.
pub fn published_line(published: &crate::views::publish::Published) -> String {
    format!(
        "{} views, {} changes ({} widenings), {} published to Glue; {} observations folded\n",
        published.types.len(),
        published.schema_changes(),
        published.fields_widened(),
        published.views_published,
        published.observations_read
    )
}

/// The most lines of changes a command that writes into a lake prints (a first
/// ingest of 100 types brings hundreds of new fields).
const MAX_CHANGE_LINES: usize = 24;

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
    Ok(render_changes(root, &reports))
}

/// A run's one-line summary of the views and the lines of its changes (at most
/// [`MAX_CHANGE_LINES`]).
pub fn render_changes(root: &std::path::Path, reports: &[TypeReport]) -> (String, String) {
    let changed: Vec<&TypeReport> = reports.iter().filter(|r| !r.changes.is_empty()).collect();
    let line = format!("{} up to date, {} changed", reports.len(), changed.len());
    let mut changes = String::new();
    let mut shown = 0;
    for report in &changed {
        let lines = change_lines(report);
        if shown + report.changes.len() > MAX_CHANGE_LINES {
            let left: usize = changed.iter().map(|r| r.changes.len()).sum::<usize>() - shown;
            changes.push_str(&format!(
                "... and {left} more changes (`eventlake views --lake {}` lists every view's columns)\n",
                root.display()
            ));
            break;
        }
        shown += report.changes.len();
        changes.push_str(&format!("{}:\n{lines}", report.schema.view));
    }
    (line, changes)
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
