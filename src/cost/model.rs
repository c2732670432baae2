//! The monthly cost of a deployment for a load (`eventlake cost`): each AWS
//! charge counted from the load and the Terraform settings with the billing rules
//! of [`super::rules`], priced from a dated [`Prices`] file, plus the capacity the
//! load needs (shards, Lambda concurrency, active partitions).
//!
//! What the model takes from measurement rather than from AWS (each a named
//! constant below): the bytes enrichment adds, the gzip and Parquet sizes, the
//! Lambdas' throughput and fixed costs, the log bytes per invocation.

use std::fmt::Write as _;

use serde::Deserialize;

use super::rules::{billed, units, FIREHOSE_RECORD_UNIT, KINESIS_PUT_PAYLOAD_UNIT, KINESIS_RECORD_UNIT};
use crate::producer::pack::{DEFAULT_RECORD_BYTES, MAX_EVENTS_PER_RECORD};

/// The list prices the model uses (the fields of `prices-*.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub region: String,
    pub as_of: String,
    pub note: String,
    pub sources: Vec<String>,
    pub kinesis_on_demand_stream_hour: f64,
    pub kinesis_on_demand_gb_in: f64,
    pub kinesis_on_demand_gb_out: f64,
    pub kinesis_shard_hour: f64,
    pub kinesis_million_put_payload_units: f64,
    pub firehose_gb_ingested: f64,
    pub firehose_dynamic_partitioning_gb: f64,
    pub firehose_thousand_objects_delivered: f64,
    pub lambda_gb_second: f64,
    pub lambda_million_requests: f64,
    pub s3_thousand_puts: f64,
    pub s3_thousand_gets: f64,
    pub s3_gb_month: f64,
    pub sqs_million_requests: f64,
    pub cloudwatch_metric_month: f64,
    pub cloudwatch_alarm_month: f64,
    pub cloudwatch_dashboard_month: f64,
    pub cloudwatch_logs_gb_ingested: f64,
    pub cloudwatch_logs_gb_month: f64,
    pub kms_key_month: f64,
}

/// The prices shipped with eventlake: us-east-1, dated inside.
pub const BUILTIN_PRICES: &str = include_str!("prices-us-east-1.json");

impl Prices {
    /// Reads a prices file (the shape of [`BUILTIN_PRICES`]).
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The prices shipped with eventlake.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_PRICES).expect("the built-in prices file is valid (a unit test reads it)")
    }
}

/// The traffic.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub events_per_hour: f64,
    /// Average bytes of one event as produced (one NDJSON line, without its newline).
    pub event_bytes: f64,
    /// Bytes per stream record when packing (0: one event per record).
    pub pack_bytes: u64,
    /// Distinct event types (each a Firehose partition per date).
    pub types: u32,
    /// The busiest hour's traffic over the average hour's, for sizing shards.
    pub peak_factor: f64,
}

impl Load {
    /// A load of `events_per_hour` events of `event_bytes`, packed by default, 100 types, peaks 3× the average.
    pub fn new(events_per_hour: f64, event_bytes: f64) -> Self {
        Load {
            events_per_hour,
            event_bytes,
            pack_bytes: DEFAULT_RECORD_BYTES as u64,
            types: 100,
            peak_factor: 3.0,
        }
    }
}

/// How the stream is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    OnDemand,
    /// Provisioned with the shards the load needs at its peak.
    Provisioned,
}

