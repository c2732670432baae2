//! `eventlake console` through its HTTP API, without a browser: the built
//! binary serves a lake written by `eventlake ingest`; every endpoint is called
//! as the page calls it, and the token, Host, content-type and body-size
//! refusals are checked. Expected figures come from the inputs. With `--stream`
//! (moto's Kinesis), producers send and the consumer reads every valid event
//! back. The page itself is driven in a real browser by tests/browser/console_test.py.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{eventlake, generated_events, success, Background, Moto};

/// A console running in the background and its URL's parts.
pub struct Console {
    _child: Background,
    pub port: u16,
    pub token: String,
    pub url: String,
    pub stderr: std::process::ChildStderr,
}

impl Console {
    pub fn start(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("{line}"))
            .to_owned();
        let token = url.split("token=").nth(1).unwrap().to_owned();
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap().parse().unwrap();
        let stderr = child.stderr.take().unwrap();
        Console { _child: Background(child), port, token, url, stderr }
    }

    /// One HTTP/1.1 request; its status, headers (lower-case names) and body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, BTreeMap<String, String>, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
            request += &format!("Host: 127.0.0.1:{}\r\n", self.port);
        }
        for (name, value) in headers {
            request += &format!("{name}: {value}\r\n");
        }
        request += "\r\n";
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut body = response[split + 4..].to_vec();
        if headers.get("transfer-encoding").is_some_and(|te| te == "chunked") {
            body = unchunk(&body);
        }
        (status, headers, body)
    }

    /// A GET as the page makes it, with the token.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let token = self.token.clone();
        let (status, _, body) = self.call("GET", path, &[("x-eventlake-token", token.as_str())], b"");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A POST as the page makes it: JSON, with the token.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let token = self.token.clone();
        let headers = [("content-type", "application/json"), ("x-eventlake-token", token.as_str())];
        let (status, _, body) = self.call("POST", path, &headers, body.to_string().as_bytes());
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The Live panel's first snapshot (its server-sent event stream, read until one event).
    pub fn live(&self) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request =
            format!("GET /api/live?token={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", self.token, self.port);
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the event stream ended");
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data.trim()).unwrap();
            }
        }
    }

    /// Waits until `done` holds for a live snapshot.
    pub fn wait_live(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let snapshot = self.live();
            if done(&snapshot) {
                return snapshot;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "{what}: {snapshot}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&body[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[end + 2 + size + 2..];
    }
}

pub fn console_command(lake: &std::path::Path, extra: &[&str]) -> Command {
    let mut command = eventlake();
    command.args(["console", "--listen", "127.0.0.1:0", "--lake"]).arg(lake).args(extra);
    command
}

/// A lake of `events` generated events (no copies, nothing invalid), three
/// records that break a rule and one too old for a 30-day window (rejected,
/// replayable into the lake later); the too-old event's line.
pub fn lake_with_rejections(lake: &std::path::Path, events: usize) -> (Vec<u8>, String) {
    let dir = lake.parent().unwrap();
    let valid = generated_events(events, 21, 6, 3, "0");
    let broken = "not json\n{\"event_uuid\":\"b941dd91-03ea-43ca-af11-1eb98e2cf1b7\",\"created_at\":1710689696}\n[1,2]\n";
    let path = dir.join("input.ndjson");
    std::fs::write(&path, [valid.as_slice(), broken.as_bytes()].concat()).unwrap();
    success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(lake).arg(&path));
    let old = r#"{"event_uuid":"0d9e1a52-8c0f-4d7e-9b43-2f1c6a7e5b10","event_name":"late:arrival","created_at":1710689696,"note":"clock off"}"#;
    let old_path = dir.join("old.ndjson");
    std::fs::write(&old_path, format!("{old}\n")).unwrap();
    success(
        eventlake().args(["ingest", "--quiet", "--max-age-days", "30", "--lake"]).arg(lake).arg(&old_path),
    );
    (valid, old.to_owned())
}

fn counts_by_type(ndjson: &[u8]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(ndjson).lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let event_type = event["event_name"].as_str().unwrap().split(':').next().unwrap().to_owned();
        *counts.entry(event_type).or_insert(0) += 1;
    }
    counts
}

