//! `eventlake generate`: deterministic sample events as NDJSON or Firehose requests.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::NaiveDate;

use crate::generate::{FirehoseBatcher, Generator, Options};

/// Firehose's default processor buffer: 1 MB of record data per invocation.
const FIREHOSE_BUFFER_BYTES: usize = 1024 * 1024;

/// Write sample events as NDJSON (or as Firehose transformation requests).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of records to write.
    #[arg(long, value_name = "N")]
    events: u64,
    /// Seed: the same seed and options give the same bytes.
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Number of distinct event types.
    #[arg(long, value_name = "K", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    types: u32,
    /// Share of records that repeat an earlier event exactly (0 to 1).
    #[arg(long, value_name = "RATE", default_value_t = 0.01, value_parser = rate)]
    duplicates: f64,
    /// Share of invalid records, cycling through every rejection class (0 to 1).
    #[arg(long, value_name = "RATE", default_value_t = 0.005, value_parser = rate)]
    invalid: f64,
    /// First UTC day of created_at: YYYY-MM-DD, `today`, or `today-N` (N days
    /// before today, UTC; the output then depends on the date).
    #[arg(long, value_name = "DATE", default_value = "2024-03-17", value_parser = start_date)]
    start: NaiveDate,
    /// Number of days created_at spreads over.
    #[arg(long, value_name = "D", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,
    /// Wrap records in Firehose transformation requests (1 MB of data each), one
    /// request JSON per line, ready for `eventlake transform`.
    #[arg(long)]
    firehose: bool,
}

fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    (0.0..=1.0).contains(&value).then_some(value).ok_or_else(|| format!("{value} is not between 0 and 1"))
}

fn start_date(text: &str) -> Result<NaiveDate, String> {
    let today = || chrono::Utc::now().date_naive();
    let date = match text.strip_prefix("today") {
        Some("") => Some(today()),
        Some(days) => days
            .strip_prefix('-')
            .and_then(|n| n.parse().ok())
            .and_then(|n| today().checked_sub_days(chrono::Days::new(n))),
        None => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
    };
    date.ok_or_else(|| format!("{text:?} is not YYYY-MM-DD, today or today-N"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.duplicates + args.invalid <= 1.0, "--duplicates plus --invalid must not exceed 1");
    let options = Options {
        seed: args.seed,
        types: args.types as usize,
        duplicates: args.duplicates,
        invalid: args.invalid,
        start: args.start,
        days: args.days,
        firehose: args.firehose,
    };
    let mut generator = Generator::new(options);
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut batcher = args.firehose.then(|| FirehoseBatcher::new(args.seed, FIREHOSE_BUFFER_BYTES));
    for _ in 0..args.events {
        let sample = generator.next_record();
        match &mut batcher {
            Some(batcher) => {
                if let Some(request) = batcher.push(&sample) {
                    writeln!(out, "{request}").context("writing stdout")?;
                }
            }
            None => {
                out.write_all(&sample.data).context("writing stdout")?;
                out.write_all(b"\n").context("writing stdout")?;
            }
        }
    }
    if let Some(request) = batcher.as_mut().and_then(FirehoseBatcher::finish) {
        writeln!(out, "{request}").context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    Ok(ExitCode::SUCCESS)
}
