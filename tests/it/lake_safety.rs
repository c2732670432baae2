//! The local lake under hostile input and hostile runs (issue 13): records past
//! the contract's limits, re-runs with other options, killed runs, event types
//! that differ only in case, the plausibility window, errors shown once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{eventlake, files_under, python_json, success};

fn ingest(lake: &std::path::Path, extra: &[&str], inputs: &[&std::path::Path]) -> std::process::Output {
    let mut command = eventlake();
    command.arg("ingest").args(extra).arg("--lake").arg(lake).args(inputs);
    success(&mut command)
}

fn rejected_entries(lake: &std::path::Path) -> Vec<serde_json::Value> {
    files_under(lake)
        .into_iter()
        .filter(|f| f.starts_with("_rejected/") && f.ends_with(".ndjson"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(lake.join(f)).unwrap();
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

fn event(uuid: u32, name: &str, extra: &str) -> String {
    format!(
        r#"{{"event_uuid":"00000000-0000-4000-8000-{uuid:012}","event_name":"{name}","created_at":1710689696{extra}}}"#
    )
}

/// DuckDB over every file under `events/` (the glob the issue's users run): a
/// stray temporary file there would make it fail.
fn duckdb_count_all_files(lake: &std::path::Path) -> u64 {
    const SCRIPT: &str = r#"
import duckdb, json, sys
print(json.dumps(duckdb.sql(f"SELECT count(*) FROM read_parquet('{sys.argv[1]}/events/**/*')").fetchall()[0][0]))
"#;
    python_json(SCRIPT, &[lake.to_str().unwrap()]).as_u64().unwrap()
}

/// Keys a single Parquet file holds more than once (DuckDB): the contract allows
/// duplicates across files, never within one.
fn same_file_duplicates(lake: &std::path::Path) -> u64 {
    const SCRIPT: &str = r#"
import duckdb, json, sys
print(json.dumps(duckdb.sql(f"""SELECT count(*) FROM (
    SELECT filename, event_uuid, created_datetime FROM read_parquet('{sys.argv[1]}/events/**/*.parquet', filename = true)
    GROUP BY ALL HAVING count(*) > 1)""").fetchall()[0][0]))
"#;
    python_json(SCRIPT, &[lake.to_str().unwrap()]).as_u64().unwrap()
}

#[test]
fn records_past_the_size_and_depth_limits_are_rejected_and_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big_payload = "x".repeat(3 << 20);
    let huge = event(1, "a", &format!(r#","p":"{big_payload}""#));
    let deep = event(2, "a", &format!(r#","p":{}{}"#, "[".repeat(100_000), "]".repeat(100_000)));
    let nested_128 = event(3, "a", &format!(r#","p":{}{}"#, "[".repeat(127), "]".repeat(127)));
    // A line of 2 MiB of spaces holds no record: blank, not rejected.
    let spaces = " ".repeat(2 << 20);
    let input =
        [event(0, "a", ""), huge.clone(), deep, nested_128, spaces, event(4, "a", "")].join("\n") + "\n";
    std::fs::write(dir.path().join("in.ndjson"), &input).unwrap();
    let lake = dir.path().join("lake");
    let output = ingest(&lake, &[], &[&dir.path().join("in.ndjson")]);
    assert_eq!(crate::lake_local::summary_table(&output.stdout)["blank lines"], 1);

    assert_eq!(duckdb_count_all_files(&lake), 3, "the small events and the one 128 levels deep");
    let entries = rejected_entries(&lake);
    let codes: Vec<&str> = entries.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["record_too_large", "too_deeply_nested"]);
    // The oversized line is kept byte for byte in its own file, named by its entry.
    let key = entries[0]["record_key"].as_str().unwrap();
    assert_eq!(std::fs::read(lake.join(key)).unwrap(), huge.as_bytes());
    assert_eq!(entries[0]["line"], 2);
    assert!(
        entries[0]["reason"].as_str().unwrap().contains("over the limit of 1024000 bytes"),
        "{}",
        entries[0]
    );
    assert!(entries[0].get("record").is_none());
}

#[test]
fn a_rerun_with_other_limits_replaces_the_earlier_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let events =
        success(eventlake().args(["generate", "--events", "30000", "--types", "2", "--days", "1"])).stdout;
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, events).unwrap();
    let lake = dir.path().join("lake");
    let small = ingest(&lake, &["--partition-mib", "1", "--buffer-mib", "1"], &[&input]);
    let small = crate::lake_local::summary_table(&small.stdout);
    // The dedupe set counts against the 1 MiB budget: it had to start again.
    assert!(small["dedupe restarts"] > 0, "{small:?}");
    // And no file spans a restart: no file holds two rows with one dedupe key.
    assert_eq!(same_file_duplicates(&lake), 0);
    let written = small["written"];
    let files_small = files_under(&lake.join("events")).len();
    let again = ingest(&lake, &[], &[&input]);
    let files_default = files_under(&lake.join("events")).len();
    assert!(files_small > files_default, "{files_small} parts with 1 MiB, {files_default} with the defaults");
    let again = crate::lake_local::summary_table(&again.stdout);
    assert!(again["stale files deleted"] > 0, "{again:?}");
    // (The 1 MiB budget restarts the dedupe set, so that run writes a few
    // duplicates more: each run's lake holds exactly what that run wrote.)
    assert_eq!(duckdb_count_all_files(&lake), again["written"], "rows of the first run's extra parts remain");
    // And back: the defaults' parts are replaced by the small ones.
    ingest(&lake, &["--partition-mib", "1", "--buffer-mib", "1"], &[&input]);
    assert_eq!(files_under(&lake.join("events")).len(), files_small);
    assert_eq!(duckdb_count_all_files(&lake), written);
}

#[test]
fn a_killed_run_leaves_nothing_a_reader_sees_and_the_next_run_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Standard input is spooled to an unnamed file in the run's scratch
    // directory: hold it open, wait for the directory, then kill the run mid-way.
    let mut child = eventlake()
        .args(["ingest", "--quiet", "--lake"])
        .arg(&lake)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{}\n", event(1, "a", "")).as_bytes()).unwrap();
    let started = Instant::now();
    let run_dir_exists = || {
        std::fs::read_dir(lake.join("_tmp")).is_ok_and(|entries| {
            entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("run-"))
        })
    };
    while !run_dir_exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no spool in {}/_tmp: {:?}",
            lake.display(),
            files_under(&lake)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let left = files_under(&lake);
    assert!(
        left.iter().all(|f| f.starts_with("_tmp/run-") && f.ends_with("/lock")),
        "the spool went with the process, only the run directory's lock is left: {left:?}"
    );

    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, format!("{}\n", event(2, "a", ""))).unwrap();
    ingest(&lake, &[], &[&input]);
    let files = files_under(&lake);
    assert!(
        files.iter().all(|f| !f.starts_with("_tmp/run-")),
        "the killed run's directory is still there: {files:?}"
    );
    // Besides the lake's files: its record of the input's first ingestion, the
    // typed views' schema files, and the lock files spellings are claimed and
    // the views written under (the locks go with the process).
    assert!(
        files.iter().all(|f| f.ends_with(".parquet")
            || (f.starts_with("_sources/") && f.ends_with(".json"))
            || (f.starts_with("_schemas/") && f.ends_with(".json"))
            || f == "_tmp/spellings.lock"
            || f == "_tmp/views.lock"),
        "{files:?}"
    );
    assert_eq!(duckdb_count_all_files(&lake), 1);
}

#[test]
fn a_local_lake_keeps_one_spelling_per_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let first = dir.path().join("first.ndjson");
    std::fs::write(&first, format!("{}\n{}\n", event(1, "payment:x", ""), event(2, "Payment:y", "")))
        .unwrap();
    ingest(&lake, &[], &[&first]);
    let second = dir.path().join("second.ndjson");
    std::fs::write(&second, format!("{}\n{}\n", event(3, "PAYMENT:z", ""), event(4, "payment:w", "")))
        .unwrap();
    ingest(&lake, &[], &[&second]);

    let type_dirs: Vec<String> = std::fs::read_dir(lake.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(type_dirs, ["event_type=payment"]);
    assert_eq!(duckdb_count_all_files(&lake), 2);
    let entries = rejected_entries(&lake);
    let rejected: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["code"].as_str().unwrap(), e["record"].as_str().unwrap())).collect();
    assert_eq!(rejected.len(), 2, "{entries:?}");
    assert!(rejected.iter().all(|(code, _)| *code == "event_type_case_conflict"));
    assert!(rejected.iter().any(|(_, record)| record.contains("Payment:y")));
    assert!(rejected.iter().any(|(_, record)| record.contains("PAYMENT:z")));
    let reason = entries[0]["reason"].as_str().unwrap();
    assert!(reason.contains("differs only in case from \"payment\""), "{reason}");
}