#[test]
fn every_endpoint_answers_as_the_page_expects_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let (valid, old) = lake_with_rejections(&lake, 2400);
    let console = Console::start(console_command(&lake, &[]));
    assert!(console.url.starts_with("http://127.0.0.1:"), "{}", console.url);

    // The page and its assets, embedded.
    let (status, headers, page) = console.call("GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains(r#"id="query-editor""#));
    assert!(headers["content-security-policy"].contains("default-src 'self'"), "{headers:?}");
    assert!(!headers.contains_key("access-control-allow-origin"), "no CORS");
    for asset in ["/assets/app.js", "/assets/app.css", "/assets/uPlot.iife.min.js", "/assets/uPlot.min.css"] {
        let (status, _, body) = console.call("GET", asset, &[], b"");
        assert_eq!(status, 200, "{asset}");
        assert!(body.len() > 500, "{asset}");
    }

    // Lake: rows by type and day from the input, rejected by reason.
    let (status, overview) = console.get("/api/lake");
    assert_eq!(status, 200);
    let mut rows = BTreeMap::new();
    for partition in overview["partitions"].as_array().unwrap() {
        *rows.entry(partition["event_type"].as_str().unwrap().to_owned()).or_insert(0) +=
            partition["rows"].as_u64().unwrap();
        assert!(partition["files"].as_u64().unwrap() >= 1 && partition["bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(rows, counts_by_type(&valid));
    let rejected: BTreeMap<String, u64> = serde_json::from_value(overview["rejected"].clone()).unwrap();
    assert_eq!(
        rejected,
        BTreeMap::from([
            ("created_at_implausible".to_owned(), 1),
            ("invalid_json".to_owned(), 1),
            ("missing_field".to_owned(), 1),
            ("not_an_object".to_owned(), 1)
        ])
    );
    assert_eq!(overview["last_compaction"], Value::Null);

    // Query: read-only, with the token.
    let sql =
        "SELECT event_type, count(*) AS events FROM events_unique GROUP BY event_type ORDER BY event_type";
    let (status, result) = console.post("/api/query", &json!({ "sql": sql }));
    assert_eq!(status, 200, "{result}");
    let by_type: BTreeMap<String, u64> = result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[0].as_str().unwrap().to_owned(), row[1].as_u64().unwrap()))
        .collect();
    assert_eq!(by_type, counts_by_type(&valid));
    assert_eq!(result["columns"][1], json!({ "name": "events", "type": "Int64" }));
    let (status, result) = console.post("/api/query", &json!({ "sql": "SELECT * FROM events" }));
    assert_eq!(status, 200);
    assert_eq!(result["row_count"], 2400);
    assert_eq!(result["rows"].as_array().unwrap().len(), 2400, "under the 10,000-row cut");
    let (status, refused) = console.post("/api/query", &json!({ "sql": "CREATE TABLE x AS SELECT 1" }));
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("only reads"), "{refused}");
    let (status, refused) = console.post("/api/query", &json!({ "sql": "SELECT nope FROM events" }));
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("nope"), "{refused}");
    let (_, queries) = console.get("/api/queries");
    assert_eq!(queries.as_array().unwrap().len(), 8);
    let token = console.token.clone();
    let (status, headers, csv) = console.call(
        "POST",
        "/api/query.csv",
        &[("content-type", "application/json"), ("x-eventlake-token", &token)],
        json!({ "sql": sql }).to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    assert!(headers["content-disposition"].contains("attachment"));
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().next(), Some("event_type,events"));
    assert_eq!(csv.lines().count(), 1 + by_type.len());

    // Refusals: no token, a wrong one, not JSON, too large, another Host.
    let body = json!({ "sql": "SELECT 1" }).to_string();
    let (status, _, _) =
        console.call("POST", "/api/query", &[("content-type", "application/json")], body.as_bytes());
    assert_eq!(status, 401, "no token");
    let wrong =
        [("content-type", "application/json"), ("x-eventlake-token", "0123456789abcdef0123456789abcdef")];
    assert_eq!(console.call("POST", "/api/query", &wrong, body.as_bytes()).0, 401, "a wrong token");
    for path in ["/api/producers", "/api/replay", "/api/producers/1/stop", "/api/query.csv"] {
        assert_eq!(
            console.call("POST", path, &[("content-type", "application/json")], b"{}").0,
            401,
            "{path}"
        );
    }
    let text = [("content-type", "text/plain"), ("x-eventlake-token", token.as_str())];
    assert_eq!(
        console.call("POST", "/api/query", &text, body.as_bytes()).0,
        415,
        "a form post from another page"
    );
    let huge = json!({ "sql": format!("SELECT '{}'", "x".repeat(70_000)) }).to_string();
    let json_headers = [("content-type", "application/json"), ("x-eventlake-token", token.as_str())];
    assert_eq!(console.call("POST", "/api/query", &json_headers, huge.as_bytes()).0, 413);
    assert_eq!(
        console.call("GET", "/api/lake", &[("Host", "attacker.example")], b"").0,
        403,
        "DNS rebinding"
    );

    // Rejected, and a replay of the too-old record: added once, then already there.
    let (status, listed) = console.get("/api/rejected");
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 4);
    let old_id = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["record"] == old.as_str())
        .unwrap_or_else(|| panic!("{listed}"))["id"]
        .clone();
    assert_eq!(
        listed["records"].as_array().unwrap().iter().find(|r| r["id"] == old_id).unwrap()["code"],
        "created_at_implausible"
    );
    let (status, replayed) = console.post("/api/replay", &json!({ "ids": [old_id] }));
    assert_eq!(status, 200, "{replayed}");
    assert_eq!((replayed["added"].as_u64(), replayed["still_rejected"].as_u64()), (Some(1), Some(0)));
    let (_, again) = console.post("/api/replay", &json!({ "ids": [old_id] }));
    assert_eq!(
        (again["added"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(1)),
        "each event at most once"
    );
    let (status, refused) = console.post("/api/replay", &json!({ "ids": ["../../etc/passwd:1"] }));
    assert_eq!(status, 400, "{refused}");

    // Trace: the replayed event is in the lake once; a broken record's UUID is rejected.
    let (status, trace) = console.get("/api/trace?event_uuid=0D9E1A52-8C0F-4D7E-9B43-2F1C6A7E5B10");
    assert_eq!(status, 200);
    assert_eq!(trace["copies"].as_array().unwrap().len(), 1, "{trace}");
    assert_eq!(trace["copies"][0]["partition"], "event_type=late/created_date=2024-03-17");
    let (_, trace) = console.get("/api/trace?event_uuid=b941dd91-03ea-43ca-af11-1eb98e2cf1b7");
    assert_eq!(trace["copies"].as_array().unwrap().len(), 0);
    assert_eq!(trace["rejected"][0]["code"], "missing_field", "{trace}");
    assert_eq!(console.get("/api/trace?event_uuid=nope").0, 400);

    // Producers into the lake: two, stopped through shutting down; what they
    // made is in the lake (and their invalid records in _rejected/).
    assert_eq!(console.post("/api/producers", &json!({ "rate": 0 })).0, 400);
    assert_eq!(console.post("/api/producers", &json!({ "rate": 5001 })).0, 400);
    assert_eq!(console.post("/api/producers", &json!({ "rate": 400 })), (201, json!({ "id": 1 })));
    assert_eq!(console.post("/api/producers", &json!({ "rate": 250 })), (201, json!({ "id": 2 })));
    console.wait_live("both producers made events", |live| {
        live["producers"].as_array().unwrap().iter().all(|p| p["events"].as_u64().unwrap() > 0)
    });
    for id in [1, 2] {
        assert_eq!(console.post(&format!("/api/producers/{id}/stop"), &json!({})).0, 200);
    }
    assert_eq!(console.post("/api/producers/9/stop", &json!({})).0, 404);
    let stopped = console.wait_live("both stopped", |live| {
        live["producers"].as_array().unwrap().iter().all(|p| p["state"] == "stopped")
    });
    let mut made = 0;
    let mut made_rejected = 0;
    for producer in stopped["producers"].as_array().unwrap() {
        assert_eq!(producer["states"], json!(["running", "shutting down", "stopped"]), "{producer}");
        assert_eq!(producer["error"], Value::Null);
        made += producer["events"].as_u64().unwrap();
        made_rejected += producer["rejected"].as_u64().unwrap();
    }
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let sql = format!("SELECT count(*) AS rows, count(DISTINCT event_uuid) AS keys FROM events WHERE created_date >= '{today}'");
    let (_, counted) = console.post("/api/query", &json!({ "sql": sql }));
    let (rows, keys) = (counted["rows"][0][0].as_u64().unwrap(), counted["rows"][0][1].as_u64().unwrap());
    assert!(keys > 0 && keys <= rows && rows <= made, "{made} events made: {rows} rows, {keys} keys");
    let (_, listed) = console.get("/api/rejected");
    assert_eq!(
        listed["total"].as_u64().unwrap(),
        4 + made_rejected,
        "every invalid record kept with its reason"
    );
}

