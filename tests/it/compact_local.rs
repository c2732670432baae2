//! Compaction of a local lake (`compaction::merge`): many small files with copies of
//! events across them become one file per partition with one row per key, the
//! first-seen copy kept; running it again does nothing; a compaction that stopped
//! before its exchange runs again to the same files; a file that arrives meanwhile
//! stays; and readers (`eventlake query`, DuckDB,
//! pyarrow) reading in a loop meanwhile see each partition either whole before or
//! whole after, never doubled, half or empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use eventlake::compaction::merge::{compact_directory, prepare, COMPACTED_PREFIX};
use serde_json::Value;

use crate::support::{copy_six_column_lake, eventlake, files_under, generated_events, ingest_file, success};

/// Per partition (type, date): (rows, distinct keys).
type Counts = BTreeMap<(String, String), (i64, i64)>;

const COUNTS_SQL: &str = "SELECT event_type, created_date, count(*) AS n, \
    count(DISTINCT concat(event_uuid, '/', created_datetime)) AS k FROM events GROUP BY 1, 2";

fn query_counts(lake: &Path) -> Result<Counts, String> {
    let output =
        eventlake().args(["query", "--format", "json", "--lake"]).arg(lake).arg(COUNTS_SQL).output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let key = (
                row["event_type"].as_str().unwrap().to_owned(),
                row["created_date"].as_str().unwrap().to_owned(),
            );
            (key, (row["n"].as_i64().unwrap(), row["k"].as_i64().unwrap()))
        })
        .collect())
}

/// A lake of many small files: the six-column fixture, then eight ingest runs of
/// generated events (types and dates overlapping the fixture's), each run resending
/// part of the one before, and two runs with one event in two versions.
fn many_small_files(root: &Path) -> PathBuf {
    let lake = root.join("lake");
    copy_six_column_lake(&lake);
    let mut previous: Vec<u8> = Vec::new();
    for run in 0..8 {
        let generated = generated_events(3000, 40 + run, 3, 3, "0.02");
        let mut input = generated.clone();
        input.extend(previous.split(|&b| b == b'\n').take(500).flat_map(|line| [line, b"\n"].concat()));
        ingest_file(&lake, &root.join(format!("run-{run}.ndjson")), &input);
        previous = generated;
    }
    for (run, payload) in [("first", "v1"), ("second", "v2")] {
        let event = format!(
            "{{\"event_uuid\":\"0e0e0e0e-0000-4000-8000-000000000001\",\"event_name\":\"user:twice\",\"created_at\":1710700000,\"version\":\"{payload}\"}}\n"
        );
        let path = root.join(format!("{run}.ndjson"));
        std::fs::write(&path, event).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(&lake).arg(&path));
    }
    lake
}

fn partitions(lake: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for type_dir in std::fs::read_dir(lake.join("events")).unwrap() {
        for date_dir in std::fs::read_dir(type_dir.unwrap().path()).unwrap() {
            dirs.push(date_dir.unwrap().path());
        }
    }
    dirs.sort();
    dirs
}

fn parquet_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

/// Reads per-partition counts with DuckDB and pyarrow in a loop until `stop`
/// exists; prints one JSON line per read (or the error).
const READERS: &str = r#"
import duckdb, json, os, sys, pyarrow.dataset as ds, pyarrow.compute as pc
root, stop = sys.argv[1], sys.argv[2]
def counts_duckdb():
    rows = duckdb.sql(f"""SELECT event_type, created_date, count(*),
        count(DISTINCT event_uuid || '/' || created_datetime)
        FROM read_parquet('{root}/events/*/*/*.parquet', hive_partitioning = true, union_by_name = true,
                          hive_types_autocast = false) GROUP BY ALL""").fetchall()
    return {f"{t}/{d}": [n, k] for t, d, n, k in rows}
def counts_pyarrow():
    table = ds.dataset(f"{root}/events", format="parquet", partitioning="hive").to_table(
        columns=["event_type", "created_date", "event_uuid", "created_datetime"])
    out = {}
    for t, d, u, c in zip(*(table.column(n).to_pylist() for n in table.column_names)):
        n, keys = out.setdefault(f"{t}/{d}", [0, set()])
        out[f"{t}/{d}"][0] += 1
        keys.add(f"{u}/{c}")
    return {p: [n, len(keys)] for p, (n, keys) in out.items()}
