//! Typed views (CONTRACT section 6) on a local lake: the views `eventlake query`
//! runs against an independent oracle (tests/infra/views_oracle.py, Python over
//! the inputs), widenings on a later run, schema files rebuilt from scratch, and
//! the views' SQL read by sqlglot as Athena's dialect.

use std::path::{Path, PathBuf};

use super::support::{eventlake, fixture, generated_events, python_json, success};

/// One payload with more fields than a view has columns (500): `f000` and
/// `f001` come twice, so the two that stay in `payload` are `f500` and `f501`.
fn wide_events() -> String {
    let all: Vec<String> = (0..502).map(|i| format!("\"f{i:03}\":{i}")).collect();
    format!(
        "{{\"event_uuid\":\"00000000-0000-4000-8000-000000000401\",\"event_name\":\"wide\",\"created_at\":1710700000,{}}}\n\
         {{\"event_uuid\":\"00000000-0000-4000-8000-000000000402\",\"event_name\":\"wide\",\"created_at\":1710700001,\"f000\":\"x\",\"f001\":2}}\n",
        all.join(",")
    )
}

/// Ingests each input as its own run, in order.
fn ingest_runs(lake: &Path, runs: &[PathBuf]) -> Vec<String> {
    runs.iter()
        .map(|run| {
            let output = success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(lake).arg(run));
            String::from_utf8(output.stdout).unwrap()
        })
        .collect()
}

/// The schema files of a lake (not the declared ones), by event type.
fn schema_files(lake: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(lake.join("_schemas"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_file())
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap()))
        .filter(|(name, _)| name.ends_with(".json") && !name.ends_with(".declared.json"))
        .collect();
    files.sort();
    files
}

fn view_of(schema: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(schema).unwrap()["view"].as_str().unwrap().to_owned()
}

#[test]
fn typed_views_hold_what_an_independent_oracle_computes_from_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(lake.join("_schemas")).unwrap();
    std::fs::copy(fixture("views/decl.declared.json"), lake.join("_schemas/decl.declared.json")).unwrap();
    let generated = dir.path().join("generated.ndjson");
    std::fs::write(&generated, generated_events(3_000, 11, 6, 3, "0.05")).unwrap();
    let wide = dir.path().join("wide.ndjson");
    std::fs::write(&wide, wide_events()).unwrap();
    let runs = [
        fixture("views/run1.ndjson"),
        fixture("lake-input.ndjson"),
        generated,
        wide,
        fixture("views/run2.ndjson"),
    ];
    ingest_runs(&lake, &runs);
    let actual = dir.path().join("actual");
    std::fs::create_dir_all(&actual).unwrap();
    for (name, schema) in schema_files(&lake) {
        let event_type = name.strip_suffix(".json").unwrap();
        std::fs::write(actual.join(format!("{event_type}.schema.json")), &schema).unwrap();
        let view = view_of(&schema);
        let rows = success(
            eventlake()
                .args(["query", "--format", "json", "--lake"])
                .arg(&lake)
                .arg(format!("SELECT * FROM {view} ORDER BY event_uuid")),
        );
        std::fs::write(actual.join(format!("{view}.ndjson")), rows.stdout).unwrap();
    }
    let oracle = fixture("../infra/views_oracle.py");
    let script = format!(
        "import runpy, sys; sys.argv = ['views_oracle.py'] + sys.argv[1:]; runpy.run_path({:?}, run_name='__main__')",
        oracle.to_str().unwrap()
    );
    let mut args = vec![
        "compare".to_owned(),
        actual.to_string_lossy().into_owned(),
        lake.join("_schemas").to_string_lossy().into_owned(),
    ];
    args.extend(runs.iter().map(|run| run.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let verdict = python_json(&script, &args);
    assert_eq!(verdict["mismatches"], serde_json::json!([]), "{verdict:#}");
    // Every view the inputs make was compared, every row and every field.
    assert_eq!(verdict["views"], 12, "{verdict:#}");
    assert!(verdict["rows"].as_u64().unwrap() > 2_800, "{verdict:#}");
    assert!(verdict["fields"].as_u64().unwrap() > 540, "{verdict:#}");
    let wide: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("_schemas/wide.json")).unwrap()).unwrap();
    let payload_only: Vec<&str> = wide["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|field| field["column"].is_null())
        .map(|field| field["name"].as_str().unwrap())
        .collect();
    assert_eq!(payload_only, ["f500", "f501"], "the 500 most frequent fields get columns");
}

