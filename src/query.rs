//! SQL over a local lake with DataFusion: the `events` table (Hive partitions
//! `event_type` and `created_date`, pruned on filters), the `events_unique` view
//! defined by the same file Athena uses, and Athena's functions, so the files in
//! `athena/queries/` run unchanged on a laptop.

mod functions;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use functions::timestamp_type;

/// The `events_unique` view: the Athena DDL file, run as it is.
pub const EVENTS_UNIQUE_VIEW: &str = include_str!("../athena/ddl/events_unique.sql");

/// A query failure, with DataFusion's message (which names the column, function
/// or syntax at fault).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The directory holds no lake.
    #[error("{0} holds no lake (no events/ directory); write one with `eventlake ingest --lake {0} FILE`")]
    NoLake(String),
    /// Planning or running the SQL failed.
    #[error(transparent)]
    Sql(#[from] DataFusionError),
    /// The lake directory could not be resolved.
    #[error("lake directory: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the result failed.
    #[error("writing the result: {0}")]
    Output(#[from] datafusion::arrow::error::ArrowError),
}

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row per line, nulls included.
    Json,
}

/// A session over the lake at `root`, with `events`, `events_unique` and the
/// Athena functions registered.
pub async fn session(root: &Path) -> Result<SessionContext, QueryError> {
    let events_dir = root.join("events");
    if !events_dir.is_dir() {
        return Err(QueryError::NoLake(root.display().to_string()));
    }
    let config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let ctx = SessionContext::new_with_config(config);
    for udf in functions::all() {
        ctx.register_udf(udf);
    }
    let partition_columns = crate::schema::partition_columns()
        .iter()
        .map(|column| (column.name.to_owned(), DataType::Utf8))
        .collect();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns);
    let url = ListingTableUrl::parse(format!("{}/", std::path::absolute(&events_dir)?.display()))?;
    let config =
        ListingTableConfig::new(url).with_listing_options(options).with_schema(crate::schema::arrow_schema());
    ctx.register_table("events", Arc::new(ListingTable::try_new(config)?))?;
    ctx.sql(EVENTS_UNIQUE_VIEW).await?.collect().await?;
    Ok(ctx)
}

/// Runs one SQL statement; returns the result's schema and rows.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let frame = ctx.sql(sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok((schema, batches))
}

/// Prints a result in `format`.
pub fn write(
    out: &mut impl Write,
    schema: SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<(), QueryError> {
    use datafusion::arrow::{csv, json, util::pretty};
    match format {
        Format::Table => {
            let table = pretty::pretty_format_batches_with_schema(schema, batches)?;
            writeln!(out, "{table}").map_err(datafusion::arrow::error::ArrowError::from)?;
        }
        Format::Csv => {
            let mut writer = csv::WriterBuilder::new().with_header(true).build(out);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(schema))?;
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, json::writer::LineDelimited>(out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}
