//! `eventlake ingest` into a local lake, read back by DuckDB with Hive partitioning.

use std::io::Write;

use crate::support::{duckdb_rows, eventlake, files_under, fixture, run_with_input, success};

/// The numeric rows of ingest's summary table, by name.
pub fn summary_table(stdout: &[u8]) -> std::collections::BTreeMap<String, u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().rsplit_once("  ")?;
            Some((name.trim().to_owned(), value.trim().replace(',', "").parse().ok()?))
        })
        .collect()
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("lake-expected.json")).unwrap()).unwrap()
}

#[test]
fn duckdb_reads_exactly_the_rows_the_contract_expects() {
    let lake = tempfile::tempdir().unwrap();
    success(eventlake().args(["ingest", "--lake"]).arg(lake.path()).arg(fixture("lake-input.ndjson")));
    assert_eq!(duckdb_rows(lake.path()), expected()["rows"]);
}

#[test]
fn rejected_records_are_kept_with_their_reasons_for_replay() {
    let lake = tempfile::tempdir().unwrap();
    let output =
        success(eventlake().args(["ingest", "--lake"]).arg(lake.path()).arg(fixture("lake-input.ndjson")));
    let summary = summary_table(&output.stdout);
    assert_eq!((summary["duplicates"], summary["blank lines"], summary["written"]), (1, 1, 7));
    let rejected: Vec<String> =
        files_under(lake.path()).into_iter().filter(|f| f.starts_with("_rejected/")).collect();
    assert_eq!(rejected.len(), 1);
    let text = std::fs::read_to_string(lake.path().join(&rejected[0])).unwrap();
    let entries: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want = expected()["rejected"].as_array().unwrap().clone();
    assert_eq!(entries.len(), want.len());
    for (entry, want) in entries.iter().zip(&want) {
        assert_eq!(entry["line"], want["line"]);
        assert_eq!(entry["code"], want["code"]);
        assert_eq!(entry["record"], want["record"]);
        assert_eq!(entry["record_base64"], want["record_base64"]);
        assert_eq!(entry["reason"], want["reason"]);
        assert!(entry["source"].as_str().unwrap().ends_with("lake-input.ndjson"));
    }
}

/// The same files, byte for byte: a re-run of the same input is the same
/// ingestion, and its rows keep the `ingested_at` of the first run (CONTRACT
/// section 4), which `_sources/` records.
#[test]
fn ingesting_the_same_input_again_changes_nothing() {
    let lake = tempfile::tempdir().unwrap();
    let input = fixture("lake-input.ndjson");
    success(eventlake().args(["ingest", "--lake"]).arg(lake.path()).arg(&input));
    let first = files_under(lake.path());
    assert!(first.iter().any(|f| f.starts_with("_sources/")), "{first:?}");
    let bytes: Vec<Vec<u8>> = first.iter().map(|f| std::fs::read(lake.path().join(f)).unwrap()).collect();
    let ingested = |lake: &std::path::Path| {
        let sql = "SELECT count(DISTINCT ingested_at) AS runs, max(ingested_at) AS last FROM events";
        let output = success(eventlake().args(["query", "--format", "json", "--lake"]).arg(lake).arg(sql));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let before = ingested(lake.path());
    std::thread::sleep(std::time::Duration::from_millis(5));
    success(eventlake().args(["ingest", "--lake"]).arg(lake.path()).arg(&input));
    assert_eq!(files_under(lake.path()), first);
    for (file, before) in first.iter().zip(&bytes) {
        assert_eq!(&std::fs::read(lake.path().join(file)).unwrap(), before, "{file} changed");
    }
    assert_eq!(duckdb_rows(lake.path()), expected()["rows"]);
    assert_eq!(ingested(lake.path()), before, "one ingestion, one ingested_at");
}

#[test]
fn gzip_and_stdin_inputs_give_the_same_lake() {
    let plain = std::fs::read(fixture("lake-input.ndjson")).unwrap();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&plain).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz_path = dir.path().join("events.ndjson.gz");
    std::fs::write(&gz_path, gzip.finish().unwrap()).unwrap();
    let from_gzip = dir.path().join("lake-gz");
    success(eventlake().args(["ingest", "--lake"]).arg(&from_gzip).arg(&gz_path));
    assert_eq!(duckdb_rows(&from_gzip), expected()["rows"]);

    let from_stdin = dir.path().join("lake-stdin");
    let mut command = eventlake();
    command.args(["ingest", "--lake"]).arg(&from_stdin).arg("-");
    let output = run_with_input(command, &plain);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(duckdb_rows(&from_stdin), expected()["rows"]);
}