#[test]
fn a_widening_is_printed_by_the_run_that_brings_it_and_a_run_from_scratch_writes_the_same_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest_runs(&lake, &[fixture("views/run1.ndjson")]);
    let shown = String::from_utf8(success(eventlake().args(["views", "--lake"]).arg(&lake)).stdout).unwrap();
    assert!(shown.contains("events_shop (event type shop, 4 rows)"), "{shown}");
    assert!(shown.contains("0 changed"), "ingest brought the views up to date already: {shown}");
    let later = ingest_runs(&lake, &[fixture("views/run2.ndjson")]).remove(0);
    for line in [
        "\"amount\" widened from bigint to double (4 values, e.g. 2.5)",
        "\"ok\" widened from boolean to varchar (3 values, e.g. \"maybe\")",
        "\"nums\" widened from array(bigint) to array(double)",
        "+ new field \"newfield\" as newfield json (1 values, e.g. {\"k\":[]})",
    ] {
        assert!(later.contains(line), "{line:?} not in\n{later}");
    }
    let shop: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("_schemas/shop.json")).unwrap()).unwrap();
    let history =
        &shop["fields"].as_array().unwrap().iter().find(|f| f["name"] == "amount").unwrap()["history"];
    assert_eq!(
        history,
        &serde_json::json!([
            {"type": "bigint", "date": "2024-03-17", "example": "12"},
            {"type": "double", "date": "2024-03-19", "example": "2.5"},
        ])
    );
    let incremental = schema_files(&lake);
    // From scratch: the schema files and the counts removed, the lake read again.
    let scratch = dir.path().join("scratch");
    success(std::process::Command::new("cp").arg("-r").arg(&lake).arg(&scratch));
    std::fs::remove_dir_all(scratch.join("_schemas")).unwrap();
    let rebuilt =
        String::from_utf8(success(eventlake().args(["views", "--lake"]).arg(&scratch)).stdout).unwrap();
    assert!(rebuilt.contains("8 of 8 partitions read"), "{rebuilt}");
    assert_eq!(schema_files(&scratch), incremental, "a run from scratch writes the same schema files");
    // Compaction keeps one row per key: the same first copies, the same schemas.
    success(eventlake().args(["compact", "--older-than", "0s", "--lake"]).arg(&lake));
    assert_eq!(schema_files(&lake), incremental, "compaction changes no schema file");
}

#[test]
fn the_views_are_athena_sql_as_sqlglot_reads_trino() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(lake.join("_schemas")).unwrap();
    std::fs::copy(fixture("views/decl.declared.json"), lake.join("_schemas/decl.declared.json")).unwrap();
    ingest_runs(&lake, &[fixture("views/run1.ndjson"), fixture("views/run2.ndjson")]);
    let sql = success(eventlake().args(["views", "--sql", "--lake"]).arg(&lake)).stdout;
    let sql_file = dir.path().join("views.sql");
    std::fs::write(&sql_file, &sql).unwrap();
    const SCRIPT: &str = r#"
import json, sys, sqlglot
from sqlglot import exp
text = open(sys.argv[1]).read()
statements = [s for s in sqlglot.parse(text, read="trino") if s is not None]
views = [s for s in statements if isinstance(s, exp.Create) and s.kind == "VIEW"]
casts = sum(1 for s in views for c in s.find_all(exp.Cast) if c.to.is_type("array"))
lambdas = sum(1 for s in views for _ in s.find_all(exp.Lambda))
print(json.dumps({"statements": len(statements), "views": len(views), "array_casts": casts, "lambdas": lambdas}))
"#;
    let read = python_json(SCRIPT, &[sql_file.to_str().unwrap()]);
    assert_eq!(read["statements"], read["views"], "{read}");
    assert_eq!(read["views"], 5, "{read}");
    assert!(read["array_casts"].as_u64().unwrap() >= 4, "{read}");
    assert!(read["lambdas"].as_u64().unwrap() >= 1, "{read}");
}

#[test]
fn a_missing_lake_and_a_malformed_declaration_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let none = eventlake().args(["views", "--lake"]).arg(dir.path().join("nowhere")).output().unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("holds no lake"), "{none:?}");

    let lake = dir.path().join("lake");
    ingest_runs(&lake, &[fixture("views/run1.ndjson")]);
    let declared = lake.join("_schemas/shop.declared.json");
    for (text, says) in [
        (r#"{"fields": {"amount": "int"}}"#, "\"int\" is not a column type"),
        (r#"{"amount": "bigint"}"#, "unknown field `amount`"),
        ("not json", "expected ident"),
    ] {
        std::fs::write(&declared, text).unwrap();
        let refused = eventlake().args(["views", "--lake"]).arg(&lake).output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{text}");
        assert!(stderr.contains("shop.declared.json") && stderr.contains(says), "{text}: {stderr}");
    }
    std::fs::write(&declared, r#"{"fields": {"amount": "double"}}"#).unwrap();
    let shown = String::from_utf8(success(eventlake().args(["views", "--lake"]).arg(&lake)).stdout).unwrap();
    assert!(shown.contains("amount_2                         double"), "{shown}");
    assert!(shown.contains("_rescued"), "{shown}");
}

#[test]
fn a_run_over_an_unchanged_lake_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest_runs(&lake, &[fixture("views/run1.ndjson")]);
    let schemas = lake.join("_schemas");
    let files: Vec<PathBuf> = std::fs::read_dir(schemas.join("_counts"))
        .unwrap()
        .chain(std::fs::read_dir(&schemas).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    // Dated back, so that a rewrite would show in the modification time.
    success(std::process::Command::new("touch").args(["-d", "2001-01-01"]).args(&files));
    let modified = |files: &[PathBuf]| -> Vec<std::time::SystemTime> {
        files.iter().map(|path| std::fs::metadata(path).unwrap().modified().unwrap()).collect()
    };
    let before = modified(&files);
    let shown = String::from_utf8(success(eventlake().args(["views", "--lake"]).arg(&lake)).stdout).unwrap();
    assert!(shown.contains("0 changed; 0 of 6 partitions read"), "{shown}");
    assert_eq!(modified(&files), before, "no counts or schema file rewritten");
}
