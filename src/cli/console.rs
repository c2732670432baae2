//! `eventlake console`: parses the arguments, binds, prints the URL with its
//! token, and serves [`crate::console`] until stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::aws::s3::S3Store;
use crate::catalog::Catalog;
use crate::console::{self, Console, LakeAt, QueryLimits};
use crate::lake::storage::Location;

/// The console's own files: the consumer's checkpoint (`<lake>/_console/`, or
/// `./_console/` beside an S3 lake).
const CONSOLE_DIR: &str = "_console";

/// Serves the web console (CONTRACT section 7) from this binary alone (no
/// network access needed): the lake's event types and days; producers a
/// person starts and stops, events per second by type and, with --stream, a
/// consumer reading the stream in order; SQL with the ready queries, charts
/// and CSV export; rejected records and their replay; where an event is. The
/// printed URL carries a random token that every query and every change needs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The lake: a local directory (every panel), or s3://bucket/prefix with
    /// --database (its Glue table: the Lake and Rejected panels; queries and
    /// traces are Athena's there).
    #[arg(long, value_name = "DIR|s3://...")]
    lake: String,
    /// The Glue database of an s3:// lake.
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// Its Glue table.
    #[arg(long, value_name = "NAME", default_value = "events")]
    table: String,
    /// Where Firehose writes the records it failed (s3://bucket/errors/): the
    /// Rejected panel lists them beside the lake's rejected records, to replay.
    #[arg(long, value_name = "s3://...")]
    failed: Option<String>,
    /// Where to listen. Anything but a loopback address (127.0.0.1, ::1) serves
    /// the lake to the network: every call then needs the token, and a warning says so.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8484")]
    listen: SocketAddr,
    /// A Kinesis stream (name or ARN): producers send to it and a consumer
    /// reads it back in order, its checkpoint under the lake's `_console/`.
    /// Without it, producers write into the lake.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// AWS region for --stream (default: the SDK's).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Memory for one query (default: half of this machine's).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(16..))]
    memory_mib: Option<u64>,
    /// Stop a query after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    query_timeout: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let location = Location::parse(&args.lake).map_err(anyhow::Error::msg).context("--lake")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let needs_aws = matches!(location, Location::S3 { .. }) || args.stream.is_some();
        let config = match needs_aws {
            true => Some(crate::aws::load_config_in(args.region.clone()).await),
            false => None,
        };
        let (lake, state_dir) = match (&location, &config) {
            (Location::Local(dir), _) => {
                anyhow::ensure!(args.database.is_none(), "--database needs an s3:// lake: Glue partitions point at S3");
                anyhow::ensure!(args.failed.is_none(), "--failed goes with an s3:// lake: Firehose writes its failed records to S3");
                anyhow::ensure!(!dir.exists() || dir.is_dir(), "--lake {} is not a directory", dir.display());
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                (LakeAt::Local(dir.clone()), dir.join(CONSOLE_DIR))
            }
            (Location::S3 { bucket, prefix }, Some(config)) => {
                let database = args.database.as_deref().ok_or_else(|| {
                    anyhow::anyhow!("an s3:// lake needs --database: the console finds its partitions in the Glue table")
                })?;
                let store = S3Store::new(crate::aws::s3::s3_client(config), bucket, prefix);
                let catalog = Catalog::new(crate::catalog::glue_client(config), database, &args.table);
                if let Some(failed) = &args.failed {
                    anyhow::ensure!(failed.starts_with("s3://"), "--failed names an s3:// prefix, not {failed}");
                }
                let lake = LakeAt::S3 { store, catalog, config: Box::new(config.clone()), failed: args.failed.clone() };
                (lake, PathBuf::from(CONSOLE_DIR))
            }
            (Location::S3 { .. }, None) => anyhow::bail!("an s3:// lake needs the AWS configuration"),
        };
        let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
            format!("listening on {} (give another with --listen, e.g. 127.0.0.1:0 for any free port)", args.listen)
        })?;
        let address = listener.local_addr()?;
        let token = console::new_token()?;
        if !address.ip().is_loopback() {
            eprintln!(
                "eventlake console: warning: listening on {address}, not loopback: anyone who can reach it and has the \
                 token can read the lake"
            );
        }
        let limits = QueryLimits {
            memory_bytes: args
                .memory_mib
                .map_or_else(crate::query::Bounds::default_memory_bytes, |mib| (mib as usize) << 20),
            timeout: Duration::from_secs(args.query_timeout),
            ..QueryLimits::default()
        };
        let host = if address.ip().is_unspecified() { "127.0.0.1".to_owned() } else { address.ip().to_string() };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let mut out = std::io::stdout().lock();
        writeln!(out, "eventlake console: http://{host}:{}/?token={token}  (Ctrl-C stops it)", address.port())?;
        out.flush()?;
        drop(out);
        let target = match (&args.stream, config) {
            (Some(name), Some(config)) => console::live::Target::Stream { config: Box::new(config), name: name.clone() },
            _ => console::live::Target::Lake,
        };
        let console = Console::new(lake, token, address, limits, target, state_dir);
        console::serve(listener, console).await?;
        Ok(ExitCode::SUCCESS)
    })
}