#[test]
fn generated_events_are_deduped_across_the_whole_run_and_partitioned_by_their_values() {
    let dir = tempfile::tempdir().unwrap();
    // Few, large partitions (4 types x 2 days, ~2 MiB each) against 1 MiB parts
    // and a 3 MiB budget: partitions are spilled, then written in several parts,
    // and the dedupe set (2^16 buckets, 1.1 MB, for 40,000 keys) fits its half.
    let generate = ["generate", "--events", "40000", "--types", "4", "--days", "2", "--duplicates", "0.05"];
    let events = success(eventlake().args(generate)).stdout;
    // Two files sharing duplicates: the run dedupes across both.
    let half = events.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(20_000).unwrap().0 + 1;
    std::fs::write(dir.path().join("a.ndjson"), &events[..half]).unwrap();
    std::fs::write(dir.path().join("b.ndjson"), &events[half..]).unwrap();
    let lake = dir.path().join("lake");
    let output = success(
        eventlake()
            .args(["ingest", "--partition-mib", "1", "--buffer-mib", "3", "--lake"])
            .arg(&lake)
            .arg(dir.path().join("a.ndjson"))
            .arg(dir.path().join("b.ndjson")),
    );
    let summary = summary_table(&output.stdout);
    // The generator's duplicates are exact copies of earlier events: counted here
    // from the input, as lines equal to an earlier line, less the repeats among
    // the rejected lines (an invalid line may repeat too, e.g. `[1,2,3]`).
    fn repeats(lines: impl Iterator<Item = Vec<u8>>) -> u64 {
        let mut seen = std::collections::HashSet::new();
        lines.filter(|line| !line.is_empty() && !seen.insert(line.clone())).count() as u64
    }
    let rejected_lines: Vec<Vec<u8>> = files_under(&lake)
        .into_iter()
        .filter(|f| f.starts_with("_rejected/"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(lake.join(f)).unwrap();
            let entries: Vec<serde_json::Value> =
                text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            entries
        })
        .map(|entry| match entry["record"].as_str() {
            Some(record) => record.as_bytes().to_vec(),
            None => {
                use base64::Engine as _;
                let text = entry["record_base64"].as_str().unwrap();
                base64::engine::general_purpose::STANDARD.decode(text).unwrap()
            }
        })
        .collect();
    assert_eq!(rejected_lines.len() as u64, summary["rejected"]);
    let repeated =
        repeats(events.split(|&b| b == b'\n').map(<[u8]>::to_vec)) - repeats(rejected_lines.into_iter());
    const CHECK: &str = r#"
import duckdb, json, sys
con = duckdb.connect()
con.sql(f"CREATE VIEW e AS SELECT * FROM read_parquet('{sys.argv[1]}/events/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)")
one = lambda q: con.execute(q).fetchall()[0][0]
print(json.dumps({
    "rows": one("SELECT count(*) FROM e"),
    "distinct_keys": one("SELECT count(DISTINCT (event_uuid, created_datetime)) FROM e"),
    "type_mismatch": one("SELECT count(*) FROM e WHERE event_type <> split_part(event_name, ':', 1)"),
    "date_mismatch": one("SELECT count(*) FROM e WHERE created_date <> substr(created_datetime, 1, 10)"),
    "days": one("SELECT count(DISTINCT created_date) FROM e"),
    "unsorted_files": one("SELECT count(*) FROM (SELECT filename, created_at < lag(created_at) OVER (PARTITION BY filename ORDER BY file_row_number) AS back FROM read_parquet('" + sys.argv[1] + "/events/*/*/*.parquet', filename = true, file_row_number = true)) WHERE back"),
}))
"#;
    let facts = crate::support::python_json(CHECK, &[lake.to_str().unwrap()]);
    assert_eq!(facts["rows"], summary["written"]);
    assert_eq!(summary["duplicates"], repeated, "{summary:?}");
    assert!(repeated > 500);
    assert_eq!(facts["distinct_keys"], facts["rows"], "a duplicate survived");
    assert_eq!(facts["type_mismatch"], 0);
    assert_eq!(facts["date_mismatch"], 0);
    assert_eq!(facts["days"], 2, "{facts}");
    assert_eq!(facts["unsorted_files"], 0, "rows not sorted by created_at within a file");
    let table = String::from_utf8_lossy(&output.stdout);
    let spilled = table.lines().find(|line| line.starts_with("spilled")).expect("a spilled row");
    assert!(!spilled.ends_with(" 0 B"), "{table}");
    let (files, partitions) = (summary["files"], summary["partitions"]);
    assert_eq!(partitions, 8);
    assert!(files > partitions && files <= 3 * partitions, "{files} files for {partitions} partitions");
}