/// The deployment's settings that change the bill: the Terraform variables'
/// defaults (a test reads them from `terraform/variables.tf`) and what the stack
/// creates.
#[derive(Debug, Clone, Copy)]
pub struct Deployment {
    /// `None`: whichever mode costs less for the load.
    pub stream_mode: Option<StreamMode>,
    pub firehose_buffer_seconds: f64,
    pub firehose_buffer_mb: f64,
    pub transform_buffer_mb: f64,
    pub transform_memory_mb: f64,
    pub writer_memory_mb: f64,
    pub writer_batch_size: f64,
    pub staging_expiration_days: f64,
    pub log_retention_days: f64,
    /// The compactor's runs a month (`compaction_schedule`, hourly; 0 with
    /// `compaction_enabled = false`), memory, look-back, the days superseded
    /// files are kept, and the metrics it publishes.
    pub compaction_runs_per_month: f64,
    pub compaction_memory_mb: f64,
    pub compaction_lookback_days: f64,
    pub compaction_grace_days: f64,
    pub compactor_metrics: f64,
    /// CloudWatch alarms the stack creates.
    pub alarms: f64,
    pub dashboards: f64,
    /// Custom metrics the transform and the writer publish every hour (the failure
    /// reasons' metrics exist only in hours with failures, and are left out).
    pub custom_metrics: f64,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            stream_mode: None,
            firehose_buffer_seconds: 300.0,
            firehose_buffer_mb: 128.0,
            transform_buffer_mb: 1.0,
            transform_memory_mb: 256.0,
            writer_memory_mb: 1769.0,
            writer_batch_size: 10.0,
            staging_expiration_days: 7.0,
            log_retention_days: 30.0,
            compaction_runs_per_month: HOURS_PER_MONTH,
            compaction_memory_mb: 2048.0,
            compaction_lookback_days: 3.0,
            compaction_grace_days: 1.0,
            compactor_metrics: 15.0,
            alarms: 18.0,
            dashboards: 1.0,
            custom_metrics: 17.0,
        }
    }
}

/// Hours in AWS's billing month.
pub const HOURS_PER_MONTH: f64 = 730.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;
const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// What the transform adds to an event (`created_datetime`, `event_type`,
/// `event_subtype`): 423 bytes out for 332 in, on `eventlake generate`'s events.
const ENRICHMENT_BYTES: f64 = 91.0;
/// Staged GZIP NDJSON over the events' bytes (`eventlake generate`, 200,000 events: 24%).
const GZIP_RATIO: f64 = 0.24;
/// The lake's ZSTD Parquet over the events' bytes (same input: 22%).
const PARQUET_RATIO: f64 = 0.22;
/// Transform throughput on one vCPU (docs/performance.md: 341–467 MiB/s), and its fixed cost per invocation.
const TRANSFORM_MIB_PER_VCPU_SECOND: f64 = 300.0;
const TRANSFORM_SECONDS_PER_INVOCATION: f64 = 0.005;
/// Writer throughput on one vCPU (ingest of 1 GiB: 65–80 MiB/s), and its fixed
/// cost per staged object (S3 GET, Parquet PUT, tag, Glue on a new partition).
const WRITER_MIB_PER_VCPU_SECOND: f64 = 65.0;
const WRITER_SECONDS_PER_OBJECT: f64 = 0.05;
/// Compaction of tiny files (a day of 1M events in 28,800 files, 2 cores: 4.2 s
/// for about 75 MiB of Parquet): MiB of input Parquet per vCPU-second, and the
/// fixed cost of each file (its GET and, after the grace period, its DELETE, 50
/// ms each with 8 requests in flight, src/compaction/s3.rs) and of each partition
/// listed on a run.
const COMPACTOR_MIB_PER_VCPU_SECOND: f64 = 9.0;
const COMPACTOR_SECONDS_PER_FILE: f64 = 2.0 * 0.05 / 8.0;
const COMPACTOR_SECONDS_PER_LISTED_PARTITION: f64 = 0.02;
/// Lambda's memory per vCPU.
const LAMBDA_MB_PER_VCPU: f64 = 1769.0;
/// Firehose invokes the transform at least once per processor interval (60 s by default).
const TRANSFORM_INVOCATIONS_PER_HOUR_AT_LEAST: f64 = 60.0;
/// Lambda's SQS event source polls with 5 pollers, long polls of 20 s: empty receives when idle.
const SQS_IDLE_RECEIVES_PER_MONTH: f64 = 5.0 * 3.0 * 60.0 * HOURS_PER_MONTH;
/// Log bytes: Lambda's START/END/REPORT lines and the EMF documents per invocation,
/// the writer's line per object.
const LOG_BYTES_PER_TRANSFORM_INVOCATION: f64 = 1500.0;
const LOG_BYTES_PER_WRITER_INVOCATION: f64 = 1000.0;
const LOG_BYTES_PER_OBJECT: f64 = 500.0;
/// One shard takes 1,000 records and 1 MiB per second.
const SHARD_RECORDS_PER_SECOND: f64 = 1000.0;
const SHARD_BYTES_PER_SECOND: f64 = MIB;
/// Firehose's active-partition limit (default quota), and the Terraform alarm's default.
const FIREHOSE_PARTITION_LIMIT: f64 = 500.0;
const PARTITION_ALARM: f64 = 400.0;

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    /// The quantities and rules behind the figure.
    pub counted: String,
    pub dollars: f64,
}

