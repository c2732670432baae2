//! `eventlake cost`: the monthly AWS bill of a load on the deployed stack, and the
//! capacity it needs, from the model in [`crate::cost::model`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cost::model::{self, Deployment, Load, Prices, StreamMode};
use crate::producer::pack::DEFAULT_RECORD_BYTES;

/// Print the monthly AWS cost table for a load, and the capacity it needs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events per hour, on average.
    #[arg(long, value_name = "N", value_parser = positive)]
    events_per_hour: f64,
    /// Average bytes per event (one NDJSON line).
    #[arg(long, value_name = "B", value_parser = positive)]
    event_bytes: f64,
    /// Producers pack events into records of up to K KiB (0: one event per record).
    /// Default: `eventlake send`'s, 5,000 bytes.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pack_kib: Option<u32>,
    /// Distinct event types.
    #[arg(long, value_name = "T", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    types: u32,
    /// The busiest hour over the average hour, for sizing a provisioned stream.
    #[arg(long, value_name = "X", default_value_t = 3.0, value_parser = positive)]
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

fn positive(text: &str) -> Result<f64, String> {
    match text.replace('_', "").parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let prices = match &args.prices {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
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
