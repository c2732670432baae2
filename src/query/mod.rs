//! SQL over a local lake with DataFusion: the `events` table (Hive partitions
//! `event_type` and `created_date`, pruned on filters), the `events_unique` view
//! defined by the same file Athena uses, and Athena's functions, so the files in
//! `athena/queries/` run unchanged on a laptop.

pub mod athena_sql;
mod functions;
mod json_array;
pub mod row_filter;
mod unique_view;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use functions::timestamp_type;
pub use row_filter::EventFilter;

/// The `events_unique` view: the Athena DDL file.
pub const EVENTS_UNIQUE_VIEW: &str = include_str!("../../athena/ddl/events_unique.sql");

/// The view `events_unique` as DataFusion runs it, derived once per process.
static EVENTS_UNIQUE_FOR_DATAFUSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| unique_view::for_datafusion(EVENTS_UNIQUE_VIEW));

/// The SELECT of `events_unique`'s file as written (its window), as DataFusion
/// reads it: `eventlake query` runs the view as an aggregate and a join instead,
/// and tests check that the two give the same rows.
pub fn events_unique_select_as_written() -> Option<String> {
    unique_view::select_as_written(EVENTS_UNIQUE_VIEW)
}

/// The environment variable DataFusion reads `datafusion.execution.parquet.pushdown_filters` from.
const PUSHDOWN_FILTERS_VARIABLE: &str = "DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS";

/// A query failure, with DataFusion's message (which names the column, function
/// or syntax at fault).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The directory holds no lake.
    #[error("{0} holds no lake (no events/ directory); write one with `eventlake ingest --lake {0} FILE`")]
    NoLake(String),
    /// The SQL would change something: queries only read.
    #[error("eventlake query only reads the lake ({0}): run SELECT, WITH, EXPLAIN, SHOW or DESCRIBE")]
    NotReadOnly(DataFusionError),
    /// Planning or running the SQL failed.
    #[error(transparent)]
    Sql(#[from] DataFusionError),
    /// The lake directory could not be resolved.
    #[error("lake directory")]
    Io(#[from] std::io::Error),
    /// The statement is deeper than the engine's stack holds.
    #[error("the statement has {operators} operators and parentheses {deepest} deep; at most {limit} of each: a deeper expression would overflow the engine's stack (write a long list of ORs as IN (...), or put the values in a table)")]
    TooDeep { operators: usize, deepest: usize, limit: usize },
    /// The lake's schema files could not be read.
    #[error("typed views: {0}")]
    Views(#[from] crate::views::ViewsError),
    /// The query ran past its time limit (it is stopped).
    #[error("the query ran past the limit of {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
    /// Writing the result failed.
    #[error("writing the result")]
    Output(#[from] datafusion::arrow::error::ArrowError),
}

impl QueryError {
    /// Whether the query read a file that was listed and is gone: a local
    /// compaction swaps a partition's directory atomically, so a query planned
    /// before the swap may look for the old files. Running it again lists anew.
    pub fn is_file_gone(&self) -> bool {
        let QueryError::Sql(error) = self else { return false };
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(error) = source {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::NotFound {
                    return true;
                }
            }
            if let Some(store) = error.downcast_ref::<datafusion::object_store::Error>() {
                if matches!(store, datafusion::object_store::Error::NotFound { .. }) {
                    return true;
                }
            }
            source = error.source();
        }
        // DataFusion wraps some errors as text only.
        let text = error.to_string();
        text.contains("No such file or directory")
            || text.contains("Object at location") && text.contains("not found")
    }
}

/// What bounds a session.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Memory for the engine's buffering operators (sorts, aggregates, joins) and
    /// the most one string function call may build.
    pub memory_bytes: usize,
}

impl Bounds {
    /// Half of the memory this process may use: the machine's (`/proc/meminfo`)
    /// or its container's limit (cgroup v2 `memory.max`), whichever is smaller;
    /// 4 GiB where neither can be read.
    pub fn default_memory_bytes() -> usize {
        let machine = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok().map(|kib| kib * 1024)
        });
        let container = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok());
        machine.into_iter().chain(container).min().map_or(4 << 30, |bytes| bytes / 2)
    }
}

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row per line, nulls included.
    Json,
}