/// The month's bill and what the load needs.
#[derive(Debug, Clone)]
pub struct Estimate {
    pub lines: Vec<Line>,
    pub total: f64,
    /// Capacity and what is left out, one sentence each.
    pub notes: Vec<String>,
}

/// The quantities of a month, derived from the load once.
struct Month {
    events_per_record: f64,
    record_bytes: f64,
    records: f64,
    /// Bytes of the events as produced.
    event_bytes: f64,
    enriched_bytes: f64,
    shards: f64,
    flushes: f64,
    partitions_per_flush: f64,
    objects_per_flush: f64,
    objects: f64,
    transform_invocations: f64,
    writer_invocations: f64,
}

impl Month {
    fn of(load: &Load, deployment: &Deployment) -> Self {
        let events = load.events_per_hour * HOURS_PER_MONTH;
        let events_per_record = events_per_record(load.event_bytes, load.pack_bytes);
        let record_bytes = events_per_record * load.event_bytes + (events_per_record - 1.0);
        let records = events / events_per_record;
        let peak_records = load.events_per_hour / events_per_record / 3600.0 * load.peak_factor;
        let peak_bytes = peak_records * record_bytes;
        let shards = (peak_records / SHARD_RECORDS_PER_SECOND)
            .max(peak_bytes / SHARD_BYTES_PER_SECOND)
            .ceil()
            .max(1.0);
        let flushes = SECONDS_PER_MONTH / deployment.firehose_buffer_seconds;
        let events_per_flush = events / flushes;
        // Types are taken as equally common: the expected number of distinct types
        // among a flush's events.
        let types = f64::from(load.types);
        let partitions_per_flush = (types * (1.0 - (1.0 - 1.0 / types).powf(events_per_flush))).max(1.0);
        let enriched_event = load.event_bytes + ENRICHMENT_BYTES;
        let partition_bytes = events_per_flush * enriched_event / partitions_per_flush;
        let objects_per_partition = (partition_bytes / (deployment.firehose_buffer_mb * MIB)).ceil().max(1.0);
        let objects_per_flush = partitions_per_flush * objects_per_partition;
        let event_bytes = events * load.event_bytes;
        let transform_invocations = (event_bytes / (deployment.transform_buffer_mb * MIB))
            .max(TRANSFORM_INVOCATIONS_PER_HOUR_AT_LEAST * HOURS_PER_MONTH);
        Month {
            events_per_record,
            record_bytes,
            records,
            event_bytes,
            enriched_bytes: events * enriched_event,
            shards,
            flushes,
            partitions_per_flush,
            objects_per_flush,
            objects: flushes * objects_per_flush,
            transform_invocations,
            writer_invocations: flushes * (objects_per_flush / deployment.writer_batch_size).ceil(),
        }
    }
}

/// Events in one record of at most `pack_bytes` (newline-separated, at most 500).
pub fn events_per_record(event_bytes: f64, pack_bytes: u64) -> f64 {
    if pack_bytes == 0 {
        return 1.0;
    }
    ((pack_bytes as f64 + 1.0) / (event_bytes + 1.0)).floor().clamp(1.0, MAX_EVENTS_PER_RECORD as f64)
}

/// The month's bill for `load` on `deployment` at `prices`.
pub fn monthly(load: &Load, deployment: &Deployment, prices: &Prices) -> Estimate {
    let month = Month::of(load, deployment);
    let on_demand = kinesis_on_demand(&month, prices);
    let provisioned = kinesis_provisioned(&month, prices);
    let mode = deployment.stream_mode.unwrap_or(if provisioned.dollars <= on_demand.dollars {
        StreamMode::Provisioned
    } else {
        StreamMode::OnDemand
    });
    let (stream, other) = match mode {
        StreamMode::Provisioned => (provisioned, on_demand),
        StreamMode::OnDemand => (on_demand, provisioned),
    };
    let mut lines = vec![
        stream.clone(),
        firehose(&month, prices),
        transform_lambda(&month, deployment, prices),
        writer_lambda(&month, deployment, prices),
        s3_requests(&month, deployment, prices),
        s3_storage(&month, deployment, prices),
        sqs(&month, prices),
        cloudwatch(&month, deployment, prices),
        kms(prices),
    ];
    if deployment.compaction_runs_per_month > 0.0 {
        lines.insert(4, compactor(load, &month, deployment, prices));
    }
    let total = lines.iter().map(|line| line.dollars).sum();
    let notes = notes(load, deployment, &month, mode, total - stream.dollars + other.dollars, prices);
    Estimate { lines, total, notes }
}

