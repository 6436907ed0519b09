//! The real `eventsync-server` binary as a child process: started on a SQLite file and a free
//! port, SIGKILLed or SIGTERMed, its `/proc` entries read (memory, open files).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// The binary built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_eventsync-server");

/// A port that was free a moment ago (the listener is dropped before the server binds it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A running `eventsync-server` process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub http: String,
    pub ws: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServerProcess {
    /// Creates `document` as `body` over HTTP (`PUT /api/documents/{document}`).
    pub async fn create(&self, document: &str, body: &serde_json::Value) {
        let created = super::http()
            .put(format!("{}/api/documents/{document}", self.http))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200, "creating {document}");
    }

    /// Spawns the binary on `database` and `port`, with its output in files under `logs`
    /// (named after `tag`).
    fn spawn(
        database: &str,
        port: u16,
        logs: &Path,
        tag: &str,
        extra: &[&str],
    ) -> (Child, PathBuf, PathBuf) {
        let stdout = logs.join(format!("{tag}.stdout"));
        let stderr = logs.join(format!("{tag}.stderr"));
        // Test loads are faster than a person types: no rate limiting, unless `extra` sets it.
        let lifted: &[&str] = if extra.contains(&"--rate-limit") {
            &[]
        } else {
            &["--rate-limit", "100000", "--rate-burst", "100000"]
        };
        let child = Command::new(BINARY)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", database])
            .args(lifted)
            .args([
                "--http-write-rate",
                "1000000",
                "--http-write-burst",
                "1000000",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("EVENTSYNC_AUTH_SECRET")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("the server binary starts");
        (child, stdout, stderr)
    }

    /// Starts the server and waits until `/health` answers. Another process may take the
    /// chosen port between picking and binding it: then it tries another one.
    pub async fn start(database: &str, logs: &Path, tag: &str) -> Self {
        Self::start_with_args(database, logs, tag, &[]).await
    }

    /// As [`ServerProcess::start`], with more command-line flags.
    pub async fn start_with_args(database: &str, logs: &Path, tag: &str, extra: &[&str]) -> Self {
        for attempt in 0..3 {
            let port = free_port();
            let tag = format!("{tag}-{attempt}");
            let (mut child, stdout, stderr) = Self::spawn(database, port, logs, &tag, extra);
            let http = format!("http://127.0.0.1:{port}");
            match wait_healthy(&mut child, &http).await {
                Ok(()) => {
                    return ServerProcess {
                        child,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        ws: format!("ws://127.0.0.1:{port}"),
                        http,
                        stdout,
                        stderr,
                    }
                }
                Err(Some(status)) if status.code() == Some(3) => continue,
                Err(status) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not become healthy ({status:?}); stderr:\n{}\nstdout:\n{}",
                        read(&stderr),
                        read(&stdout)
                    );
                }
            }
        }
        panic!("no free port after 3 attempts");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// SIGTERM (through `kill(1)`, no extra dependency).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    pub fn logs(&self) -> String {
        format!(
            "stderr:\n{}\nstdout:\n{}",
            read(&self.stderr),
            read(&self.stdout)
        )
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `RssAnon`, ...).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|line| {
                let value = line.strip_prefix(field)?.strip_prefix(':')?;
                value.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// What the process's open file descriptors point at (`socket:[...]`, paths, ...).
    pub fn open_files(&self) -> Vec<String> {
        let entries =
            std::fs::read_dir(format!("/proc/{}/fd", self.pid())).expect("read /proc/PID/fd");
        entries
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .map(|target| target.display().to_string())
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `/health` until it answers 200. `Err(status)` when the process exited first,
/// `Err(None)` when it did not answer in time.
pub async fn wait_healthy(child: &mut Child, http_base: &str) -> Result<(), Option<ExitStatus>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Err(Some(status));
        }
        if let Ok(response) = client.get(format!("{http_base}/health")).send().await {
            if response.status() == 200 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(None)
}

/// Waits (at most `wait`) for the process to exit.
pub async fn wait_exit(child: &mut Child, wait: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
