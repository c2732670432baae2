//! `eventlake query` and `athena/`: every ready query runs unchanged on a generated
//! local lake and returns what a plain-Python computation over the same Parquet
//! (read with pyarrow) says it must; every statement parses as Athena SQL.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventlake, fixture, python_json, success};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn query_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("athena/queries"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

/// Hand-made events that give the funnel query users who convert and users who do
/// not (generated user ids rarely meet across types).
fn funnel_events(today: chrono::NaiveDate) -> String {
    let day = today - chrono::Days::new(2);
    let at = |hour: u32| day.and_hms_opt(hour, 0, 0).unwrap().and_utc().timestamp();
    let event = |n: u32, name: &str, user: &str, time: i64| {
        json!({"event_uuid": format!("00000000-0000-4000-8000-{n:012}"), "event_name": name,
               "created_at": time, "user_id": user})
        .to_string()
    };
    [
        event(1, "cart:item:created", "funnel_a", at(9)),
        event(2, "checkout:order:completed", "funnel_a", at(10)),
        event(3, "cart:item:created", "funnel_b", at(9)),
        event(4, "checkout:order:completed", "funnel_b", at(8)),
        event(5, "cart:item:created", "funnel_c", at(11)),
        event(6, "cart:item:created", "funnel_c", at(12)),
        event(7, "checkout:order:completed", "funnel_c", at(12)),
        event(8, "cart:item:created", "funnel_d", at(7)),
    ]
    .join("\n")
        + "\n"
}

/// A lake of a week of generated events ending on `today`, ingested in two runs
/// that overlap (so the lake holds duplicates across runs), built once per test binary.
struct Lake {
    dir: tempfile::TempDir,
    /// The lake's last day: today (UTC) when it was built.
    today: chrono::NaiveDate,
}

fn fixture_lake() -> &'static Lake {
    static LAKE: OnceLock<Lake> = OnceLock::new();
    LAKE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let today = chrono::Utc::now().date_naive();
        let start = (today - chrono::Days::new(6)).to_string();
        let generated = success(eventlake().args([
            "generate", "--events", "40000", "--seed", "11", "--types", "30", "--start", &start, "--days",
            "7",
        ]))
        .stdout;
        let first = dir.path().join("first.ndjson");
        let mut first_bytes = generated.clone();
        first_bytes.extend_from_slice(funnel_events(today).as_bytes());
        std::fs::write(&first, first_bytes).unwrap();
        // The second run repeats about a tenth of the first run's lines.
        let second = dir.path().join("second.ndjson");
        let lines: Vec<&[u8]> = generated.split(|&b| b == b'\n').collect();
        let repeated: Vec<u8> =
            lines.iter().step_by(10).flat_map(|line| line.iter().chain(b"\n")).copied().collect();
        std::fs::write(&second, repeated).unwrap();
        let root = dir.path().join("lake");
        for input in [&first, &second] {
            success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(&root).arg(input));
        }
        Lake { dir, today }
    })
}

fn lake() -> &'static Path {
    fixture_lake().dir.path()
}

/// What the queries must return when run on `day` (their `current_date`).
fn expected_on(day: chrono::NaiveDate) -> Value {
    let script = std::fs::read_to_string(fixture("query_expected.py")).unwrap();
    python_json(&script, &[lake().join("lake").to_str().unwrap(), &day.to_string()])
}

/// The expectations on the lake's last day: for the facts about the lake itself.
fn expected() -> &'static Value {
    static EXPECTED: OnceLock<Value> = OnceLock::new();
    EXPECTED.get_or_init(|| expected_on(fixture_lake().today))
}