fn kinesis_on_demand(month: &Month, prices: &Prices) -> Line {
    let billed_gib = month.records * billed(month.record_bytes as u64, KINESIS_RECORD_UNIT) as f64 / GIB;
    let dollars = HOURS_PER_MONTH * prices.kinesis_on_demand_stream_hour
        + billed_gib * (prices.kinesis_on_demand_gb_in + prices.kinesis_on_demand_gb_out);
    Line {
        item: "Kinesis, on-demand".into(),
        counted: format!(
            "{} h × ${}; {} records × {} KiB (1 KiB per record, rounded up) = {} GiB in × ${} and out × ${}",
            HOURS_PER_MONTH,
            prices.kinesis_on_demand_stream_hour,
            count(month.records),
            units(month.record_bytes as u64, KINESIS_RECORD_UNIT),
            round(billed_gib),
            prices.kinesis_on_demand_gb_in,
            prices.kinesis_on_demand_gb_out,
        ),
        dollars,
    }
}

fn kinesis_provisioned(month: &Month, prices: &Prices) -> Line {
    let put_units = month.records * units(month.record_bytes as u64, KINESIS_PUT_PAYLOAD_UNIT) as f64;
    let dollars = month.shards * HOURS_PER_MONTH * prices.kinesis_shard_hour
        + put_units / 1e6 * prices.kinesis_million_put_payload_units;
    Line {
        item: format!(
            "Kinesis, provisioned ({} shard{})",
            month.shards,
            if month.shards == 1.0 { "" } else { "s" }
        ),
        counted: format!(
            "{} × {} h × ${}; {} PUT payload units (25 KiB per record, rounded up) × ${}/M",
            month.shards,
            HOURS_PER_MONTH,
            prices.kinesis_shard_hour,
            count(put_units),
            prices.kinesis_million_put_payload_units,
        ),
        dollars,
    }
}

fn firehose(month: &Month, prices: &Prices) -> Line {
    let ingested_gib = month.records * billed(month.record_bytes as u64, FIREHOSE_RECORD_UNIT) as f64 / GIB;
    let partitioned_gib = month.enriched_bytes / GIB;
    let dollars = ingested_gib * prices.firehose_gb_ingested
        + partitioned_gib * prices.firehose_dynamic_partitioning_gb
        + month.objects / 1000.0 * prices.firehose_thousand_objects_delivered;
    Line {
        item: "Firehose".into(),
        counted: format!(
            "{} records × {} KiB (5 KiB per record, rounded up) = {} GiB × ${}; dynamic partitioning {} GiB × ${}; \
             {} objects ({} per flush × {} flushes) × ${}/1000",
            count(month.records),
            units(month.record_bytes as u64, FIREHOSE_RECORD_UNIT) * 5,
            round(ingested_gib),
            prices.firehose_gb_ingested,
            round(partitioned_gib),
            prices.firehose_dynamic_partitioning_gb,
            count(month.objects),
            round(month.objects_per_flush),
            count(month.flushes),
            prices.firehose_thousand_objects_delivered,
        ),
        dollars,
    }
}

/// GB-seconds of `invocations` taking `seconds` each at `memory_mb` (billed per ms).
fn gb_seconds(invocations: f64, seconds: f64, memory_mb: f64) -> f64 {
    invocations * (seconds * 1000.0).ceil() / 1000.0 * memory_mb / 1024.0
}

fn vcpus(memory_mb: f64) -> f64 {
    memory_mb / LAMBDA_MB_PER_VCPU
}

fn transform_seconds(month: &Month, deployment: &Deployment) -> f64 {
    let mib = month.event_bytes / month.transform_invocations / MIB;
    TRANSFORM_SECONDS_PER_INVOCATION
        + mib / (TRANSFORM_MIB_PER_VCPU_SECOND * vcpus(deployment.transform_memory_mb))
}

fn transform_lambda(month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    let what = format!(
        "{} invocations of {} MB",
        count(month.transform_invocations),
        deployment.transform_buffer_mb
    );
    let seconds = transform_seconds(month, deployment);
    lambda_line(
        "firehose-transform",
        what,
        month.transform_invocations,
        seconds,
        deployment.transform_memory_mb,
        prices,
    )
}

