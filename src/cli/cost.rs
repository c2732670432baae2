//! `eventlake cost`: the monthly AWS bill of a load on the deployed stack, and the
//! capacity it needs, from the model in [`crate::cost::model`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::core::event::MAX_RECORD_BYTES;
use crate::cost::model::{self, Deployment, Load, Prices, StreamMode};
use crate::producer::pack::DEFAULT_RECORD_BYTES;

/// Print the monthly AWS cost table for a load, and the capacity it needs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events per hour, on average (at most 10^12: a million times the reference load).
    #[arg(long, value_name = "N", value_parser = events_per_hour)]
    events_per_hour: f64,
    /// Average bytes per event (one NDJSON line): a whole number, 2 to 1,024,000
    /// (the record limit: a larger event cannot be sent).
    #[arg(long, value_name = "B", value_parser = event_bytes)]
    event_bytes: f64,
    /// Producers pack events into records of up to K KiB (0: one event per record).
    /// Default: `eventlake send`'s, 5,000 bytes.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pack_kib: Option<u32>,
    /// Distinct event types.
    #[arg(long, value_name = "T", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    types: u32,
    /// The busiest hour over the average hour, for sizing a provisioned stream (1 to 1,000).
    #[arg(long, value_name = "X", default_value_t = 3.0, value_parser = peak_factor)]
    peak_factor: f64,
    /// Price this stream mode (default: the cheaper for the load).
    #[arg(long, value_enum)]
    stream_mode: Option<Mode>,
    /// Firehose's buffering interval, as the Terraform variable `firehose_buffer_seconds`.
    #[arg(long, value_name = "S", default_value_t = 300, value_parser = clap::value_parser!(u32).range(60..=900))]
    firehose_buffer_seconds: u32,
    /// Price the stack with its compaction schedule disabled (`compaction_enabled = false`).
    #[arg(long)]
    no_compaction: bool,
    /// A prices file of your own (the shape of src/cost/prices-us-east-1.json).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Mode {
    OnDemand,
    Provisioned,
}

/// The most events per hour the model prices: a million times the reference
/// load, far inside what its arithmetic holds exactly.
const MAX_EVENTS_PER_HOUR: f64 = 1e12;
/// The smallest event: `{}`.
const MIN_EVENT_BYTES: f64 = 2.0;
/// The largest prices file (the built-in one is 3 KB).
const MAX_PRICES_BYTES: u64 = 1 << 20;

fn number_within(text: &str, range: std::ops::RangeInclusive<f64>, what: &str) -> Result<f64, String> {
    match text.replace('_', "").parse::<f64>() {
        Ok(x) if range.contains(&x) => Ok(x),
        _ => Err(format!("{text:?}: {what}")),
    }
}

fn events_per_hour(text: &str) -> Result<f64, String> {
    number_within(
        text,
        f64::MIN_POSITIVE..=MAX_EVENTS_PER_HOUR,
        "events per hour must be above 0 and at most 10^12",
    )
}

fn event_bytes(text: &str) -> Result<f64, String> {
    let bytes = number_within(
        text,
        MIN_EVENT_BYTES..=MAX_RECORD_BYTES as f64,
        "an event is 2 to 1,024,000 bytes (Firehose's and the contract's record limit is 1,000 KiB)",
    )?;
    if bytes.fract() != 0.0 {
        return Err(format!("{text:?}: bytes per event is a whole number"));
    }
    Ok(bytes)
}

fn peak_factor(text: &str) -> Result<f64, String> {
    number_within(text, 1.0..=1000.0, "the busiest hour over the average is 1 to 1,000")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let prices = match &args.prices {
        Some(path) => {
            let text = super::read_capped(path, MAX_PRICES_BYTES, "a prices file")?;
            Prices::parse(&text).with_context(|| format!("reading the prices in {}", path.display()))?
        }
        None => Prices::builtin(),
    };
    let load = Load {
        pack_bytes: args.pack_kib.map_or(DEFAULT_RECORD_BYTES as u64, |kib| u64::from(kib) * 1024),
        types: args.types,
        peak_factor: args.peak_factor,
        ..Load::new(args.events_per_hour, args.event_bytes)
    };
    let deployment = Deployment {
        stream_mode: args.stream_mode.map(|mode| match mode {
            Mode::OnDemand => StreamMode::OnDemand,
            Mode::Provisioned => StreamMode::Provisioned,
        }),
        firehose_buffer_seconds: f64::from(args.firehose_buffer_seconds),
        ..Deployment::default()
    };
    let deployment = if args.no_compaction {
        Deployment { compaction_runs_per_month: 0.0, ..deployment }
    } else {
        deployment
    };
    print!("{}", model::render(&load, &model::monthly(&load, &deployment, &prices)));
    Ok(ExitCode::SUCCESS)
}