reads = 0
while not os.path.exists(stop) or reads < 2:
    for name, read in (("duckdb", counts_duckdb), ("pyarrow", counts_pyarrow)):
        try:
            print(json.dumps({"reader": name, "counts": read()}), flush=True)
        except Exception as error:
            print(json.dumps({"reader": name, "error": str(error)}), flush=True)
    reads += 1
"#;

#[test]
fn compaction_keeps_the_first_copy_of_each_key_and_readers_never_see_a_partition_half_done() {
    let root = tempfile::tempdir().unwrap();
    let lake = many_small_files(root.path());
    let before = query_counts(&lake).unwrap();
    let dirs = partitions(&lake);
    assert!(dirs.iter().all(|dir| parquet_names(dir).len() >= 2), "many files per partition");
    assert!(before.values().any(|(rows, keys)| rows > keys), "copies across files exist: {before:?}");

    let staging = root.path().join("staging");

    // Readers in a loop while the compaction runs.
    let stop = root.path().join("stop");
    let python = crate::support::tool("PYTHON", "python");
    let readers = std::process::Command::new(python)
        .args(["-c", READERS])
        .arg(&lake)
        .arg(&stop)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let query_reads = {
        let (lake, done) = (lake.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut reads = Vec::new();
            while !done.load(Ordering::SeqCst) || reads.len() < 2 {
                reads.push(query_counts(&lake));
            }
            reads
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut duplicates = 0;
    for dir in &dirs {
        let merged =
            compact_directory(dir, &staging, 128 << 20).unwrap().expect("a partition of small files");
        duplicates += merged.duplicates;
        assert_eq!(merged.files.len(), 1);
        // Partitions one after the other, slowly enough that reads see some done.
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    done.store(true, Ordering::SeqCst);
    std::fs::write(&stop, b"").unwrap();
    let query_reads = query_reads.join().unwrap();
    let reader_output = readers.wait_with_output().unwrap();

    // After: one compacted file per partition, one row per key, the same keys.
    let after = query_counts(&lake).unwrap();
    for dir in &dirs {
        let names = parquet_names(dir);
        assert!(names.len() == 1 && names[0].starts_with(COMPACTED_PREFIX), "{dir:?}: {names:?}");
    }
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (partition, (rows, keys)) in &after {
        assert_eq!(rows, keys, "{partition:?}: one row per key");
        assert_eq!(keys, &before[partition].1, "{partition:?}: no key lost");
    }
    let removed: i64 =
        before.values().map(|(r, _)| r).sum::<i64>() - after.values().map(|(r, _)| r).sum::<i64>();
    assert_eq!(removed as u64, duplicates);

    // The first-seen copy: the earliest ingested_at.
    let sql =
        "SELECT payload, ingested_at IS NOT NULL AS stamped FROM events WHERE event_name = 'user:twice'";
    let output = success(eventlake().args(["query", "--format", "json", "--lake"]).arg(&lake).arg(sql));
    let kept: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(kept["payload"], "{\"version\":\"v1\"}");

    // Every read, by every reader, saw each partition before or after, whole.
    let agrees = |counts: &Counts| {
        counts
            .iter()
            .all(|(partition, got)| before.get(partition) == Some(got) || after.get(partition) == Some(got))
            && counts.len() == before.len()
    };
    // A read that saw some partitions compacted and others not ran during the compaction.
    let midway = |counts: &Counts| {
        let done = counts
            .iter()
            .filter(|(p, got)| after.get(*p) == Some(got) && before.get(*p) != Some(got))
            .count();
        let waiting = counts
            .iter()
            .filter(|(p, got)| before.get(*p) == Some(got) && after.get(*p) != Some(got))
            .count();
        done > 0 && waiting > 0
    };
    let mut seen = 0;
    let mut during = 0;
    for read in &query_reads {
        match read {
            Ok(counts) => {
                assert!(agrees(counts), "eventlake query saw a partition half done: {counts:?}");
                seen += 1;
                during += usize::from(midway(counts));
            }
            Err(error) => assert!(error.contains("No such file") || error.contains("not found"), "{error}"),
        }
    }
    for line in String::from_utf8(reader_output.stdout).unwrap().lines() {
        let read: Value = serde_json::from_str(line).unwrap();
        if let Some(error) = read["error"].as_str() {
            assert!(
                error.contains("No such file")
                    || error.contains("not found")
                    || error.contains("FileNotFound"),
                "{error}"
            );
            continue;
        }
        let counts: Counts = read["counts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(partition, nk)| {
                let (t, d) = partition.split_once('/').unwrap();
                ((t.to_owned(), d.to_owned()), (nk[0].as_i64().unwrap(), nk[1].as_i64().unwrap()))
            })
            .collect();
        assert!(agrees(&counts), "{} saw a partition half done: {counts:?}", read["reader"]);
        seen += 1;
        during += usize::from(midway(&counts));
    }
    assert!(seen >= 4, "the readers read: {seen}");
    assert!(during >= 1, "no read ran during the compaction ({seen} reads): the test proved nothing");

    // Again: nothing to do, nothing changes.
    let files = files_under(&lake.join("events"));
    for dir in &dirs {
        assert!(compact_directory(dir, &staging, 128 << 20).unwrap().is_none());
    }
    assert_eq!(files_under(&lake.join("events")), files);
}

#[test]
fn a_file_that_arrives_during_compaction_stays_in_the_partition() {
    let root = tempfile::tempdir().unwrap();
    let lake = root.path().join("lake");
    for seed in [1, 2] {
        ingest_file(
            &lake,
            &root.path().join(format!("{seed}.ndjson")),
            &generated_events(200, seed, 1, 1, "0"),
        );
    }
    let dir = partitions(&lake).remove(0);
    let staging = root.path().join("staging");
    let prepared = prepare(&dir, &staging, 128 << 20).unwrap().unwrap();
    assert_eq!(prepared.merged.rows_in, 400);
    // An ingest writes into the partition between the listing and the exchange.
    ingest_file(&lake, &root.path().join("late.ndjson"), &generated_events(100, 3, 1, 1, "0"));
    let arrived: Vec<String> =
        parquet_names(&dir).into_iter().filter(|n| !n.starts_with(COMPACTED_PREFIX)).collect();
    assert_eq!(arrived.len(), 3);
    prepared.commit(&dir).unwrap();
    let names = parquet_names(&dir);
    assert_eq!(names.len(), 2, "the compacted file and the one that arrived: {names:?}");
    let counts = query_counts(&lake).unwrap();
    assert_eq!(counts.values().map(|(rows, _)| rows).sum::<i64>(), 500, "nothing lost: {counts:?}");
}

/// `eventlake compact`, the built binary: recent partitions are left alone, old
/// enough ones become one file each, a second run finds nothing to do.
#[test]
fn the_compact_command_compacts_partitions_old_enough_and_then_nothing() {
    let root = tempfile::tempdir().unwrap();
    let lake = root.path().join("lake");
    for seed in 0..3 {
        ingest_file(
            &lake,
            &root.path().join(format!("{seed}.ndjson")),
            &generated_events(1000, 60 + seed, 4, 2, "0"),
        );
    }
    let compact = |extra: &[&str]| {
        let output = success(eventlake().args(["compact", "--lake"]).arg(&lake).args(extra));
        crate::lake_local::summary_table(&output.stdout)
    };
    let before = query_counts(&lake).unwrap();
    let fresh = compact(&[]);
    assert_eq!((fresh["compacted"], fresh["too recent"]), (0, 8), "{fresh:?}");
    let planned = compact(&["--older-than", "0s", "--dry-run"]);
    assert_eq!((planned["to compact"], planned["files in"]), (8, 24), "{planned:?}");
    assert_eq!(
        partitions(&lake).iter().map(|dir| parquet_names(dir).len()).sum::<usize>(),
        24,
        "a dry run writes nothing"
    );
    let done = compact(&["--older-than", "0s"]);
    assert_eq!(
        (done["compacted"], done["files in"], done["files out"], done["rows out"]),
        (8, 24, 8, 3000),
        "{done:?}"
    );
    assert_eq!(query_counts(&lake).unwrap(), before);
    // A new partition of one file: compact as it is (one file never holds a key twice).
    let single = br#"{"event_uuid":"0e0e0e0e-0000-4000-8000-000000000002","event_name":"solo:one","created_at":1720000000}"#;
    ingest_file(&lake, &root.path().join("single.ndjson"), single);
    let again = compact(&["--older-than", "0s"]);
    assert_eq!((again["compacted"], again["already compact"]), (0, 9), "{again:?}");
    let output = eventlake().args(["compact", "--database", "db", "--lake"]).arg(&lake).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--database needs an s3:// lake"));
}

/// A compaction killed after writing its files and before the exchange leaves the
/// partition as it was; run again, it writes the same files, byte for byte.
#[test]
fn a_compaction_stopped_before_the_exchange_runs_again_to_the_same_files() {
    let root = tempfile::tempdir().unwrap();
    let lake = root.path().join("lake");
    for seed in [7, 8, 9] {
        ingest_file(
            &lake,
            &root.path().join(format!("{seed}.ndjson")),
            &generated_events(300, seed, 1, 1, "0.05"),
        );
    }
    let dir = partitions(&lake).remove(0);
    let before = parquet_names(&dir);
    let staging = root.path().join("staging");
    let stopped = prepare(&dir, &staging, 128 << 20).unwrap().unwrap();
    let written: Vec<(String, Vec<u8>)> = stopped
        .merged
        .files
        .iter()
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(path).unwrap()))
        .collect();
    drop(stopped); // the process dies here: no exchange
    assert_eq!(parquet_names(&dir), before, "the partition is untouched");
    compact_directory(&dir, &staging, 128 << 20).unwrap().unwrap();
    let after: Vec<(String, Vec<u8>)> = parquet_names(&dir)
        .into_iter()
        .map(|name| (name.clone(), std::fs::read(dir.join(&name)).unwrap()))
        .collect();
    assert_eq!(after, written);
}