/// A Lambda function's line: `invocations` of `seconds` each at `memory_mb`,
/// billed per GB-second (each invocation rounded up to the millisecond) and per request.
fn lambda_line(
    item: &str,
    what: String,
    invocations: f64,
    seconds: f64,
    memory_mb: f64,
    prices: &Prices,
) -> Line {
    let gb_s = gb_seconds(invocations, seconds, memory_mb);
    Line {
        item: item.into(),
        counted: format!(
            "{what} × {} ms at {memory_mb} MB = {} GB-s × ${}; requests × ${}/M",
            (seconds * 1000.0).ceil(),
            count(gb_s),
            prices.lambda_gb_second,
            prices.lambda_million_requests,
        ),
        dollars: gb_s * prices.lambda_gb_second + invocations / 1e6 * prices.lambda_million_requests,
    }
}

fn writer_seconds(month: &Month, deployment: &Deployment) -> f64 {
    let objects = month.objects / month.writer_invocations;
    let mib_per_object = month.enriched_bytes / month.objects / MIB;
    objects
        * (WRITER_SECONDS_PER_OBJECT
            + mib_per_object / (WRITER_MIB_PER_VCPU_SECOND * vcpus(deployment.writer_memory_mb)))
}

fn writer_lambda(month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    let what = format!(
        "{} invocations ({} staged objects, up to {} per batch)",
        count(month.writer_invocations),
        count(month.objects),
        deployment.writer_batch_size
    );
    let seconds = writer_seconds(month, deployment);
    lambda_line(
        "parquet-writer",
        what,
        month.writer_invocations,
        seconds,
        deployment.writer_memory_mb,
        prices,
    )
}

/// The scheduled compactor: its runs, and its S3 requests (a LIST per partition
/// looked at, a GET per file merged and a free DELETE, the merged file and its
/// manifest per partition-day; for the typed views a GET and a free DELETE per
/// writer's observation and each type's counts written a run) and the days
/// superseded files stay.
fn compactor(load: &Load, month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    let types = f64::from(load.types);
    let listed = deployment.compaction_runs_per_month * types * (deployment.compaction_lookback_days + 1.0);
    let partition_days = types * DAYS_PER_MONTH;
    let parquet_mib = parquet_gib_per_month(month) * 1024.0;
    let seconds = month.objects * COMPACTOR_SECONDS_PER_FILE
        + parquet_mib / (COMPACTOR_MIB_PER_VCPU_SECOND * vcpus(deployment.compaction_memory_mb))
        + listed * COMPACTOR_SECONDS_PER_LISTED_PARTITION;
    let runs = deployment.compaction_runs_per_month;
    let gb_s = gb_seconds(runs, seconds / runs, deployment.compaction_memory_mb);
    // The typed views: each type's counts rewritten a run, each observation read.
    let puts = listed + 2.0 * partition_days + runs * types;
    let gets = 2.0 * month.objects + partition_days;
    let superseded_gib = parquet_gib_per_month(month) * deployment.compaction_grace_days / DAYS_PER_MONTH;
    Line {
        item: "Compactor".into(),
        counted: format!(
            "{} runs, {} GB-s at {} MB × ${}; {} LISTs ({} types × {} days a run), merged files and the typed views' counts: {} PUT-class × ${}/1000; {} GETs × ${}/1000 (DELETEs are free); superseded Parquet kept {} day: {} GiB × ${}",
            count(deployment.compaction_runs_per_month),
            count(gb_s),
            deployment.compaction_memory_mb,
            prices.lambda_gb_second,
            count(listed),
            types,
            deployment.compaction_lookback_days + 1.0,
            count(puts),
            prices.s3_thousand_puts,
            count(gets),
            prices.s3_thousand_gets,
            deployment.compaction_grace_days,
            round(superseded_gib),
            prices.s3_gb_month,
        ),
        dollars: gb_s * prices.lambda_gb_second
            + runs / 1e6 * prices.lambda_million_requests
            + puts / 1000.0 * prices.s3_thousand_puts
            + gets / 1000.0 * prices.s3_thousand_gets
            + superseded_gib * prices.s3_gb_month,
    }
}