/// A lake written before `created_ts` and `ingested_at` existed (by the six-column
/// writer, kept in tests/fixtures/lake-six-columns) stays readable beside files
/// written today: the new columns read as null in the old files, and are set in the
/// new ones, for `eventlake query`, DuckDB and pyarrow alike.
#[test]
fn files_written_before_the_time_columns_read_them_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    crate::support::copy_six_column_lake(&lake);
    // Today's files: other events, in the fixture's partitions and in new ones.
    let started =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let new = crate::support::generated_events(200, 32, 3, 3, "0");
    crate::support::ingest_file(&lake, &dir.path().join("new.ndjson"), &new);

    let sql = "SELECT count(*) AS rows, count(created_ts) AS created, count(ingested_at) AS ingested, \
               min(ingested_at) AS first_ingest, \
               sum(CASE WHEN created_ts = from_iso8601_timestamp(created_datetime) THEN 1 ELSE 0 END) AS agree \
               FROM events";
    let output = success(eventlake().args(["query", "--format", "json", "--lake"]).arg(&lake).arg(sql));
    let row: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (row["rows"].as_i64(), row["created"].as_i64(), row["ingested"].as_i64()),
        (Some(500), Some(200), Some(200)),
        "{row}"
    );
    assert_eq!(row["agree"].as_i64(), Some(200), "created_ts is created_datetime's instant: {row}");
    let first_ingest = row["first_ingest"].as_str().unwrap();
    let day = chrono::DateTime::from_timestamp_millis(started).unwrap().format("%Y-%m-%d").to_string();
    assert!(first_ingest.starts_with(&day), "ingested_at is the run's start: {first_ingest}");

    const READERS: &str = r#"
import duckdb, json, sys, pyarrow.dataset as ds
root = sys.argv[1]
duck = duckdb.sql(f"""SELECT count(*), count(created_ts), count(ingested_at), any_value(typeof(created_ts))
    FROM read_parquet('{root}/events/*/*/*.parquet', hive_partitioning = true, union_by_name = true)""").fetchall()[0]
files = sorted(str(p) for p in __import__("pathlib").Path(root, "events").rglob("*.parquet"))
new = [f for f in files if ds.dataset(f).schema.names[-1] == "ingested_at"]
table = ds.dataset(files, schema=ds.dataset(new[0]).schema).to_table()
print(json.dumps({"duckdb": list(duck), "pyarrow": [table.num_rows, table.column("created_ts").null_count,
                  str(table.schema.field("ingested_at").type)]}))