#[test]
fn the_plausibility_window_is_off_by_default_and_rejects_with_a_reason_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().timestamp();
    let line = |uuid: u32, at: i64| {
        format!(r#"{{"event_uuid":"00000000-0000-4000-8000-{uuid:012}","event_name":"a","created_at":{at}}}"#)
    };
    let input = dir.path().join("in.ndjson");
    let old = now - 400 * 86_400;
    let ahead = now + 3 * 86_400;
    std::fs::write(&input, [line(1, now), line(2, old), line(3, ahead)].join("\n")).unwrap();
    let open = dir.path().join("open");
    ingest(&open, &[], &[&input]);
    assert_eq!(duckdb_count_all_files(&open), 3);

    let windowed = dir.path().join("windowed");
    ingest(&windowed, &["--max-age-days", "30", "--max-future-days", "1"], &[&input]);
    assert_eq!(duckdb_count_all_files(&windowed), 1);
    let entries = rejected_entries(&windowed);
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e["code"] == "created_at_implausible"));
    assert!(
        entries[0]["reason"].as_str().unwrap().contains("400 days before the processing time"),
        "{}",
        entries[0]
    );
    assert!(
        entries[1]["reason"].as_str().unwrap().contains("days after the processing time"),
        "{}",
        entries[1]
    );
}