/// A session over the lake at `root`, with `events`, `events_unique`, the
/// typed views of its schema files (`_schemas/`) and the Athena functions
/// registered.
pub async fn session(root: &Path, bounds: Bounds) -> Result<SessionContext, QueryError> {
    let events_dir = root.join(crate::core::partition::EVENTS_DIR);
    if !events_dir.is_dir() {
        return Err(QueryError::NoLake(root.display().to_string()));
    }
    // DataFusion's own environment variables (`datafusion.execution.batch_size`
    // is DATAFUSION_EXECUTION_BATCH_SIZE) tune the engine; Parquet filter pushdown
    // is on unless one says otherwise.
    let mut config = SessionConfig::from_env()?;
    if std::env::var_os(PUSHDOWN_FILTERS_VARIABLE).is_none() {
        config = config.set_bool("datafusion.execution.parquet.pushdown_filters", true);
    }
    let runtime = RuntimeEnvBuilder::new().with_memory_limit(bounds.memory_bytes, 1.0).build_arc()?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    for udf in functions::all().into_iter().chain(functions::bounded_string_functions(bounds.memory_bytes)) {
        ctx.register_udf(udf);
    }
    let partition_columns = crate::lake::schema::partition_columns()
        .iter()
        .map(|column| (column.name.to_owned(), DataType::Utf8))
        .collect();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns);
    // From a URL, not a path string: a path's `*`, `?` or `[` would be read as a glob.
    let absolute = std::path::absolute(&events_dir)?;
    let directory = url::Url::from_directory_path(&absolute)
        .map_err(|()| QueryError::NoLake(root.display().to_string()))?;
    let url = ListingTableUrl::try_new(directory, None)?;
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(scan_schema());
    ctx.register_table("events", Arc::new(ListingTable::try_new(config)?))?;
    ctx.sql(&EVENTS_UNIQUE_FOR_DATAFUSION).await?.collect().await?;
    for schema in crate::views::local::read_schemas(root)? {
        create_view(&ctx, &crate::views::sql::create_view(&schema)).await?;
    }
    Ok(ctx)
}

/// Runs a `CREATE VIEW` written in Athena's SQL (a typed view's text) through
/// [`athena_sql`]'s rewrites.
pub async fn create_view(ctx: &SessionContext, athena_sql: &str) -> Result<(), QueryError> {
    let statements = athena_sql::statements(athena_sql)
        .map_err(|error| QueryError::Sql(DataFusionError::SQL(Box::new(error), None)))?;
    for statement in statements {
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
        let plan = ctx.state().statement_to_plan(statement).await?;
        ctx.execute_logical_plan(plan).await?.collect().await?;
    }
    Ok(())
}

/// The lake's schema as the engine reads it: strings as views into the decoded
/// pages (`Utf8View`) rather than copied into new buffers, which sorts, joins and
/// aggregates then move as 16-byte views instead of the text itself.
fn scan_schema() -> SchemaRef {
    let schema = crate::lake::schema::arrow_schema();
    let fields = schema.fields().iter().map(|field| match field.data_type() {
        DataType::Utf8 => Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View)),
        _ => field.clone(),
    });
    Arc::new(datafusion::arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()))
}

/// Runs one SQL statement that only reads (no DDL, DML, COPY or `SET`); returns
/// the result's schema and rows.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let frame = read_only_frame(ctx, sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok((schema, batches))
}

/// [`run`], keeping at most `max_rows` rows: the schema, the rows kept, and
/// whether the result had more. The result is read as a stream and the rest is
/// never computed, so a large result costs no more memory than `max_rows`.
pub async fn run_limited(
    ctx: &SessionContext,
    sql: &str,
    max_rows: usize,
) -> Result<(SchemaRef, Vec<RecordBatch>, bool), QueryError> {
    use futures::StreamExt as _;
    let frame = read_only_frame(ctx, sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await?;
    let (mut kept, mut rows) = (Vec::new(), 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            kept.push(batch.slice(0, room));
            return Ok((schema, kept, true));
        }
        rows += batch.num_rows();
        kept.push(batch);
    }
    Ok((schema, kept, false))
}

