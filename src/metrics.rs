//! CloudWatch Embedded Metric Format (EMF) documents for one invocation.
//!
//! Lambda ships every stdout line to CloudWatch Logs, which turns EMF documents into
//! metrics without any API call. The timestamp is passed in, so output is testable.

use serde_json::{json, Value};

use crate::firehose::Stats;

/// The CloudWatch namespace of every eventlake metric.
pub const NAMESPACE: &str = "eventlake";

/// EMF documents for one transform invocation: one with the batch counts, and one
/// per failure reason with a `Reason` dimension.
pub fn transform_documents(stats: &Stats, function_name: &str, timestamp_millis: i64) -> Vec<Value> {
    let counts = [
        ("RecordsIn", stats.records, "Count"),
        ("RecordsOk", stats.ok, "Count"),
        ("RecordsDropped", stats.dropped, "Count"),
        ("RecordsFailed", stats.failed_total(), "Count"),
        ("BytesIn", stats.bytes_in, "Bytes"),
        ("BytesOut", stats.bytes_out, "Bytes"),
        ("ResponseBytes", stats.response_bytes, "Bytes"),
    ];
    let mut batch = document(timestamp_millis, &["FunctionName"], &counts);
    batch["FunctionName"] = json!(function_name);
    let mut documents = vec![batch];
    for (&reason, &count) in &stats.failed {
        let mut by_reason =
            document(timestamp_millis, &["FunctionName", "Reason"], &[("RecordsFailed", count, "Count")]);
        by_reason["FunctionName"] = json!(function_name);
        by_reason["Reason"] = json!(reason);
        documents.push(by_reason);
    }
    documents
}

fn document(timestamp_millis: i64, dimensions: &[&str], metrics: &[(&str, usize, &str)]) -> Value {
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
}
