//! CloudWatch Embedded Metric Format (EMF) documents for one invocation.
//!
//! Lambda ships every stdout line to CloudWatch Logs, which turns EMF documents into
//! metrics without any API call. The timestamp is passed in, so output is testable.

use serde_json::{json, Value};

use crate::compaction::Tally;
use crate::firehose::Stats;
use crate::lambda::parquet_writer::Report;

/// The CloudWatch namespace of every eventlake metric.
pub const NAMESPACE: &str = "eventlake";

/// EMF documents for one transform invocation: one with the batch counts, and one
/// per failure reason with a `Reason` dimension.
pub fn transform_documents(stats: &Stats, function_name: &str, timestamp_millis: i64) -> Vec<Value> {
    let count = |n: usize| n as u64;
    let counts = [
        ("RecordsIn", count(stats.records), "Count"),
        ("RecordsOk", count(stats.ok), "Count"),
        ("RecordsDropped", count(stats.dropped), "Count"),
        ("RecordsFailed", count(stats.failed_total()), "Count"),
        ("BytesIn", count(stats.bytes_in), "Bytes"),
        ("BytesOut", count(stats.bytes_out), "Bytes"),
        ("ResponseBytes", count(stats.response_bytes), "Bytes"),
        ("PartitionsInBatch", count(stats.partitions), "Count"),
    ];
    let failed = stats.failed.iter().map(|(&reason, &n)| (reason, count(n)));
    documents(function_name, timestamp_millis, &counts, "RecordsFailed", failed)
}

/// EMF documents for one parquet-writer invocation: the object, row and byte
/// counts and its duration, and one per failure reason with a `Reason` dimension.
pub fn writer_documents(
    report: &Report,
    duration_millis: u64,
    function_name: &str,
    timestamp_millis: i64,
) -> Vec<Value> {
    let counts = [
        ("ObjectsWritten", report.objects_written, "Count"),
        ("ObjectsFailed", report.objects_failed_total(), "Count"),
        ("ObjectsDeferred", report.objects_deferred, "Count"),
        ("RowsWritten", report.rows_written, "Count"),
        ("RowsDuplicate", report.rows_duplicate, "Count"),
        ("RowsRejected", report.rows_rejected, "Count"),
        ("BytesIn", report.bytes_in, "Bytes"),
        ("BytesOut", report.bytes_out, "Bytes"),
        ("Duration", duration_millis, "Milliseconds"),
    ];
    let failed = report.objects_failed.iter().map(|(&reason, &n)| (reason, n));
    documents(function_name, timestamp_millis, &counts, "ObjectsFailed", failed)
}

/// EMF documents for one compactor run: partitions by outcome, files, bytes and
/// rows in and out, its duration, and one per failure reason with a `Reason`
/// dimension.
pub fn compactor_documents(
    report: &Tally,
    duration_millis: u64,
    function_name: &str,
    timestamp_millis: i64,
) -> Vec<Value> {
    let counts = [
        ("PartitionsCompacted", report.partitions_compacted, "Count"),
        ("PartitionsAlreadyCompact", report.partitions_already_compact, "Count"),
        ("PartitionsTooRecent", report.partitions_too_recent, "Count"),
        ("PartitionsDeferred", report.partitions_deferred, "Count"),
        ("PartitionsFailed", report.partitions_failed_total(), "Count"),
        ("FilesIn", report.files_in, "Count"),
        ("FilesOut", report.files_out, "Count"),
        ("BytesIn", report.bytes_in, "Bytes"),
        ("BytesOut", report.bytes_out, "Bytes"),
        ("RowsDuplicate", report.duplicates_removed, "Count"),
        ("StrandedFiles", report.files_stranded, "Count"),
        ("SchemaChanges", report.schema_changes, "Count"),
        ("FieldsWidened", report.fields_widened, "Count"),
        ("TypesAtColumnBudget", report.types_at_column_budget, "Count"),
        ("Duration", duration_millis, "Milliseconds"),
    ];
    let failed = report.partitions_failed.iter().map(|(&reason, &n)| (reason, n));
    documents(function_name, timestamp_millis, &counts, "PartitionsFailed", failed)
}

/// One document of `counts` by function, then one of `failed_metric` per reason.
fn documents<'r>(
    function_name: &str,
    timestamp_millis: i64,
    counts: &[(&str, u64, &str)],
    failed_metric: &str,
    failed: impl Iterator<Item = (&'r str, u64)>,
) -> Vec<Value> {
    let mut batch = document(timestamp_millis, &["FunctionName"], counts);
    batch["FunctionName"] = json!(function_name);
    let mut documents = vec![batch];
    for (reason, count) in failed {
        let mut by_reason =
            document(timestamp_millis, &["FunctionName", "Reason"], &[(failed_metric, count, "Count")]);
        by_reason["FunctionName"] = json!(function_name);
        by_reason["Reason"] = json!(reason);
        documents.push(by_reason);
    }
    documents
}

fn document(timestamp_millis: i64, dimensions: &[&str], metrics: &[(&str, u64, &str)]) -> Value {
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect();
    let mut document = json!({
        "_aws": {
            "Timestamp": timestamp_millis,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions],
                "Metrics": definitions,
            }],
        },
    });
    for (name, value, _) in metrics {
        document[*name] = json!(value);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_counts_and_one_per_reason() {
        let mut stats = Stats { records: 5, ok: 2, dropped: 1, bytes_in: 100, ..Stats::default() };
        stats.failed.insert("invalid_json", 1);
        stats.failed.insert("not_base64", 1);
        let docs = transform_documents(&stats, "fn", 1_700_000_000_000);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["RecordsIn"], 5);
        assert_eq!(docs[0]["RecordsFailed"], 2);
        assert_eq!(docs[0]["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(docs[1]["Reason"], "invalid_json");
        assert_eq!(docs[2]["RecordsFailed"], 1);
        // Every declared metric has a value at the top level, as EMF requires.
        for doc in &docs {
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap() {
                assert!(doc[metric["Name"].as_str().unwrap()].is_u64());
            }
        }
    }

    #[test]
    fn writer_documents_count_objects_and_failures_by_reason() {
        let mut report =
            Report { objects_written: 2, objects_deferred: 1, rows_written: 7, ..Report::default() };
        report.objects_failed.insert("unreadable_object", 3);
        let docs = writer_documents(&report, 1234, "writer", 1_700_000_000_000);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["ObjectsWritten"], 2);
        assert_eq!(docs[0]["ObjectsFailed"], 3);
        assert_eq!(docs[0]["ObjectsDeferred"], 1);
        assert_eq!(docs[0]["Duration"], 1234);
        assert_eq!(docs[0]["FunctionName"], "writer");
        assert_eq!(docs[1]["Reason"], "unreadable_object");
        assert_eq!(docs[1]["ObjectsFailed"], 3);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["FunctionName", "Reason"]])
        );
    }
}