/// A result as [`run_in_own_thread`] returns it: the schema, the rows kept, and
/// whether the result had more than the rows asked for.
pub type Limited = (SchemaRef, Vec<RecordBatch>, bool);

/// Runs `sql` over the lake at `root` the way `eventlake query` does: on a
/// thread of its own whose stacks hold the deepest statement [`run`] accepts
/// ([`STACK_BYTES`]), with a session bounded by `bounds`, planned again once if a
/// compaction swapped a partition's files between listing and reading; at most
/// `max_rows` rows kept (the rest never computed), stopped after `timeout` if
/// given. Blocks until the thread ends (the CLI's thread and the console's
/// query slot wait for it).
pub fn run_in_own_thread(
    root: &Path,
    sql: &str,
    bounds: Bounds,
    max_rows: usize,
    timeout: Option<std::time::Duration>,
) -> Result<Limited, QueryError> {
    let (root, sql) = (root.to_owned(), sql.to_owned());
    let thread =
        std::thread::Builder::new().name("query".into()).stack_size(STACK_BYTES).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let run = async {
                    let ctx = session(&root, bounds).await?;
                    match run_limited(&ctx, &sql, max_rows).await {
                        // A compaction swapped a partition between the listing and the
                        // read: listed again, the query finds the new files.
                        Err(error) if error.is_file_gone() => {
                            let ctx = session(&root, bounds).await?;
                            run_limited(&ctx, &sql, max_rows).await
                        }
                        result => result,
                    }
                };
                match timeout {
                    None => run.await,
                    Some(limit) => {
                        tokio::time::timeout(limit, run).await.map_err(|_| QueryError::TimedOut(limit))?
                    }
                }
            })
        })?;
    thread.join().map_err(|_| QueryError::Io(std::io::Error::other("the query thread panicked")))?
}

/// The plan of one statement that only reads (no DDL, DML, COPY or `SET`).
async fn read_only_frame(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame, QueryError> {
    check_size(sql)?;
    let plan = ctx.state().create_logical_plan(sql).await?;
    let read_only =
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    read_only.verify_plan(&plan).map_err(QueryError::NotReadOnly)?;
    Ok(ctx.execute_logical_plan(plan).await?)
}

/// The most operators (`AND`, `OR`, comparisons, arithmetic, `||`) and the
/// deepest nesting of parentheses a statement may have: parsing, planning and
/// dropping a plan recurse once per level, so a deep enough statement overflows
/// any stack and aborts the process (20,000 `OR` terms did), and planning one
/// of a few thousand takes seconds already (the optimizer's passes are not
/// linear in an expression's depth). 2,000 `OR` terms of comparisons fit.
pub const MAX_OPERATORS: usize = 5_000;
/// The stack of the threads a query runs on: [`MAX_OPERATORS`] levels with room
/// to spare (virtual memory: only the pages a query touches are used).
pub const STACK_BYTES: usize = 256 << 20;

/// Refuses a statement deeper than the engine's stack holds ([`MAX_OPERATORS`]),
/// counted on its tokens (no recursion).
fn check_size(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(()); // the engine's parser reports what is wrong
    };
    let (mut operators, mut depth, mut deepest) = (0usize, 0usize, 0usize);
    for token in &tokens {
        match token {
            Token::LParen => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(word) if matches!(word.keyword, Keyword::AND | Keyword::OR) => operators += 1,
            Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat => operators += 1,
            _ => {}
        }
    }
    if operators > MAX_OPERATORS || deepest > MAX_OPERATORS {
        return Err(QueryError::TooDeep { operators, deepest, limit: MAX_OPERATORS });
    }
    Ok(())
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
