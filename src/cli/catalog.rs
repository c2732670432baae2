//! `eventlake catalog repair`: registers in Glue every partition the S3 lake holds
//! and the table lacks (what `MSCK REPAIR TABLE` does, without its time-outs), at
//! its current location: a partition with a complete compaction under
//! `compacted/` is located at its newest one ([`compaction::newest_compactions`]),
//! with `events/<partition>/` recorded as superseded, so that the compactor's next
//! run hands over the files there that the compaction lacks and, after the grace
//! period, deletes the rest. Partitions the table has are left alone.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::aws::{self, s3::S3Store};
use crate::catalog::{self, Catalog};
use crate::compaction;
use crate::core::partition::{Partition, EVENTS_DIR};
use crate::lake::storage::Location;

/// Keep the Glue catalog in step with the lake.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the lake's partitions and register the ones missing from the table.
    Repair(RepairArgs),
}

#[derive(Debug, clap::Args)]
struct RepairArgs {
    /// The lake root in S3 (the table's location is its `events/` prefix).
    #[arg(long, value_name = "s3://bucket/prefix")]
    lake: String,
    /// Glue database.
    #[arg(long)]
    database: String,
    /// Glue table.
    #[arg(long, default_value = "events")]
    table: String,
    /// Print the missing partitions; register nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.command {
        Command::Repair(args) => runtime.block_on(repair(args)),
    }
}

async fn repair(args: RepairArgs) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    let Location::S3 { bucket, prefix } = location else {
        anyhow::bail!("--lake must be s3://bucket/prefix: Glue partitions point at S3 locations");
    };
    let aws_config = aws::load_config().await;
    let store = S3Store::new(aws::s3::s3_client(&aws_config), bucket, prefix);
    let catalog = Catalog::new(catalog::glue_client(&aws_config), &args.database, &args.table);

    let table_location = catalog.table_location().await?;
    let expected = store.url(&format!("{EVENTS_DIR}/"));
    if table_location.trim_end_matches('/') != expected.trim_end_matches('/') {
        return Err(
            catalog::CatalogError::WrongLocation { table: catalog.name(), table_location, expected }.into()
        );
    }
    let (mut in_lake, ignored) = lake_partitions(&store).await?;
    for name in &ignored {
        tracing::warn!(directory = %name, "not a partition the writer makes; ignored");
    }
    let compactions = compaction::newest_compactions(&store.list_tree(compaction::COMPACTED_DIR).await?);
    in_lake.extend(compactions.keys().cloned());
    in_lake.sort();
    in_lake.dedup();
    let existing = catalog.existing_partitions().await?;
    let missing: Vec<Partition> =
        in_lake.iter().filter(|p| !existing.contains(&p.values())).cloned().collect();
    let relocate: Vec<(&Partition, String)> = missing
        .iter()
        .filter_map(|partition| Some((partition, format!("{}/", store.url(compactions.get(partition)?)))))
        .collect();
    if args.dry_run {
        for partition in &missing {
            match compactions.get(partition) {
                Some(dir) => println!("{}  at {}/", partition.directory(), store.url(dir)),
                None => println!("{}", partition.directory()),
            }
        }
    }
    let registration = if args.dry_run { Default::default() } else { catalog.register(&missing).await? };
    if !args.dry_run {
        let now = crate::telemetry::now_millis();
        for (partition, location) in &relocate {
            let registered_at = catalog::partition_location(&table_location, partition);
            catalog.switch_location(partition, &registered_at, location, now).await?;
        }
    }
    eprintln!(
        "{}: {} partitions in the lake, {} in {} before, {} missing, {} registered, {} of them at their \
         compacted location{}",
        expected,
        in_lake.len(),
        existing.len(),
        catalog.name(),
        missing.len(),
        registration.created,
        relocate.len(),
        if args.dry_run { " (dry run)" } else { "" },
    );
    Ok(ExitCode::SUCCESS)
}

async fn lake_partitions(store: &S3Store) -> anyhow::Result<(Vec<Partition>, Vec<String>)> {
    let (mut partitions, mut ignored) = (Vec::new(), Vec::new());
    for type_dir in store.list_directories(EVENTS_DIR).await? {
        for date_dir in store.list_directories(&format!("{EVENTS_DIR}/{type_dir}")).await? {
            match Partition::from_directories(&type_dir, &date_dir) {
                Some(partition) => partitions.push(partition),
                None => ignored.push(format!("{EVENTS_DIR}/{type_dir}/{date_dir}")),
            }
        }
    }
    partitions.sort();
    Ok((partitions, ignored))
}