/// Every row of `events_unique` (all columns), in key order. The view as
/// `eventlake query` runs it (an aggregate and a join) is checked against the
/// window the view's file states, run as written.
fn unique_rows(lake: &Path) -> Vec<Value> {
    let order = "ORDER BY event_uuid, created_datetime, event_type";
    let window = eventlake::query::events_unique_select_as_written().unwrap();
    let rows = |sql: &str| -> Vec<Value> {
        let output = success(eventlake().args(["query", "--format", "json", "--lake"]).arg(lake).arg(sql));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let unique = rows(&format!("SELECT * FROM events_unique {order}"));
    assert_eq!(unique, rows(&format!("SELECT * FROM ({window}) {order}")), "the view's file, run as written");
    unique
}

/// Asserts `got == expected`, naming the first rows that differ (the lists are
/// long). Compaction writes `created_ts` into rows of files older than the column
/// (`created_datetime` as an instant, as the query prints both): a null
/// `created_ts` compares as that.
fn assert_same_rows(got: &[Value], expected: &[Value], context: &str) {
    let filled = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .cloned()
            .map(|mut row| {
                if row["created_ts"].is_null() {
                    row["created_ts"] = row["created_datetime"].clone();
                }
                row
            })
            .collect()
    };
    let (got, expected) = (filled(got), filled(expected));
    let differing: Vec<(&Value, &Value)> =
        got.iter().zip(&expected).filter(|(got, expected)| got != expected).take(3).collect();
    assert!(
        got.len() == expected.len() && differing.is_empty(),
        "{context}: {} rows, {} expected; first differences (got, expected): {differing:#?}",
        got.len(),
        expected.len()
    );
}

