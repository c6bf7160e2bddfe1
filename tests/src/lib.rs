//! Harness of the end-to-end tests: run the built `walletd` and `walletctl` over real sockets.
//!
//! The binaries are those `cargo test --workspace` builds into the same target directory as
//! these tests (`target/debug/`). Run alone, `cargo test -p e2e` needs them built first:
//! `cargo build -p node --bins`.
//!
//! Storage: the nodes run on the embedded store in the test's directory, unless
//! `FDB_CLUSTER_FILE` names a FoundationDB cluster file: then every node runs on that cluster,
//! under a key prefix derived from the test's directory (so a restarted node finds its ledger
//! and two tests never share one), and `walletd` must be built with `--features fdb`. Nothing
//! clears those prefixes afterwards: run them on a cluster kept for tests.

pub mod cluster;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of a binary built next to the running test (`target/<profile>/NAME`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/NAME
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test --workspace` or `cargo build -p node --bins` first",
        path.display()
    );
    path
}

/// The environment variable that moves the end-to-end tests onto FoundationDB.
pub const FDB_CLUSTER_FILE: &str = "FDB_CLUSTER_FILE";

/// The FoundationDB cluster file the tests run on, if any; says once which store they use.
pub fn fdb_cluster_file() -> Option<PathBuf> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let file = std::env::var_os(FDB_CLUSTER_FILE).map(PathBuf::from);
    SAID.call_once(|| match &file {
        Some(f) => eprintln!("e2e: nodes run on FoundationDB ({})", f.display()),
        None => eprintln!(
            "e2e: nodes run on the embedded store; the FoundationDB run is skipped because {FDB_CLUSTER_FILE} is not set"
        ),
    });
    file
}

/// The FoundationDB key prefix of the nodes whose embedded directory would be `data`.
pub fn fdb_prefix(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("e2e-{:016x}", hasher.finish())
}

/// The `[storage]` section of a config for nodes sharing `data` (see the module doc).
pub fn storage_toml(data: &Path) -> String {
    match fdb_cluster_file() {
        Some(file) => format!(
            "[storage]\nbackend = \"fdb\"\ncluster_file = \"{}\"\nprefix = \"{}\"\n",
            file.display(),
            fdb_prefix(data)
        ),
        None => format!(
            "[storage]\nbackend = \"embedded\"\npath = \"{}\"\n",
            data.display()
        ),
    }
}

/// A `walletd` child process on a free loopback port, killed on drop.
pub struct Walletd {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin listener's URL, when `node.admin_listen` is set.
    pub admin_url: Option<String>,
}

impl Walletd {
    /// Starts `walletd` on the embedded store in `data` (or on FoundationDB, see the module
    /// doc), logging to `data/walletd.log`.
    pub fn start(data: &Path) -> Walletd {
        std::fs::create_dir_all(data).expect("data dir");
        let mut cmd = Command::new(binary("walletd"));
        cmd.args(["--listen", "127.0.0.1:0", "--data"]).arg(data);
        if let Some(file) = fdb_cluster_file() {
            cmd.env("WALLET_STORAGE_BACKEND", "fdb")
                .env("WALLET_FDB_CLUSTER_FILE", file)
                .env("WALLET_FDB_PREFIX", fdb_prefix(data));
        }
        Walletd::spawn(cmd, &data.join("walletd.log"))
    }

    /// Starts `walletd --config config`, logging to `log`; the config should listen on port 0.
    pub fn start_config(config: &Path, log: &Path) -> Walletd {
        let mut cmd = Command::new(binary("walletd"));
        cmd.arg("--config").arg(config);
        Walletd::spawn(cmd, log)
    }

    fn spawn(mut cmd: Command, log_path: &Path) -> Walletd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("log file");
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("walletd starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("walletd prints its address");
        // "walletd V listening on http://A (node N, storage S at P; admin on http://B)"
        let mut urls = line
            .split_whitespace()
            .filter(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches(')').to_owned());
        let url = urls.next().unwrap_or_else(|| {
            // The node stopped before it served: its log says why (the directory holding it
            // may be gone by the time anyone looks).
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("no address in {line:?}; {}:\n{log}", log_path.display())
        });
        let admin_url = urls.next();
        Walletd {
            child,
            url,
            admin_url,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit by itself; returns whether it exited with
    /// success.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Kills the process with SIGKILL (no chance to flush or shut down) and reaps it.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends the signal `sig` (a name such as `STOP` or `CONT`) to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {pid} failed");
    }

    /// Sends SIGTERM and waits for a graceful exit; returns whether it exited with success.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Walletd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client that returns every status as a value, with a request timeout.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// Status and JSON body of a request; `Err` when no answer came (connection failed).
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> Result<(u16, Value), String> {
    let result = match method {
        "GET" => agent.get(url).call(),
        "POST" => {
            let mut req = agent.post(url).header("content-type", "application/json");
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            req.send(body.map(|b| b.to_string()).unwrap_or_default())
        }
        m => panic!("method {m}"),
    };
    let mut resp = result.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Opens account `id` in EUR through the node at `url` and deposits `amount` under the
/// idempotency key `key`, asserting both succeed.
pub fn open_funded(agent: &ureq::Agent, url: &str, id: &str, amount: u64, key: &str) {
    let (s, v) = request(
        agent,
        "POST",
        &format!("{url}/v1/accounts"),
        Some(&serde_json::json!({"id": id, "currency": "EUR"})),
        None,
    )
    .unwrap();
    assert_eq!(s, 201, "{v}");
    let (s, v) = request(
        agent,
        "POST",
        &format!("{url}/v1/deposits"),
        Some(&serde_json::json!({"account": id, "amount": amount})),
        Some(key),
    )
    .unwrap();
    assert_eq!(s, 201, "{v}");
}