#[test]
fn partition_sizes_that_would_overflow_offsets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = eventlake()
        .args(["ingest", "--partition-mib", "4096", "--buffer-mib", "8192", "--lake"])
        .arg(dir.path())
        .arg("-")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--partition-mib") && stderr.contains("1..=1024"), "{stderr}");
}

#[test]
fn errors_show_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    // `events` is a file: creating a partition directory under it fails.
    std::fs::write(lake.join("events"), b"not a directory").unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, format!("{}\n", event(1, "a", ""))).unwrap();
    let output = eventlake().arg("ingest").arg("--lake").arg(&lake).arg(&input).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    assert!(stderr.contains("events"), "{stderr}");
}

#[test]
fn reasons_and_logs_never_carry_payload_values() {
    // Every record carries a secret in a payload field and breaks one rule.
    const SECRET: &str = "s3cr3t-card-4111111111111111";
    let records = [
        format!(r#"{{"event_uuid":"nope","event_name":"a","created_at":1,"card":"{SECRET}"}}"#),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a b","created_at":1,"card":"{SECRET}"}}"#
        ),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a","created_at":"1","card":"{SECRET}"}}"#
        ),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a","created_at":1,"card":"{SECRET}","card":"{SECRET}"}}"#
        ),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a","created_at":1,"card":"{SECRET}"}} trailing"#
        ),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a","created_at":1,"card":"{SECRET}\ud800"}}"#
        ),
        format!(
            r#"{{"event_uuid":"00000000-0000-4000-8000-000000000001","event_name":"a","created_at":1,"card":"{SECRET}","n":NaN}}"#
        ),
        format!(r#"{{"event_name":"a","created_at":1,"card":"{SECRET}"}}"#),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, records.join("\n")).unwrap();
    let lake = dir.path().join("lake");
    let output = ingest(&lake, &[], &[&input]);
    let entries = rejected_entries(&lake);
    assert_eq!(entries.len(), records.len());
    for entry in &entries {
        assert!(!entry["reason"].as_str().unwrap().contains(SECRET), "{entry}");
    }
    assert!(!String::from_utf8_lossy(&output.stderr).contains(SECRET));

    // The transform logs each rejection: with its reason, never the payload.
    let request = serde_json::json!({"records": records.iter().enumerate().map(|(i, r)| {
        use base64::Engine as _;
        serde_json::json!({"recordId": i.to_string(), "data": base64::engine::general_purpose::STANDARD.encode(r)})
    }).collect::<Vec<_>>()});
    let mut command = eventlake();
    command.arg("transform");
    let output = crate::support::run_with_input(command, request.to_string().as_bytes());
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("\"record rejected\"").count(), records.len(), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

#[test]
fn a_dedupe_restart_never_puts_one_key_twice_in_a_file() {
    // Every event followed by two copies, in one partition: with a 1 MiB budget
    // the dedupe set restarts between some event and its last copy (the set
    // grows while a copy is looked up, so the restart comes one record later).
    let dir = tempfile::tempdir().unwrap();
    let generate = [
        "generate",
        "--events",
        "70000",
        "--types",
        "1",
        "--days",
        "1",
        "--duplicates",
        "0",
        "--invalid",
        "0",
    ];
    let events = success(eventlake().args(generate)).stdout;
    let tripled: Vec<u8> = events
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .flat_map(|line| [line, b"\n", line, b"\n", line, b"\n"].concat())
        .collect();
    let input = dir.path().join("tripled.ndjson");
    std::fs::write(&input, tripled).unwrap();
    let lake = dir.path().join("lake");
    let output = ingest(&lake, &["--partition-mib", "1", "--buffer-mib", "1"], &[&input]);
    let summary = crate::lake_local::summary_table(&output.stdout);
    assert!(summary["dedupe restarts"] > 0, "{summary:?}");
    assert_eq!(same_file_duplicates(&lake), 0, "{summary:?}");
    assert_eq!(duckdb_count_all_files(&lake), summary["written"]);
}