/// One event (`event_uuid` ...0003, one fixed instant) as `event_name` with `version`.
fn copy_of_one_key(event_name: &str, version: &str) -> String {
    format!(
        "{{\"event_uuid\":\"0e0e0e0e-0000-4000-8000-000000000003\",\"event_name\":\"{event_name}\",\"created_at\":1710700000,\"version\":\"{version}\"}}\n"
    )
}

/// `events_unique` keys on the dedupe key alone and keeps the copy received first
/// (the earliest `ingested_at`, files older than the column first), the row
/// compaction keeps: it answers the same over the lake before compaction, over a
/// mix of compacted and uncompacted partitions, with a late copy in a compacted
/// partition, and after compaction, where it is the table itself.
#[test]
fn the_unique_view_keeps_the_first_received_copy_before_during_and_after_compaction() {
    let root = tempfile::tempdir().unwrap();
    let lake = many_small_files(root.path());
    // One key under two event types: one row in the view, the one received first.
    for (run, event) in [
        ("cross-first", copy_of_one_key("alpha:key", "v1")),
        ("cross-second", copy_of_one_key("beta:key", "a0")),
    ] {
        std::thread::sleep(std::time::Duration::from_millis(5));
        ingest_file(&lake, &root.path().join(format!("{run}.ndjson")), event.as_bytes());
    }
    let before = unique_rows(&lake);
    let keys: std::collections::BTreeSet<(String, String)> = before
        .iter()
        .map(|row| {
            (
                row["event_uuid"].as_str().unwrap().to_owned(),
                row["created_datetime"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(keys.len(), before.len(), "one row per dedupe key");
    let payload_of = |rows: &[Value], event_uuid: &str| -> Vec<(String, String)> {
        rows.iter()
            .filter(|row| row["event_uuid"] == event_uuid)
            .map(|row| {
                (row["event_type"].as_str().unwrap().to_owned(), row["payload"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    // The second copy of user:twice came later with "v2"; the first has "v1".
    assert_eq!(
        payload_of(&before, "0e0e0e0e-0000-4000-8000-000000000001"),
        [("user".to_owned(), "{\"version\":\"v1\"}".to_owned())]
    );
    // The later copy sorts first by payload ("a0" < "v1") and by type it is another
    // partition: neither decides, the time received does.
    assert_eq!(
        payload_of(&before, "0e0e0e0e-0000-4000-8000-000000000003"),
        [("alpha".to_owned(), "{\"version\":\"v1\"}".to_owned())]
    );
    // The six-column fixture's rows have no ingested_at and count as received first.
    let old_rows = before.iter().filter(|row| row["ingested_at"].is_null()).count();
    assert!(old_rows > 0, "the fixture's rows are in the view");

    // A mix: half the partitions compacted.
    let staging = root.path().join("staging");
    let dirs = partitions(&lake);
    for dir in dirs.iter().step_by(2) {
        compact_directory(dir, &staging, 128 << 20).unwrap();
    }
    assert_same_rows(&unique_rows(&lake), &before, "half compacted");

    // A late copy (received last, payload sorting first) in a compacted partition.
    let user_dir = dirs.iter().find(|dir| dir.to_str().unwrap().contains("event_type=user/")).unwrap();
    if parquet_names(user_dir).iter().all(|name| !name.starts_with(COMPACTED_PREFIX)) {
        compact_directory(user_dir, &staging, 128 << 20).unwrap();
    }
    let late = "{\"event_uuid\":\"0e0e0e0e-0000-4000-8000-000000000001\",\"event_name\":\"user:twice\",\"created_at\":1710700000,\"version\":\"a0\"}\n";
    ingest_file(&lake, &root.path().join("late.ndjson"), late.as_bytes());
    assert_same_rows(&unique_rows(&lake), &before, "a late copy in a compacted partition");

    // All compacted: the view is the table, but for the key's second event type.
    success(eventlake().args(["compact", "--older-than", "0s", "--lake"]).arg(&lake));
    let compacted = unique_rows(&lake);
    assert_same_rows(&compacted, &before, "all compacted");
    assert!(compacted.iter().all(|row| row["created_ts"].is_string()), "compaction fills created_ts");
    let sql = "SELECT * FROM events ORDER BY event_uuid, created_datetime, event_type";
    let output = success(eventlake().args(["query", "--format", "json", "--lake"]).arg(&lake).arg(sql));
    let table: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let beta = |row: &&Value| row["event_type"] == "beta";
    assert_eq!(table.iter().filter(beta).count(), 1, "compaction keeps each partition's own first copy");
    assert_same_rows(
        &table.iter().filter(|row| !beta(row)).cloned().collect::<Vec<_>>(),
        &before,
        "the table",
    );
}
