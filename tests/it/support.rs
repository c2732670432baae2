//! Shared helpers: paths, running binaries, free ports, child processes that die with the test.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn eventlake() -> Command {
    Command::new(env!("CARGO_BIN_EXE_eventlake"))
}

/// Runs `command` with `stdin` as input; returns its output (any exit status).
pub fn run_with_input(mut command: Command, stdin: &[u8]) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer thread").expect("write stdin");
    output
}

/// Runs `command` to completion and insists that it succeeds.
pub fn success(command: &mut Command) -> Output {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < timeout, "nothing listens on 127.0.0.1:{port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed when the test ends, pass or fail.
pub struct Background(pub Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of JSON logs on stderr with `message`.
pub fn log_lines(stderr: &[u8], message: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == message)
        .collect()
}

/// A tool the Makefile provides: `$VAR`, the Makefile's venv, or the PATH.
pub fn tool(var: &str, venv_name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(venv_name);
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(venv_name)).find(|p| p.exists()))
        .unwrap_or_else(|| {
            panic!("{venv_name} not found: run `make test` (it installs the test tools) or set {var}")
        })
}

/// Runs a Python snippet (with DuckDB and pyarrow available) that prints one JSON
/// value; `args` become `sys.argv[1:]`.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(tool("EVENTLAKE_PYTHON", "python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python");
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

/// DuckDB's view of a local lake: every row with its Hive partition columns, in a
/// stable order.
pub fn duckdb_rows(lake: &std::path::Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import duckdb, json, sys
rows = duckdb.sql(f"""
    SELECT event_type, created_date, event_uuid, event_name, event_subtype, created_at, created_datetime, payload
    FROM read_parquet('{sys.argv[1]}/events/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)
    ORDER BY event_type, created_date, created_at, event_uuid
""")
names = [c[0] for c in rows.description]
print(json.dumps([dict(zip(names, r)) for r in rows.fetchall()]))
"#;
    python_json(SCRIPT, &[lake.to_str().expect("utf-8 path")])
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A moto server on 127.0.0.1, stopped with the test.
pub struct Moto {
    pub port: u16,
    _server: Background,
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let server = Command::new(tool("MOTO_SERVER", "moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Background(server);
        wait_for_port(port, Duration::from_secs(60));
        Moto { port, _server: server }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS configuration of this server (static test credentials), as
    /// `eventlake::aws::load_config` would load it with `AWS_ENDPOINT_URL` set.
    pub fn sdk_config(&self) -> eventlake::aws::SdkConfig {
        let credentials = aws_sdk_s3::config::Credentials::new("test", "test", None, None, "moto");
        eventlake::aws::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(credentials))
            .retry_config(eventlake::aws::retries())
            .build()
    }

    /// An S3 client for this server, built as the product builds its own.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        eventlake::aws::s3::s3_client(&self.sdk_config())
    }

    /// A Glue client for this server, built as the product builds its own.
    pub fn glue(&self) -> aws_sdk_glue::Client {
        eventlake::catalog::glue_client(&self.sdk_config())
    }

    /// Environment for a process that talks to this server.
    pub fn env(&self, command: &mut Command) {
        command
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
    }
}

/// `eventlake generate` of `events` valid events from 2024-03-17 on: `types` types
/// over `days` days, a `duplicates` share of copies. Its NDJSON.
pub fn generated_events(events: usize, seed: u64, types: u32, days: u32, duplicates: &str) -> Vec<u8> {
    let (events, seed, types, days) =
        (events.to_string(), seed.to_string(), types.to_string(), days.to_string());
    success(eventlake().args([
        "generate",
        "--events",
        &events,
        "--seed",
        &seed,
        "--types",
        &types,
        "--days",
        &days,
        "--start",
        "2024-03-17",
        "--duplicates",
        duplicates,
        "--invalid",
        "0",
    ]))
    .stdout
}

/// Writes `ndjson` to `path` and runs `eventlake ingest` of it into `lake`.
pub fn ingest_file(lake: &std::path::Path, path: &std::path::Path, ndjson: &[u8]) {
    std::fs::write(path, ndjson).unwrap();
    success(eventlake().args(["ingest", "--quiet", "--lake"]).arg(lake).arg(path));
}

/// Copies the files of the lake written before `created_ts` and `ingested_at`
/// (tests/fixtures/lake-six-columns) under `lake`.
pub fn copy_six_column_lake(lake: &std::path::Path) {
    let fixture = fixture("lake-six-columns");
    for file in files_under(&fixture.join("events")) {
        let target = lake.join("events").join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(fixture.join("events").join(&file), target).unwrap();
    }
}