fn s3_requests(month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    // Per staged object: Firehose's PUT, the writer's GET, its Parquet PUT, the
    // fields it counted for the typed views (while the compactor runs to fold
    // them) and the tag that lets the object expire.
    let per_object = if deployment.compaction_runs_per_month > 0.0 { 4.0 } else { 3.0 };
    let puts = per_object * month.objects;
    Line {
        item: "S3 requests".into(),
        counted: format!(
            "{} PUT-class (Firehose's object, the Parquet file, {}the tag: {} per staged object) × ${}/1000; {} GETs × ${}/1000",
            count(puts),
            if per_object > 3.0 { "the fields counted for the typed views, " } else { "" },
            per_object,
            prices.s3_thousand_puts,
            count(month.objects),
            prices.s3_thousand_gets,
        ),
        dollars: puts / 1000.0 * prices.s3_thousand_puts + month.objects / 1000.0 * prices.s3_thousand_gets,
    }
}

/// The Parquet bytes a month of the load adds to the lake.
fn parquet_gib_per_month(month: &Month) -> f64 {
    month.event_bytes * PARQUET_RATIO / GIB
}

fn s3_storage(month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    let staged_gib = month.enriched_bytes * GZIP_RATIO / GIB;
    let staged_stock = staged_gib * deployment.staging_expiration_days / DAYS_PER_MONTH;
    let parquet = parquet_gib_per_month(month);
    Line {
        item: "S3 storage".into(),
        counted: format!(
            "staged GZIP NDJSON {} GiB a month, kept {} days: {} GiB; the month's Parquet, {} GiB, half a month on \
             average: {} GiB; × ${} per GiB-month",
            round(staged_gib),
            deployment.staging_expiration_days,
            round(staged_stock),
            round(parquet),
            round(parquet / 2.0),
            prices.s3_gb_month,
        ),
        dollars: (staged_stock + parquet / 2.0) * prices.s3_gb_month,
    }
}

fn sqs(month: &Month, prices: &Prices) -> Line {
    let requests = month.objects + 2.0 * month.writer_invocations + SQS_IDLE_RECEIVES_PER_MONTH;
    Line {
        item: "SQS".into(),
        counted: format!(
            "{} notifications + {} receives and {} batch deletes + {} empty long polls (5 pollers, 20 s) = {} \
             requests × ${}/M",
            count(month.objects),
            count(month.writer_invocations),
            count(month.writer_invocations),
            count(SQS_IDLE_RECEIVES_PER_MONTH),
            count(requests),
            prices.sqs_million_requests,
        ),
        dollars: requests / 1e6 * prices.sqs_million_requests,
    }
}

fn cloudwatch(month: &Month, deployment: &Deployment, prices: &Prices) -> Line {
    let log_gib = (month.transform_invocations * LOG_BYTES_PER_TRANSFORM_INVOCATION
        + month.writer_invocations * LOG_BYTES_PER_WRITER_INVOCATION
        + month.objects * LOG_BYTES_PER_OBJECT)
        / GIB;
    let log_stock = log_gib * deployment.log_retention_days / DAYS_PER_MONTH;
    let metrics = deployment.custom_metrics
        + if deployment.compaction_runs_per_month > 0.0 { deployment.compactor_metrics } else { 0.0 };
    Line {
        item: "CloudWatch".into(),
        counted: format!(
            "{} metrics × ${}; {} alarms × ${}; {} dashboard × ${}; {} GiB of logs × ${}, kept {} days × ${}/GiB-month",
            metrics,
            prices.cloudwatch_metric_month,
            deployment.alarms,
            prices.cloudwatch_alarm_month,
            deployment.dashboards,
            prices.cloudwatch_dashboard_month,
            round(log_gib),
            prices.cloudwatch_logs_gb_ingested,
            deployment.log_retention_days,
            prices.cloudwatch_logs_gb_month,
        ),
        dollars: metrics * prices.cloudwatch_metric_month
            + deployment.alarms * prices.cloudwatch_alarm_month
            + deployment.dashboards * prices.cloudwatch_dashboard_month
            + log_gib * prices.cloudwatch_logs_gb_ingested
            + log_stock * prices.cloudwatch_logs_gb_month,
    }
}

fn kms(prices: &Prices) -> Line {
    Line {
        item: "KMS".into(),
        counted: format!(
            "the alarm topic's key × ${} (the stream uses AWS's managed key: no monthly fee)",
            prices.kms_key_month
        ),
        dollars: prices.kms_key_month,
    }
}