fn query_json(args: &[&str]) -> Vec<Value> {
    let output = success(
        eventlake().arg("query").arg("--lake").arg(lake().join("lake")).args(["--format", "json"]).args(args),
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Compares one value: exact, except the columns whose meaning allows slack.
fn same(column: &str, actual: &Value, expected: &Value) -> bool {
    match (column, actual.as_f64(), expected.as_f64()) {
        // HyperLogLog (Athena's error is 2.3%; DataFusion's is smaller).
        ("users", Some(a), Some(e)) => (a - e).abs() <= (e * 0.03).max(2.0),
        // now() moves between the two computations.
        ("minutes_behind", Some(a), Some(e)) => (a - e).abs() <= 2.0,
        // Rounded to 2 places by the query, not by the expectation.
        ("percent" | "conversion_percent", Some(a), Some(e)) => (a - e).abs() <= 0.006,
        _ => actual == expected,
    }
}

fn assert_rows(name: &str, actual: &[Value], expected: &[Value]) {
    assert_eq!(actual.len(), expected.len(), "{name}: row count\nactual: {actual:?}\nexpected: {expected:?}");
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (a.as_object().unwrap(), e.as_object().unwrap());
        assert_eq!(a.keys().collect::<Vec<_>>(), e.keys().collect::<Vec<_>>(), "{name}: columns");
        for (column, value) in e {
            assert!(
                same(column, &a[column], value),
                "{name} row {index} {column}: got {}, want {value}",
                a[column]
            );
        }
    }
}

#[test]
fn every_ready_query_returns_what_an_independent_computation_says() {
    let files = query_files();
    assert!(files.len() >= 8, "{files:?}");
    // The SQL reads `current_date` when it runs: the expectations are computed for
    // the day the queries ran on, and a run that straddles midnight is repeated.
    let today = || chrono::Utc::now().date_naive();
    let (day, results) = loop {
        let day = today();
        let results: Vec<Vec<Value>> =
            files.iter().map(|file| query_json(&["--file", file.to_str().unwrap()])).collect();
        if today() == day {
            break (day, results);
        }
    };
    let expected = expected_on(day);
    let expected = expected.as_object().unwrap();
    for (file, mut got) in files.iter().zip(results) {
        let name = file.file_stem().unwrap().to_str().unwrap();
        let want = expected.get(name).unwrap_or_else(|| panic!("no independent expectation for {name}"));
        let mut want = want.as_array().unwrap().clone();
        if name == "freshness" {
            // Ordered by minutes_behind, which moves with now(): compare by type.
            got.sort_by_key(|row| row["event_type"].as_str().unwrap().to_owned());
            want.sort_by_key(|row| row["event_type"].as_str().unwrap().to_owned());
        }
        assert!(!want.is_empty() || name == "duplicates", "{name}: the lake should give it rows to check");
        assert_rows(name, &got, &want);
    }
}

/// CONTRACT section 5: the SQL argument is any text, one that starts with a `--`
/// comment included (it was taken for an unknown option).
#[test]
fn sql_given_as_the_argument_may_start_with_a_comment() {
    let file = query_files().into_iter().find(|file| file.ends_with("events_per_type_per_day.sql")).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("--"), "the ready queries start with a comment");
    let by_argument = query_json(&[&text]);
    assert!(!by_argument.is_empty());
    assert_eq!(by_argument, query_json(&["--file", file.to_str().unwrap()]));
}

#[test]
fn the_lake_has_what_the_queries_need() {
    let expected = expected();
    assert!(expected["duplicates"].as_array().unwrap().len() > 10, "cross-run duplicates exist");
    // funnel_a and funnel_c convert, funnel_b (checkout before cart) and funnel_d do not.
    assert!(expected["funnel"][0]["converted_users"].as_u64().unwrap() >= 2);
    assert!(expected["hourly_volume"].as_array().unwrap().len() == 24);
}

#[test]
fn the_unique_view_removes_exactly_the_duplicates() {
    let expected = expected();
    let rows = query_json(&["SELECT count(*) AS n FROM events_unique"]);
    assert_eq!(rows, [json!({"n": expected["_events_unique_rows"]})]);
    let rows = query_json(&["SELECT count(*) AS n FROM events"]);
    assert_eq!(rows, [json!({"n": expected["_events_rows"]})]);
    assert!(expected["_events_rows"].as_u64() > expected["_events_unique_rows"].as_u64());
}