"#;
    let facts = crate::support::python_json(READERS, &[lake.to_str().unwrap()]);
    assert_eq!(facts["duckdb"], serde_json::json!([500, 200, 200, "TIMESTAMP WITH TIME ZONE"]), "{facts}");
    assert_eq!(facts["pyarrow"], serde_json::json!([500, 300, "timestamp[ms, tz=UTC]"]), "{facts}");
}

/// Records are checked and files encoded on several threads; the writer takes
/// them in input order. Any number of threads writes the same lake as one, byte
/// for byte: the same files, the same rows in the same (first-seen) order, the
/// same rejected entries. The input spans many blocks of lines, with duplicates
/// across blocks, invalid and blank lines and a line over the record limit; the
/// limits are small, so parts are written mid-run, rows spill to disk and the
/// dedupe set starts again, each checked to happen.
#[tokio::test(flavor = "current_thread")]
async fn any_number_of_threads_writes_the_same_lake_byte_for_byte() {
    use eventlake::lake::ndjson;
    use eventlake::lake::storage::LocalDir;
    use eventlake::lake::writer::{LakeWriter, Limits, SourceId};

    // Two types on one day fill their buffers (parts mid-run); 300 types over
    // three days fill memory with small ones (spills).
    let mut events = crate::support::generated_events(8_000, 11, 2, 1, "0.05");
    events.extend(crate::support::generated_events(16_000, 12, 300, 3, "0.05"));
    let mut input = Vec::new();
    for (index, line) in events.split(|&b| b == b'\n').enumerate() {
        input.extend_from_slice(line);
        input.push(b'\n');
        match index % 997 {
            0 => input.extend_from_slice(
                b"{\"event_uuid\":\"not a uuid\",\"event_name\":\"a:b\",\"created_at\":1}\n",
            ),
            1 => input.extend_from_slice(b"   \n"),
            2 => input.extend_from_slice(b"{\"truncated\n"),
            _ => {}
        }
    }
    input.extend_from_slice(&vec![b'x'; 1_100_000]);
    input.extend_from_slice(b"\n{}\n");
    assert!(input.len() > 6 * ndjson::BLOCK_BYTES, "{} bytes", input.len());

    let mut lakes = Vec::new();
    for workers in [1, 2, 3, 8] {
        let dir = tempfile::tempdir().unwrap();
        let limits =
            Limits { partition_bytes: 256 << 10, total_bytes: 768 << 10, workers, ..Limits::default() };
        let writer = LakeWriter::new(LocalDir::new(dir.path()), SourceId::from_digest(19), limits)
            .ingested_at(1_700_000_000_000);
        let inputs = [("input.ndjson".to_owned(), Ok(std::io::Cursor::new(&input)))];
        let (summary, fed) = ndjson::load(writer, inputs, || ()).await.unwrap();
        assert!(summary.files > summary.partitions, "parts written mid-run: {summary:?}");
        assert!(summary.spilled_bytes > 0 && summary.dedupe_resets > 0, "{summary:?}");
        assert!(summary.duplicates > 500 && summary.rejected_total() > 40 && fed.blank > 20, "{summary:?}");
        let files: Vec<(String, Vec<u8>)> = files_under(dir.path())
            .into_iter()
            .filter(|name| !name.starts_with("_tmp/"))
            .map(|name| (name.clone(), std::fs::read(dir.path().join(&name)).unwrap()))
            .collect();
        lakes.push((workers, summary, files, dir));
    }
    let (_, one_summary, one_thread, _) = &lakes[0];
    assert!(one_thread.iter().any(|(name, _)| name.ends_with(".record")), "the long line is kept");
    for (workers, summary, files, _) in &lakes[1..] {
        assert_eq!(summary, one_summary, "{workers} threads");
        let names =
            |files: &[(String, Vec<u8>)]| files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
        assert_eq!(names(files), names(one_thread), "{workers} threads");
        for ((name, bytes), (_, expected)) in files.iter().zip(one_thread) {
            assert!(bytes == expected, "{name} differs with {workers} threads");
        }
    }
}