fn notes(
    load: &Load,
    deployment: &Deployment,
    month: &Month,
    mode: StreamMode,
    other_total: f64,
    prices: &Prices,
) -> Vec<String> {
    let mut notes = Vec::new();
    let per_second = load.events_per_hour / 3600.0;
    notes.push(format!(
        "Packing: {} events per record, records of {} bytes ({} records/s on average).",
        round(month.events_per_record),
        month.record_bytes.round(),
        round(per_second / month.events_per_record),
    ));
    let (chosen, other) = match mode {
        StreamMode::Provisioned => (
            format!(
                "Stream: provisioned, {} for {}× the average hour (a shard takes 1,000 records/s and 1 MiB/s): \
                 Terraform `stream_mode = \"PROVISIONED\"`, `shard_count = {}`.",
                shards(month.shards),
                load.peak_factor,
                month.shards
            ),
            "on-demand",
        ),
        StreamMode::OnDemand => (
            "Stream: on-demand (Terraform `stream_mode = \"ON_DEMAND\"`, the default).".to_owned(),
            "provisioned",
        ),
    };
    notes.push(chosen);
    notes.push(format!("With an {other} stream instead: ${:.2} per month.", other_total));
    let transform_concurrency = month.transform_invocations / SECONDS_PER_MONTH
        * load.peak_factor
        * transform_seconds(month, deployment);
    let writer_burst = (month.objects_per_flush / deployment.writer_batch_size).ceil();
    notes.push(format!(
        "Lambda: {} concurrent transforms at the peak; up to {} writers at once when Firehose flushes every partition \
         (`writer_max_concurrency`, default 20, bounds them).",
        if transform_concurrency < 1.0 { "under 1".to_owned() } else { round(transform_concurrency.ceil()) },
        writer_burst,
    ));
    let partitions = month.partitions_per_flush;
    let warning = if 2.0 * partitions > PARTITION_ALARM {
        format!(
            " Around midnight two dates are open: {} partitions, past the alarm at {} (the limit is {}): raise the \
             quota.",
            round(2.0 * partitions),
            PARTITION_ALARM,
            FIREHOSE_PARTITION_LIMIT
        )
    } else {
        String::new()
    };
    notes.push(format!(
        "Firehose active partitions: {} (one per type and date; the limit is {}, the alarm at {}).{warning}",
        round(partitions),
        FIREHOSE_PARTITION_LIMIT,
        PARTITION_ALARM
    ));
    notes.push(format!(
        "The lake grows by {} GiB of Parquet a month: ${:.2} more per month for each month kept.",
        round(parquet_gib_per_month(month)),
        parquet_gib_per_month(month) * prices.s3_gb_month
    ));
    notes.push(format!(
        "Not counted: Athena ($5 per TB scanned), free tiers, data transfer out of the region, taxes. Prices: {} \
         list prices of {}.",
        prices.region, prices.as_of
    ));
    notes
}

/// The estimate as the command prints it: a Markdown table, the total line, the notes.
pub fn render(load: &Load, estimate: &Estimate) -> String {
    let mut out = format!(
        "Monthly cost of {} events/hour of {} bytes, {} event types, {}:\n\n",
        count(load.events_per_hour),
        load.event_bytes,
        load.types,
        if load.pack_bytes == 0 {
            "one event per record".to_owned()
        } else {
            format!("packed into records of up to {} bytes", load.pack_bytes)
        },
    );
    out += "| item | how it is counted | per month |\n| --- | --- | ---: |\n";
    for line in &estimate.lines {
        let _ = writeln!(out, "| {} | {} | ${:.2} |", line.item, line.counted, line.dollars);
    }
    let _ = writeln!(out, "\ntotal  ${:.2} per month\n", estimate.total);
    for note in &estimate.notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

fn shards(n: f64) -> String {
    if n == 1.0 {
        "1 shard".to_owned()
    } else {
        format!("{n} shards")
    }
}

/// A count for people: 52.1M, 876k, 730.
fn count(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{}G", round(n / 1e9)),
        n if n >= 1e6 => format!("{}M", round(n / 1e6)),
        n if n >= 1e4 => format!("{}k", round(n / 1e3)),
        n => round(n),
    }
}

