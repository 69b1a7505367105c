//! `arbor bench` run as the binary against `arbor serve` run as the binary: loading a workload,
//! writing every check's answer (`--answers-out`, what `benches/compare.sh` compares between
//! servers), the no-op RPC (`--op health`), and a clear failure on a wrong token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-cli-test-key";

fn workload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/workloads/data/xs")
}

/// `arbor serve` on a free loopback port (memory engine); killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args([
                "serve",
                "--datastore-engine",
                "memory",
                "--metrics-enabled=false",
            ])
            .args(["--grpc-addr", &format!("127.0.0.1:{port}")])
            .args(["--grpc-preshared-key", TOKEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("arbor serve starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "arbor serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port }
    }

    fn bench(&self, token: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("bench")
            .args(["--target", &format!("127.0.0.1:{}", self.port)])
            .args(["--token", token, "--threads", "1"])
            .arg("--workload")
            .arg(workload())
            .args(args)
            .output()
            .expect("arbor bench runs")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json_line(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {stdout}"));
    serde_json::from_str(line).expect("the JSON line parses")
}

#[test]
fn bench_loads_a_workload_and_every_answer_matches_spicedb() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let answers = dir.path().join("answers.txt");
    let out = server.bench(
        TOKEN,
        &[
            "--load",
            "--duration",
            "0s",
            "--clients",
            "1",
            "--answers-out",
            answers.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(&answers).unwrap();
    let expected = std::fs::read_to_string(workload().join("expected.txt")).unwrap();
    let (got, expected): (Vec<&str>, Vec<&str>) =
        (got.lines().collect(), expected.lines().collect());
    assert_eq!(got.len(), 1000, "one answer per line of checks.txt");
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "line {} of checks.txt", i + 1);
    }
    assert!(got.iter().any(|l| l.ends_with("\ttrue")));
    assert!(got.iter().any(|l| l.ends_with("\tfalse")));

    // --answers-limit asks only the first N.
    let out = server.bench(
        TOKEN,
        &[
            "--duration",
            "0s",
            "--clients",
            "1",
            "--answers-out",
            answers.to_str().unwrap(),
            "--answers-limit",
            "7",
        ],
    );
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(&answers).unwrap().lines().count(),
        7
    );

    // Checks for a while, then the no-op RPC: calls made, none failed.
    for op in ["check", "health"] {
        let out = server.bench(
            TOKEN,
            &[
                "--op",
                op,
                "--duration",
                "300ms",
                "--clients",
                "2",
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{op}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = json_line(&out);
        assert_eq!(result["op"], op);
        assert!(result["calls"].as_u64().unwrap() > 0, "{op}: {result}");
        assert_eq!(result["errors"], 0, "{op}: {result}");
    }
}

#[test]
fn bench_with_a_wrong_token_fails_and_says_why() {
    let server = Server::start();
    let out = server.bench(
        "not-the-key",
        &["--load", "--duration", "0s", "--clients", "1"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WriteSchema failed"), "{stderr}");
    assert!(stderr.contains("invalid preshared key"), "{stderr}");
    assert!(
        !stderr.contains("not-the-key"),
        "the token must not be echoed: {stderr}"
    );
}
