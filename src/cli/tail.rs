//! `eventlake tail`: parses the arguments, runs [`crate::tail::tail`] until
//! SIGINT or SIGTERM (or, with `--no-follow`, the stream's newest record), shows
//! each shard's lag on a terminal and prints a summary on stderr.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::aws::{self, kinesis::KinesisStream};
use crate::query::EventFilter;
use crate::tail::{self, CheckpointStore, From, Options, Report};

/// Writes a Kinesis stream's events to stdout as NDJSON, one event a line
/// (packed records split), each shard's events in the order the shard holds
/// them, parents before their children after a reshard; follows new records
/// until stopped.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Stopping: on SIGINT (Ctrl-C) or SIGTERM, tail finishes writing the records it \
read, records each shard's position in --checkpoint, and exits; a restart \
continues after the last event written, none skipped, none twice. After kill -9 \
(or a crash), at most the events read since the last checkpoint (one GetRecords \
call per shard) are written again.

Pieces of records that are not events of the contract (CONTRACT section 1) are \
not written; each is reported on stderr with its shard, sequence number and \
reason.")]
pub struct Args {
    /// The stream's name or ARN.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// AWS region (default: the SDK's, from AWS_REGION or the profile).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Where to start on shards the checkpoint holds no position on:
    /// `trim-horizon` (the oldest record), `latest` (what arrives from now on),
    /// or a time (RFC 3339, or Unix seconds). A checkpoint's own start wins.
    #[arg(long, value_name = "trim-horizon|latest|TIME", default_value = "trim-horizon", value_parser = parse_from)]
    from: From,
    /// Record each shard's position in FILE (rewritten atomically) or in the
    /// DynamoDB table `dynamodb://TABLE` (Terraform's `tail_checkpoints`).
    #[arg(long, value_name = "FILE|dynamodb://TABLE")]
    checkpoint: Option<String>,
    /// Only events of this event type.
    #[arg(long = "type", value_name = "T")]
    event_type: Option<String>,
    /// Only events for which this SQL expression over the `events` table's
    /// columns is true, e.g. "json_extract_scalar(payload, '$.currency') = 'EUR'".
    #[arg(long = "where", value_name = "EXPR")]
    where_sql: Option<String>,
    /// Stop once every shard is read to its newest record, instead of following it.
    #[arg(long)]
    no_follow: bool,
    /// No lag line on a terminal.
    #[arg(long)]
    quiet: bool,
}

fn parse_from(text: &str) -> Result<From, String> {
    match text {
        "trim-horizon" => Ok(From::TrimHorizon),
        "latest" => Ok(From::Latest),
        _ => {
            if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
                return Ok(From::At(time.timestamp_millis()));
            }
            match text.parse::<i64>() {
                // The contract's range of `created_at` (before year 10000).
                Ok(seconds) if (0..crate::core::timestamp::END_MILLIS / 1000).contains(&seconds) => {
                    Ok(From::At(seconds * 1000))
                }
                _ => Err(format!(
                    "{text:?}: give trim-horizon, latest, an RFC 3339 time (2026-12-06T10:00:00Z) or Unix seconds"
                )),
            }
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = EventFilter::new(args.event_type.as_deref(), args.where_sql.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = aws::load_config_in(args.region.clone()).await;
        let stream = KinesisStream::new(&config, &args.stream);
        let mut store = CheckpointStore::open(args.checkpoint.as_deref(), &config)?;
        super::interrupt::catch();
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut lag_line = (!args.quiet && io::stderr().is_terminal()).then(LagLine::default);
        let mut report = |report: Report<'_>| render(report, lag_line.as_mut());
        let options = Options {
            from: args.from,
            follow: !args.no_follow,
            filter: filter.as_ref(),
            now_millis: crate::telemetry::now_millis,
        };
        let stop = || super::interrupt::caught().is_some();
        let tailed = tail::tail(&stream, &mut store, options, &mut out, &mut report, &stop).await?;
        drop(out);
        if let Some(line) = &mut lag_line {
            line.clear();
        }
        let positions = tailed.checkpoint.shards.len();
        let kept = match &args.checkpoint {
            Some(checkpoint) => format!("; {positions} shard positions in {checkpoint}"),
            None => String::new(),
        };
        eprintln!(
            "tail: {} records, {} events written, {} filtered out, {} not events{kept}",
            tailed.records, tailed.events_written, tailed.events_filtered_out, tailed.rejected
        );
        Ok(match super::interrupt::caught() {
            Some(signal) => ExitCode::from(super::interrupt::exit_status(signal)),
            None => ExitCode::SUCCESS,
        })
    })
}

fn render(report: Report<'_>, lag_line: Option<&mut LagLine>) {
    match report {
        Report::Lag(lag) => {
            if let Some(line) = lag_line {
                line.show(lag);
            }
        }
        Report::Rejected { shard, sequence_number, reason } => {
            eprintln!("tail: shard {shard} record {sequence_number}: not an event, not written: {reason}");
        }
        Report::Retrying(message) => eprintln!("tail: {message}; calling again"),
        Report::Saved(_) => {}
        Report::FilterFailed { shard, sequence_number, reason } => {
            eprintln!("tail: shard {shard} record {sequence_number}: --where could not be evaluated, not written: {reason}");
        }
        Report::StartKept(start) => {
            eprintln!(
                "tail: the checkpoint's start ({start:?}) is kept; --from applies to a new checkpoint only"
            )
        }
    }
}

/// Each shard's `MillisBehindLatest` on one line of a terminal, redrawn at most once a second.
#[derive(Default)]
struct LagLine {
    drawn: Option<Instant>,
}

impl LagLine {
    fn show(&mut self, lag: &BTreeMap<String, Option<i64>>) {
        if self.drawn.is_some_and(|drawn| drawn.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut shards: Vec<String> = lag
            .iter()
            .take(4)
            .map(|(shard, millis)| match millis {
                Some(millis) => format!("{shard} {millis} ms behind"),
                None => format!("{shard} lag unknown"),
            })
            .collect();
        if lag.len() > 4 {
            shards.push(format!("{} more", lag.len() - 4));
        }
        let _ = write!(io::stderr(), "\r\x1b[K{}", shards.join(" · "));
    }

    fn clear(&mut self) {
        if self.drawn.is_some() {
            let _ = write!(io::stderr(), "\r\x1b[K");
        }
    }
}