/// Three significant digits at most, no trailing zeros.
fn round(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let digits = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{x:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'e>(estimate: &'e Estimate, item: &str) -> &'e Line {
        estimate.lines.iter().find(|line| line.item.starts_with(item)).unwrap()
    }

    #[test]
    fn the_builtin_prices_parse() {
        let prices = Prices::builtin();
        assert_eq!(prices.region, "us-east-1");
        assert!(prices.as_of.starts_with("20"));
    }

    #[test]
    fn packing_fits_as_many_events_as_the_record_takes() {
        // 14 events of 340 bytes and 13 newlines: 4,773 bytes; a 15th would make 5,114.
        assert_eq!(events_per_record(340.0, 5000), 14.0);
        assert_eq!(events_per_record(340.0, 0), 1.0);
        assert_eq!(events_per_record(6000.0, 5000), 1.0, "a long event goes alone");
        assert_eq!(events_per_record(1.0, 1 << 20), 500.0, "Firehose splits at most 500");
    }

    #[test]
    fn kinesis_and_firehose_charges_follow_the_rounding_rules_by_hand() {
        let prices = Prices::builtin();
        let deployment = Deployment { stream_mode: Some(StreamMode::OnDemand), ..Deployment::default() };
        let unpacked = monthly(&Load { pack_bytes: 0, ..Load::new(1e6, 340.0) }, &deployment, &prices);
        // 730M records, each 1 KiB in and out: 730e6 × 1024 / 2^30 GiB.
        let gib = 730e6 * 1024.0 / GIB;
        let expected = 730.0 * 0.04 + gib * (0.08 + 0.04);
        assert!((line(&unpacked, "Kinesis").dollars - expected).abs() < 0.01);
        // Firehose: each record 5 KiB.
        let firehose = line(&unpacked, "Firehose").dollars;
        let ingested = 730e6 * 5120.0 / GIB * 0.029;
        assert!(firehose > ingested && firehose < ingested + 20.0, "{firehose} vs {ingested}");
    }

    #[test]
    fn packing_cuts_the_per_record_charges_and_the_reference_load_meets_its_target() {
        let prices = Prices::builtin();
        let packed = monthly(&Load::new(1e6, 340.0), &Deployment::default(), &prices);
        let unpacked =
            monthly(&Load { pack_bytes: 0, ..Load::new(1e6, 340.0) }, &Deployment::default(), &prices);
        assert!(packed.total < unpacked.total / 2.0, "{} vs {}", packed.total, unpacked.total);
        // Issue 17's target for 1M events/hour of 340 bytes, for the pipeline it
        // priced. Compaction came after it ($6 more), and the typed views it keeps
        // (issue 31: the writer's observation PUT per staged object, their
        // metrics and alarm, $6 more).
        let pipeline = Deployment { compaction_runs_per_month: 0.0, ..Deployment::default() };
        let without_compaction = monthly(&Load::new(1e6, 340.0), &pipeline, &prices);
        assert!(without_compaction.total <= 60.0, "{}", render(&Load::new(1e6, 340.0), &without_compaction));
        assert!(
            packed.total - without_compaction.total < 13.0,
            "compaction and typed views: {}",
            packed.total
        );
        assert_eq!(line(&packed, "Kinesis").item, "Kinesis, provisioned (1 shard)");
    }

    #[test]
    fn shards_follow_the_peak_and_a_thousand_times_the_load_needs_hundreds() {
        let prices = Prices::builtin();
        let big = monthly(&Load::new(1e9, 340.0), &Deployment::default(), &prices);
        // 1e9/3600 × 3 = 833k events/s, 14 per record: 59.5k records/s of 4,773 bytes = 271 MiB/s.
        let kinesis = line(&big, "Kinesis");
        assert_eq!(kinesis.item, "Kinesis, provisioned (271 shards)");
    }

    #[test]
    fn the_total_line_has_the_contract_form() {
        let load = Load::new(1000.0, 340.0);
        let text = render(&load, &monthly(&load, &Deployment::default(), &Prices::builtin()));
        let total = text.lines().find(|line| line.starts_with("total  $")).unwrap();
        assert!(total.ends_with(" per month"), "{total}");
    }

    #[test]
    fn counts_read_well() {
        assert_eq!(count(52_142_857.0), "52.1M");
        assert_eq!(count(876_000.0), "876k");
        assert_eq!(count(730.0), "730");
        assert_eq!(round(0.123456), "0.123");
        assert_eq!(round(14.0), "14");
    }
}
