//! `eventlake console`: parses the arguments, binds, prints the URL with its
//! token, and serves [`crate::console`] until stopped.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::console::{self, Console, QueryLimits};

/// Serves the web console (CONTRACT section 7) from this binary alone (no
/// network access needed): the lake's event types and days; producers a
/// person starts and stops, events per second by type and, with --stream, a
/// consumer reading the stream in order; SQL with the ready queries, charts
/// and CSV export; rejected records and their replay; where an event is. The
/// printed URL carries a random token that every query and every change needs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The local lake (a directory that `eventlake ingest` writes).
    #[arg(long, value_name = "DIR")]
    lake: PathBuf,
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
    anyhow::ensure!(
        args.lake.join(crate::core::partition::EVENTS_DIR).is_dir()
            || !args.lake.exists()
            || args.lake.is_dir(),
        "--lake {} is not a directory",
        args.lake.display()
    );
    std::fs::create_dir_all(&args.lake).with_context(|| format!("creating {}", args.lake.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
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
        let target = match &args.stream {
            Some(name) => console::live::Target::Stream {
                config: Box::new(crate::aws::load_config_in(args.region.clone()).await),
                name: name.clone(),
            },
            None => console::live::Target::Lake,
        };
        let console = Console::new(args.lake.clone(), token, address, limits, target);
        console::serve(listener, console).await?;
        Ok(ExitCode::SUCCESS)
    })
}
