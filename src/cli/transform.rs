//! `eventlake transform`: the Firehose hook on the command line.
//!
//! Runs `firehose::transform_and_log`, the Lambda's own code path, on requests read from a file
//! or stdin. Input may hold several requests (as `eventlake generate --firehose`
//! writes them); each gets one response line on stdout.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::value::RawValue;

use crate::firehose::{self, Stats};

/// Counts over every request of one run.
#[derive(Default)]
struct Totals {
    requests: usize,
    stats: Stats,
}

impl Totals {
    fn add(&mut self, stats: &Stats) {
        self.requests += 1;
        self.stats.records += stats.records;
        self.stats.ok += stats.ok;
        self.stats.dropped += stats.dropped;
        for (reason, count) in &stats.failed {
            *self.stats.failed.entry(reason).or_default() += count;
        }
    }
}

/// Transform Firehose transformation request(s) into response(s).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File holding the request JSON (default: stdin). Several requests may follow
    /// one another; each gets one response line.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    #[command(flatten)]
    window: super::WindowArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = match &args.input {
        Some(path) => fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).context("reading stdin")?;
            text
        }
    };
    let settings =
        firehose::Settings { window: args.window.at(crate::telemetry::now_millis()), ..Default::default() };
    let started = Instant::now();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut total = Totals::default();
    for (index, request) in serde_json::Deserializer::from_str(&input).into_iter::<&RawValue>().enumerate() {
        let request = request.with_context(|| format!("request {} is not valid JSON", index + 1))?;
        let transformed = firehose::transform_and_log(request.get(), &settings)
            .with_context(|| format!("request {}", index + 1))?;
        stdout.write_all(&transformed.response)?;
        stdout.write_all(b"\n")?;
        total.add(&transformed.stats);
    }
    stdout.flush()?;
    anyhow::ensure!(
        total.requests > 0,
        "no request in the input: expected Firehose transformation request JSON"
    );
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        requests = total.requests,
        records = total.stats.records,
        ok = total.stats.ok,
        dropped = total.stats.dropped,
        failed = total.stats.failed_total(),
        failed_by_reason = ?total.stats.failed,
        request_mb = format!("{:.1}", input.len() as f64 / 1e6),
        seconds = format!("{seconds:.3}"),
        mb_per_second = format!("{:.0}", input.len() as f64 / 1e6 / seconds.max(1e-9)),
        "transform finished"
    );
    Ok(ExitCode::SUCCESS)
}