#[test]
fn off_loopback_every_call_needs_the_token_and_a_warning_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    lake_with_rejections(&lake, 50);
    let mut command = eventlake();
    command.args(["console", "--listen", "0.0.0.0:0", "--lake"]).arg(&lake);
    let mut console = Console::start(command);
    assert_eq!(console.call("GET", "/api/lake", &[], b"").0, 401);
    assert_eq!(console.call("GET", "/", &[], b"").0, 401);
    for asset in ["/assets/app.js", "/assets/app.css", "/assets/uPlot.iife.min.js", "/assets/uPlot.min.css"] {
        assert_eq!(console.call("GET", asset, &[], b"").0, 200, "the page's files are public: {asset}");
    }
    let token = console.token.clone();
    assert_eq!(console.call("GET", &format!("/api/lake?token={token}"), &[], b"").0, 200);
    assert_eq!(console.call("GET", "/api/lake", &[("x-eventlake-token", &token)], b"").0, 200);
    assert_eq!(console.call("GET", &format!("/?token={token}"), &[("Host", "example.org")], b"").0, 200);
    let mut warning = String::new();
    BufReader::new(&mut console.stderr).read_line(&mut warning).unwrap();
    assert!(warning.contains("warning: listening on 0.0.0.0"), "{warning}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_stream_producers_send_to_kinesis_and_the_consumer_reads_every_event_back_in_order() {
    let moto = Moto::start();
    aws_sdk_kinesis::Client::new(&moto.sdk_config())
        .create_stream()
        .stream_name("console-live")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut command = console_command(&lake, &["--stream", "console-live"]);
    moto.env(&mut command);
    let console = Console::start(command);
    assert_eq!(console.post("/api/producers", &json!({ "rate": 300 })), (201, json!({ "id": 1 })));
    console.wait_live("events sent", |live| live["producers"][0]["events"].as_u64().unwrap() > 300);
    console.post("/api/producers/1/stop", &json!({}));
    let stopped = console.wait_live("stopped", |live| live["producers"][0]["state"] == "stopped");
    assert_eq!(stopped["producers"][0]["error"], Value::Null, "{stopped}");
    let sent = stopped["producers"][0]["events"].as_u64().unwrap();
    let read = console
        .wait_live("the consumer read every event", |live| live["consumer"]["events"].as_u64() == Some(sent));
    let consumer = &read["consumer"];
    let shards = consumer["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{consumer}");
    assert!(shards.iter().all(|shard| shard["after"].is_string()), "each shard's checkpoint: {consumer}");
    assert_eq!(consumer["latest"].as_array().unwrap().len(), 20);
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(lake.join("_console/console-live.tail.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["stream"], "console-live");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_an_s3_lake_the_lake_and_rejected_panels_read_glue_and_s3_and_a_replay_goes_through_the_table() {
    use crate::catalog_glue::{create_table, DATABASE};
    use crate::lake_s3::BUCKET;
    let moto = Moto::start();
    moto.s3().create_bucket().bucket(BUCKET).send().await.unwrap();
    create_table(&moto.glue(), &format!("s3://{BUCKET}/lake/events/")).await;
    let lake_url = format!("s3://{BUCKET}/lake");
    let dir = tempfile::tempdir().unwrap();
    let valid = generated_events(900, 22, 4, 2, "0");
    let broken = "not json\n[1,2]\n";
    let old = r#"{"event_uuid":"0d9e1a52-8c0f-4d7e-9b43-2f1c6a7e5b10","event_name":"late:arrival","created_at":1710689696}"#;
    let run = |args: &[&str], input: &[u8], name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, input).unwrap();
        let mut command = eventlake();
        moto.env(&mut command);
        success(command.args(args).arg(&path));
    };
    let ingest = ["ingest", "--quiet", "--lake", &lake_url, "--database", DATABASE];
    run(&ingest, &[valid.as_slice(), broken.as_bytes()].concat(), "input.ndjson");
    run(&[&ingest[..], &["--max-age-days", "30"]].concat(), format!("{old}\n").as_bytes(), "old.ndjson");
    let mut views = eventlake();
    moto.env(&mut views);
    success(views.args(["views", "--lake", &lake_url, "--database", DATABASE]));

    let mut command = eventlake();
    moto.env(&mut command);
    // One of Firehose's error records (gzip, as Firehose writes them) for the --failed prefix.
    let failed_event = r#"{"event_uuid":"5b2d7c1e-9f3a-4d8b-a6e1-0c4f2b7d9e31","event_name":"failed:again","created_at":1710689696}"#;
    let error_record = json!({
        "attemptsMade": 1, "arrivalTimestamp": 1710689700000_i64, "errorCode": "Lambda.ProcessingFailed",
        "errorMessage": "the transform timed out", "rawData": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, failed_event),
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, format!("{error_record}\n").as_bytes()).unwrap();
    moto.s3()
        .put_object()
        .bucket(BUCKET)
        .key("errors/processing-failed/2024-03-17/part-1.gz")
        .body(gz.finish().unwrap().into())
        .send()
        .await
        .unwrap();
    let failed_prefix = format!("s3://{BUCKET}/errors/");
    command.args(["console", "--listen", "127.0.0.1:0", "--lake", &lake_url, "--database", DATABASE]);
    command.args(["--failed", &failed_prefix]);
    command.current_dir(dir.path());
    let console = Console::start(command);

    let (status, overview) = console.get("/api/lake");
    assert_eq!(status, 200, "{overview}");
    let mut rows = BTreeMap::new();
    for partition in overview["partitions"].as_array().unwrap() {
        assert_eq!(partition["files"], 1, "{partition}");
        *rows.entry(partition["event_type"].as_str().unwrap().to_owned()).or_insert(0) +=
            partition["rows"].as_u64().unwrap();
    }
    assert_eq!(rows, counts_by_type(&valid), "rows from the views' counts, partitions from Glue");
    let rejected: BTreeMap<String, u64> = serde_json::from_value(overview["rejected"].clone()).unwrap();
    let expected = [
        ("Lambda.ProcessingFailed", 1),
        ("created_at_implausible", 1),
        ("invalid_json", 1),
        ("not_an_object", 1),
    ];
    assert_eq!(rejected, expected.iter().map(|(code, n)| (code.to_string(), *n)).collect());

    // A rejected file with a blank line: a selection names lines as the file numbers them.
    let hand_entry = json!({
        "source": "by hand", "line": 1, "code": "created_at_implausible", "reason": "a clock that was off",
        "record": r#"{"event_uuid":"7d1c2b9e-1d4a-4c1e-9a7b-3c2d1e0f9a8c","event_name":"hand:made","created_at":1710689696}"#,
    });
    let other =
        json!({ "source": "by hand", "line": 2, "code": "invalid_json", "reason": "x", "record": "nope" });
    moto.s3()
        .put_object()
        .bucket(BUCKET)
        .key("lake/_rejected/hand-00000.ndjson")
        .body(format!("{other}\n\n{hand_entry}\n").into_bytes().into())
        .send()
        .await
        .unwrap();
    let (_, listed) = console.get("/api/rejected");
    assert_eq!(listed["total"], 6, "3 from ingest, 2 by hand, 1 failed by Firehose");
    let failed = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "Lambda.ProcessingFailed")
        .unwrap();
    assert_eq!(failed["id"], format!("failed:{failed_prefix}processing-failed/2024-03-17/part-1.gz:1"));
    assert_eq!(
        (failed["reason"].as_str(), failed["record"].as_str()),
        (Some("the transform timed out"), Some(failed_event))
    );
    let (status, replayed) = console.post("/api/replay", &json!({ "ids": [failed["id"]] }));
    assert_eq!((status, replayed["added"].as_u64()), (200, Some(1)), "{replayed}");
    let forged = format!("failed:s3://{BUCKET}/lake/events/x.gz:1");
    assert_eq!(
        console.post("/api/replay", &json!({ "ids": [forged] })).0,
        400,
        "only objects under --failed"
    );
    let hand =
        listed["records"].as_array().unwrap().iter().find(|r| r["reason"] == "a clock that was off").unwrap();
    assert_eq!(hand["id"], "hand-00000.ndjson:3");
    let (_, replayed) = console.post("/api/replay", &json!({ "ids": ["hand-00000.ndjson:3"] }));
    assert_eq!(
        (replayed["added"].as_u64(), replayed["still_rejected"].as_u64()),
        (Some(1), Some(0)),
        "{replayed}"
    );
    let old_id =
        listed["records"].as_array().unwrap().iter().find(|r| r["record"] == old).unwrap()["id"].clone();
    let (status, replayed) = console.post("/api/replay", &json!({ "ids": [old_id] }));
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["added"], 1);
    let (_, again) = console.post("/api/replay", &json!({ "ids": [old_id] }));
    assert_eq!(
        (again["added"].as_u64(), again["already"].as_u64()),
        (Some(0), Some(1)),
        "each event at most once"
    );
    let (_, overview) = console.get("/api/lake");
    let late: Vec<&Value> =
        overview["partitions"].as_array().unwrap().iter().filter(|p| p["event_type"] == "late").collect();
    assert_eq!(late.len(), 1, "the replay registered its partition in Glue: {overview}");
    let of_type =
        |t: &str| overview["partitions"].as_array().unwrap().iter().filter(|p| p["event_type"] == t).count();
    assert_eq!(of_type("hand"), 1, "the line selected, not its neighbour");
    assert_eq!(of_type("failed"), 1, "the failed record replayed into the table");
    assert_eq!(late[0]["rows"], Value::Null, "not counted until the views run again");

    let (status, refused) = console.post("/api/query", &json!({ "sql": "SELECT 1" }));
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("Athena"), "{refused}");
    let (status, refused) = console.get("/api/trace?event_uuid=0d9e1a52-8c0f-4d7e-9b43-2f1c6a7e5b10");
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("event_uuid ="), "{refused}");
    let (status, refused) = console.post("/api/producers", &json!({ "rate": 10 }));
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("--stream"), "{refused}");
}

#[test]
fn a_record_too_large_to_repeat_in_its_entry_is_one_rejected_record_not_two() {
    // The writer keeps such a record in a file of its own beside its entry;
    // the Lake panel once counted the file as a second rejection ("too_large").
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let huge = format!(
        r#"{{"event_uuid":"1b2d7c1e-9f3a-4d8b-a6e1-0c4f2b7d9e31","event_name":"big:one","created_at":1710689696,"blob":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    let path = dir.path().join("huge.ndjson");
    std::fs::write(&path, format!("{huge}\n")).unwrap();
    success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(&lake).arg(&path));
    assert_eq!(
        crate::support::files_under(&lake.join("_rejected"))
            .iter()
            .filter(|f| f.ends_with(".record"))
            .count(),
        1
    );
    let console = Console::start(console_command(&lake, &[]));
    let (status, overview) = console.get("/api/lake");
    assert_eq!(status, 200);
    assert_eq!(overview["rejected"], json!({ "record_too_large": 1 }));
    let (_, listed) = console.get("/api/rejected");
    assert_eq!(listed["total"], 1);
    assert!(
        listed["records"][0]["record"].as_str().unwrap().starts_with("(over 1,000 KiB, stored at"),
        "{listed}"
    );
}
