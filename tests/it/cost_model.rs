//! `eventlake cost` against what it models: the Terraform defaults it prices, the
//! metrics the Lambdas publish, and the README's cost section, which is its output.

use eventlake::cost::model::{self, Deployment, Load, Prices};
use eventlake::lambda::metrics;

use crate::support::{eventlake, success};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The default of `variable "name"` in terraform/variables.tf.
fn terraform_default(variables: &str, name: &str) -> f64 {
    let block = variables
        .split(&format!("variable \"{name}\" {{"))
        .nth(1)
        .unwrap_or_else(|| panic!("no variable {name}"));
    let line = block.lines().find(|line| line.trim_start().starts_with("default")).unwrap();
    line.split('=').nth(1).unwrap().trim().parse().unwrap_or_else(|_| panic!("{name}: {line}"))
}

#[test]
fn the_model_prices_the_terraform_defaults() {
    let variables = std::fs::read_to_string(format!("{ROOT}/terraform/variables.tf")).unwrap();
    let deployment = Deployment::default();
    for (name, modeled) in [
        ("firehose_buffer_seconds", deployment.firehose_buffer_seconds),
        ("firehose_buffer_mb", deployment.firehose_buffer_mb),
        ("transform_buffer_mb", deployment.transform_buffer_mb),
        ("transform_memory_mb", deployment.transform_memory_mb),
        ("writer_memory_mb", deployment.writer_memory_mb),
        ("writer_batch_size", deployment.writer_batch_size),
        ("staging_expiration_days", deployment.staging_expiration_days),
        ("log_retention_days", deployment.log_retention_days),
        ("compaction_memory_mb", deployment.compaction_memory_mb),
        ("compaction_lookback_days", deployment.compaction_lookback_days),
        ("compaction_grace_days", deployment.compaction_grace_days),
    ] {
        assert_eq!(modeled, terraform_default(&variables, name), "{name}");
    }
}

#[test]
fn the_model_prices_every_metric_the_lambdas_publish_each_hour() {
    let transform = metrics::transform_documents(&Default::default(), "f", 0);
    let writer = metrics::writer_documents(&Default::default(), 0, "w", 0);
    let compactor = metrics::compactor_documents(&Default::default(), 0, "c", 0);
    let count = |document: &serde_json::Value| {
        document["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len()
    };
    assert_eq!(Deployment::default().custom_metrics, (count(&transform[0]) + count(&writer[0])) as f64);
    assert_eq!(Deployment::default().compactor_metrics, count(&compactor[0]) as f64);
}

#[test]
fn the_model_runs_the_compactor_on_the_terraform_schedule() {
    let variables = std::fs::read_to_string(format!("{ROOT}/terraform/variables.tf")).unwrap();
    let block = variables.split("variable \"compaction_schedule\" {").nth(1).unwrap();
    let default = block.lines().find(|line| line.trim_start().starts_with("default")).unwrap();
    assert!(default.ends_with("\"rate(1 hour)\""), "compaction_schedule's {default}");
    assert_eq!(Deployment::default().compaction_runs_per_month, model::HOURS_PER_MONTH);
}

fn reference() -> String {
    let load = Load::new(1e6, 340.0);
    model::render(&load, &model::monthly(&load, &Deployment::default(), &Prices::builtin()))
}

#[test]
fn the_command_prints_the_model_and_the_readme_shows_it() {
    let output = success(eventlake().args(["cost", "--events-per-hour", "1000000", "--event-bytes", "340"]));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed, reference());
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    assert!(
        readme.contains(&printed),
        "README.md's cost section is not the output of `eventlake cost --events-per-hour 1000000 --event-bytes 340`:\n{printed}"
    );
}

#[test]
fn a_prices_file_of_ones_own_is_used_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut prices: serde_json::Value = serde_json::from_str(model::BUILTIN_PRICES).unwrap();
    prices["kinesis_shard_hour"] = serde_json::json!(1.0);
    let path = dir.path().join("prices.json");
    std::fs::write(&path, prices.to_string()).unwrap();
    let output = success(
        eventlake()
            .args([
                "cost",
                "--events-per-hour",
                "1000",
                "--event-bytes",
                "340",
                "--stream-mode",
                "provisioned",
                "--prices",
            ])
            .arg(&path),
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains("| Kinesis, provisioned (1 shard) | 1 × 730 h × $1;"), "{printed}");
    prices["kinesis_shard_hour_typo"] = serde_json::json!(1.0);
    std::fs::write(&path, prices.to_string()).unwrap();
    let output = eventlake()
        .args(["cost", "--events-per-hour", "1000", "--event-bytes", "340", "--prices"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field `kinesis_shard_hour_typo`"));
}
