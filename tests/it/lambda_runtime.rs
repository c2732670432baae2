//! The built `firehose-transform` binary in the real Lambda runtime loop, served by
//! cargo-lambda's Runtime API emulator (`cargo lambda watch --only-lambda-apis`)
//! and invoked with `cargo lambda invoke`, as a developer would.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{fixture, free_port, tool, wait_for_port, Background};

/// cargo-lambda: `$CARGO_LAMBDA`, the Makefile's venv, or the PATH.
fn cargo_lambda() -> PathBuf {
    tool("CARGO_LAMBDA", "cargo-lambda")
}

struct Emulator {
    port: u16,
    _server: Background,
    _function: Background,
}

impl Emulator {
    fn start() -> Self {
        let port = free_port();
        let server = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let server = Background(server);
        wait_for_port(port, Duration::from_secs(60));
        let function = Command::new(env!("CARGO_BIN_EXE_firehose-transform"))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start firehose-transform");
        Emulator { port, _server: server, _function: Background(function) }
    }

    fn invoke(&self, data_file: &std::path::Path) -> std::process::Output {
        Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-o",
                "json",
                "--data-file",
            ])
            .arg(data_file)
            .output()
            .expect("cargo lambda invoke")
    }
}

#[test]
fn the_lambda_binary_answers_invocations_through_the_runtime_api() {
    let emulator = Emulator::start();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("firehose-response.json")).unwrap()).unwrap();
    // Two invocations: the runtime loop serves more than one event per process.
    for _ in 0..2 {
        let output = emulator.invoke(&fixture("firehose-request.json"));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(response, expected);
    }

    // A payload that is not a Firehose request is an invocation error (Firehose
    // retries it), and the process keeps serving.
    let bad = std::env::temp_dir().join(format!("eventlake-bad-{}.json", std::process::id()));
    std::fs::write(&bad, r#"{"hello":"world"}"#).unwrap();
    let output = emulator.invoke(&bad);
    let _ = std::fs::remove_file(&bad);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr) + String::from_utf8_lossy(&output.stdout);
    assert!(message.contains("not a Firehose transformation request"), "{message}");
    let output = emulator.invoke(&fixture("firehose-request.json"));
    assert!(output.status.success());
}