#[test]
fn partition_filters_prune_files() {
    // The lake's last day, not the clock's: the test holds across midnight.
    let day = fixture_lake().today;
    let plan = query_json(&[&format!(
        "EXPLAIN ANALYZE SELECT count(DISTINCT event_uuid) FROM events \
         WHERE event_type = 'payment' AND created_date = '{day}'"
    )]);
    let text = plan.iter().map(|row| row["plan"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    let scanned: Vec<&str> =
        text.split(['[', ']', ',', ' ']).filter(|part| part.ends_with(".parquet")).collect();
    assert!(!scanned.is_empty(), "{text}");
    for file in scanned {
        assert!(
            file.contains(&format!("/event_type=payment/created_date={day}/")),
            "only that partition is read: {file}"
        );
    }
}

/// A filter on the view's columns reaches the scan that reads the rows it keeps:
/// a query on one type over `events_unique` reads only that type's payloads (the
/// keys of every type are read, since a key may be under two types). The window
/// the view's file states cannot pass the filter; `eventlake query` runs the same
/// rule as an aggregate and a join that can.
#[test]
fn the_unique_view_reads_payloads_only_of_the_types_asked_for() {
    let sql =
        "SELECT count(*) AS n, count(payload) AS payloads FROM events_unique WHERE event_type = 'payment'";
    let plan = query_json(&[&format!("EXPLAIN ANALYZE {sql}")]);
    let text = plan.iter().map(|row| row["plan"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    let payload_scans: Vec<&str> =
        text.lines().filter(|line| line.contains("DataSourceExec") && line.contains("payload")).collect();
    assert_eq!(payload_scans.len(), 1, "{text}");
    // The plan lists at most five files a group; its metrics count them all.
    let files_scanned = payload_scans[0]
        .split("files_ranges_pruned_statistics=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|files| files.parse::<usize>().ok());
    let payment_files = std::fs::read_dir(lake().join("lake/events/event_type=payment"))
        .unwrap()
        .map(|day| std::fs::read_dir(day.unwrap().path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(files_scanned, Some(payment_files), "only payment's files: {}", payload_scans[0]);
    let expected = expected();
    let payments = expected["_events_unique_payment_rows"].clone();
    assert_eq!(query_json(&[sql]), [json!({"n": payments, "payloads": payments})]);
}

/// Projection pushdown, read from each ready query's plan: its scans read only
/// the columns its SQL names (and, on `events_unique`, those the view's key and
/// received order read), so `payload`, most of a file's bytes, is read only by the queries that
/// extract from it.
#[test]
fn ready_queries_read_only_the_columns_they_name() {
    let view_reads = ["event_uuid", "created_datetime", "ingested_at", "input_file_name() as source_file"];
    for file in query_files() {
        let sql = std::fs::read_to_string(&file).unwrap();
        let plan = query_json(&[&format!("EXPLAIN {sql}")]);
        let text =
            plan.iter().map(|row| row["plan"].as_str().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let scans: Vec<&str> = text.lines().filter(|line| line.contains("DataSourceExec")).collect();
        assert!(!scans.is_empty(), "{}: {text}", file.display());
        for scan in scans {
            let projection = scan.split("projection=[").nth(1).and_then(|rest| rest.split(']').next());
            let projection =
                projection.unwrap_or_else(|| panic!("{}: no projection in {scan}", file.display()));
            for column in projection.split(", ").flat_map(columns_read) {
                let named =
                    sql.contains(column) || (sql.contains("events_unique") && view_reads.contains(&column));
                assert!(named, "{}: reads {column}, which it does not use: {projection}", file.display());
            }
            if !sql.contains("payload") {
                assert!(!projection.contains("payload"), "{}: {projection}", file.display());
            }
        }
        assert_eq!(
            text.contains("payload"),
            sql.contains("payload"),
            "{}: payload is read where the query extracts from it: {text}",
            file.display()
        );
    }
}

/// The columns one item of a scan's projection reads: the item itself, or the
/// columns an expression computed in the scan names (`f(created_datetime@4) as ...`).
fn columns_read(item: &str) -> Vec<&str> {
    if !item.contains('@') {
        return vec![item];
    }
    let before_each_at = item.split('@').rev().skip(1);
    before_each_at
        .map(|text| text.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or(text))
        .collect()
}

/// DataFusion's own environment variables tune the engine: Parquet filter pushdown
/// is on unless DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS says otherwise (with
/// it, the scan applies the filter and no FilterExec is left), and a value the
/// engine cannot take is an error naming the setting.
#[test]
fn datafusion_variables_tune_the_engine() {
    let lake_dir = lake().join("lake");
    let explain = "EXPLAIN SELECT event_uuid FROM events WHERE event_name = 'payment:x'";
    let plan = |pushdown: Option<&str>| {
        let mut command = eventlake();
        command.arg("query").arg("--lake").arg(&lake_dir).args(["--format", "csv", explain]);
        if let Some(value) = pushdown {
            command.env("DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS", value);
        }
        String::from_utf8(success(&mut command).stdout).unwrap()
    };
    assert!(!plan(None).contains("FilterExec"), "{}", plan(None));
    assert!(plan(Some("false")).contains("FilterExec"), "{}", plan(Some("false")));
    let bad = eventlake()
        .arg("query")
        .arg("--lake")
        .arg(&lake_dir)
        .arg("SELECT 1")
        .env("DATAFUSION_EXECUTION_BATCH_SIZE", "abc")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("datafusion.execution.batch_size"));
}

#[test]
fn formats_and_errors() {
    let sql = "SELECT event_type, count(*) AS n FROM events WHERE event_type IN ('payment', 'cart') GROUP BY 1 ORDER BY 1";
    let lake_dir = lake().join("lake");
    let csv =
        success(eventlake().arg("query").arg("--lake").arg(&lake_dir).args(["--format", "csv", sql])).stdout;
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("event_type,n\ncart,"), "{csv}");
    let table =
        String::from_utf8(success(eventlake().arg("query").arg("--lake").arg(&lake_dir).arg(sql)).stdout)
            .unwrap();
    assert!(table.contains("| event_type | n "), "{table}");
    let empty = success(eventlake().arg("query").arg("--lake").arg(&lake_dir).args([
        "--format",
        "csv",
        "SELECT event_uuid FROM events WHERE false",
    ]))
    .stdout;
    assert_eq!(String::from_utf8(empty).unwrap(), "event_uuid\n");

    let bad = eventlake()
        .arg("query")
        .arg("--lake")
        .arg(&lake_dir)
        .arg("SELECT nope FROM events")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(message.contains("nope"), "the error names the column: {message}");
    let missing = tempfile::tempdir().unwrap();
    let none = eventlake().arg("query").arg("--lake").arg(missing.path()).arg("SELECT 1").output().unwrap();
    assert!(String::from_utf8_lossy(&none.stderr).contains("holds no lake"));
}

#[test]
fn athena_functions_behave_as_in_athena() {
    let rows = query_json(&[r#"SELECT
        json_extract_scalar('{"a":{"b":[1,"x"]},"n":1.50}', '$.a.b[1]') AS s,
        json_extract_scalar('{"n":1.50}', '$.n') AS n,
        json_extract_scalar('{"a":{"b":1}}', '$.a') AS o,
        json_extract('{"a":{"b":1}}', '$.a') AS j,
        to_unixtime(from_iso8601_timestamp('2024-03-17T15:34:56.789Z')) AS u,
        date_format(from_unixtime(1710689696), '%Y-%m-%d %H:%i:%s') AS f,
        date_format(date_trunc('hour', from_iso8601_timestamp('2024-03-17T15:34:56Z')), '%H:%i') AS h"#]);
    assert_eq!(
        rows,
        [json!({"s": "x", "n": "1.50", "o": null, "j": "{\"b\":1}", "u": 1710689696.789,
                "f": "2024-03-17 15:34:56", "h": "15:00"})]
    );
}

/// Every statement under athena/ parses as Athena SQL (sqlglot's Athena dialect:
/// Hive DDL, Trino queries), each query file starts with a comment saying what it
/// answers, and each reads partitions through a created_date filter.
#[test]
fn athena_files_are_valid_athena_sql() {
    let mut files = query_files();
    for entry in std::fs::read_dir(repo("athena/ddl")).unwrap() {
        files.push(entry.unwrap().path());
    }
    const SCRIPT: &str = r#"
import json, sys, sqlglot
failures = {}
for path in sys.argv[1:]:
    try:
        statements = [s for s in sqlglot.parse(open(path).read(), read="athena", error_level=sqlglot.ErrorLevel.RAISE) if s]
        if len(statements) != 1:
            failures[path] = f"{len(statements)} statements"
    except Exception as error:
        failures[path] = str(error)
print(json.dumps(failures))
"#;
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(python_json(SCRIPT, &paths), json!({}));
    for file in query_files() {
        let sql = std::fs::read_to_string(&file).unwrap();
        assert!(sql.starts_with("-- "), "{}: starts with a comment", file.display());
        assert!(sql.contains("created_date"), "{}: filters on the partition column", file.display());
    }
}

/// A lake of its own (the shared fixture lake must not be written to even by a
/// test that expects the write to be refused).
fn small_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let events = success(eventlake().args(["generate", "--events", "20000", "--types", "3"])).stdout;
    std::fs::write(dir.path().join("in.ndjson"), events).unwrap();
    success(
        eventlake()
            .arg("ingest")
            .arg("--lake")
            .arg(dir.path().join("lake"))
            .arg(dir.path().join("in.ndjson")),
    );
    dir
}

fn query_failure(lake: &Path, args: &[&str]) -> (String, Duration) {
    let started = std::time::Instant::now();
    let output = eventlake().arg("query").arg("--lake").arg(lake).args(args).output().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "an error exit, not a crash: {output:?}");
    (String::from_utf8_lossy(&output.stderr).into_owned(), elapsed)
}

#[test]
fn queries_cannot_write_or_change_anything() {
    let dir = small_lake();
    let lake_dir = dir.path().join("lake");
    let before = crate::support::files_under(dir.path());
    let target = dir.path().join("copied.csv");
    let statements = [
        format!("COPY (SELECT * FROM events) TO '{}'", target.display()),
        "INSERT INTO events SELECT * FROM events LIMIT 1".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "DROP VIEW events_unique".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
    ];
    for sql in &statements {
        let (stderr, _) = query_failure(&lake_dir, &[sql]);
        assert!(stderr.contains("eventlake query only reads the lake"), "{sql}: {stderr}");
    }
    assert_eq!(crate::support::files_under(dir.path()), before, "a statement wrote a file");
    // Reading still works.
    let output = success(eventlake().arg("query").arg("--lake").arg(&lake_dir).args([
        "--format",
        "csv",
        "SELECT count(*) AS n FROM events",
    ]));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("n\n"));
}

#[test]
fn runaway_queries_fail_with_an_error_not_an_abort_or_a_hang() {
    let dir = small_lake();
    let lake_dir = dir.path().join("lake");
    // 20,000 payloads of ~300 bytes, each 100,000 times: ~600 GB asked for.
    let (stderr, _) = query_failure(&lake_dir, &["SELECT max(length(repeat(payload, 100000))) FROM events"]);
    assert!(stderr.contains("repeat() would build") && stderr.contains("memory limit"), "{stderr}");
    let (stderr, _) =
        query_failure(&lake_dir, &["--memory-mib", "256", "SELECT length(lpad('x', 2000000000))"]);
    assert!(stderr.contains("lpad() would build"), "{stderr}");
    // A large constant repeated per row: the check itself must not copy it per row.
    let (stderr, _) = query_failure(
        &lake_dir,
        &[
            "--memory-mib",
            "256",
            "SELECT max(length(repeat(repeat('x', 100000000), CAST(created_at % 2 + 1 AS INT)))) FROM events",
        ],
    );
    assert!(stderr.contains("repeat() would build"), "{stderr}");
    // A sort bigger than the memory given fails cleanly.
    let (stderr, _) = query_failure(
        &lake_dir,
        &[
            "--memory-mib",
            "16",
            "SELECT payload FROM events CROSS JOIN (SELECT 1 FROM events LIMIT 50) ORDER BY payload",
        ],
    );
    assert!(stderr.to_lowercase().contains("resources exhausted") || stderr.contains("memory"), "{stderr}");
    // A recursive query that never ends is stopped by --timeout.
    let endless = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t";
    let (stderr, elapsed) = query_failure(&lake_dir, &["--timeout", "2", endless]);
    assert!(stderr.contains("--timeout 2 s"), "{stderr}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}
