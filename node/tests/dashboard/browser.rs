//! A headless Chromium driven over the Chrome DevTools Protocol: JSON commands and events on
//! one WebSocket (tungstenite), one page attached in flat mode.
//!
//! The browser runs in a fresh profile directory with everything that would reach the network
//! off, picks its own debugging port (`--remote-debugging-port=0`, read back from the profile's
//! `DevToolsActivePort`, so no port is guessed), and is closed (then killed if it lingers) when
//! the [`Browser`] is dropped. Every event read is checked for trouble: console errors,
//! uncaught exceptions, log errors (a refused Content-Security-Policy, a failed resource),
//! requests that failed or answered 4xx/5xx; they are kept in [`Browser::problems`].

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// Longest wait for the browser to start and for any one command's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one read of the socket blocks before the deadline is looked at again.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Longest wait for the browser to exit after `Browser.close`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Browser::wait_for`] evaluates its expression again.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// The Chromium binary: `$CHROMIUM` if set, else `chromium` on the `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// The browser's process, killed when dropped unless it has exited (also when starting it
/// failed half way).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running headless Chromium with one attached page.
pub struct Browser {
    /// Declared before `dir`, so that the process ends before its profile is removed.
    child: Process,
    /// Holds the profile and the browser's log; removed on drop.
    _dir: tempfile::TempDir,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// URL of each request the page made, by request id.
    requests: HashMap<String, String>,
    /// Every URL the page requested, in order.
    pub requested: Vec<String>,
    /// Status of each WebSocket handshake the page made, with its URL.
    pub websockets: Vec<(String, u64)>,
    /// Console errors, exceptions, log errors and failed requests, in order.
    pub problems: Vec<String>,
    loaded: bool,
}

impl Browser {
    /// Starts Chromium headless, sandbox, GPU and network services off, in a fresh profile,
    /// and attaches to a blank page.
    pub fn launch(binary: &Path) -> Browser {
        let dir = tempfile::tempdir().expect("a temp dir");
        let profile = dir.path().join("profile");
        let log = std::fs::File::create(dir.path().join("chromium.log")).expect("a log file");
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map(Process)
            .unwrap_or_else(|e| panic!("{} starts: {e}", binary.display()));
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let (port, path) = loop {
            // Written once the debugging socket listens: its port, then the browser's path.
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.to_owned(), path.to_owned());
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium wrote no DevToolsActivePort within {COMMAND_TIMEOUT:?}; its log:\n{}",
                std::fs::read_to_string(dir.path().join("chromium.log")).unwrap_or_default()
            );
            std::thread::sleep(POLL_EVERY);
        };
        let stream = TcpStream::connect(format!("127.0.0.1:{port}")).expect("the debugging port");
        let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .expect("the DevTools WebSocket handshake");
        // After the handshake (which must not be cut by a timeout): reads come back every
        // slice so that deadlines are looked at.
        ws.get_ref().set_read_timeout(Some(READ_SLICE)).unwrap();
        let mut b = Browser {
            child,
            _dir: dir,
            ws,
            session: String::new(),
            next_id: 0,
            requests: HashMap::new(),
            requested: Vec::new(),
            websockets: Vec::new(),
            problems: Vec::new(),
            loaded: false,
        };
        let target = b.browser_call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = b.browser_call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        for domain in ["Runtime", "Log", "Network", "Page"] {
            b.call(&format!("{domain}.enable"), json!({}));
        }
        b
    }

    /// Opens a URL in the page and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        self.loaded = false;
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigate to {url}: {r}");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while !self.loaded {
            assert!(Instant::now() < deadline, "{url} did not load in time");
            if let Some(event) = self.read(deadline) {
                self.event(&event);
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is truthy (not null, false, 0 or ""), within `within`;
    /// returns that value, or fails naming `what` and the last value.
    pub fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expression);
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?} (last value {v}); page problems: {:?}",
                self.problems
            );
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Sends a command to the attached page and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, None)
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .unwrap_or_else(|e| panic!("send {method}: {e}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "{method}: no answer in time");
            let Some(m) = self.read(deadline) else {
                continue;
            };
            if m["id"].as_u64() == Some(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method}: {e}");
                }
                return m["result"].clone();
            }
            self.event(&m);
        }
    }

    /// The next message, or `None` when nothing came within one read slice.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => Some(serde_json::from_str(t.as_str()).expect("CDP JSON")),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                assert!(
                    Instant::now() < deadline,
                    "no message from Chromium in time"
                );
                None
            }
            Err(e) => panic!("the DevTools socket failed: {e}"),
        }
    }

    /// Records what an event says about the page.
    fn event(&mut self, m: &Value) {
        let p = &m["params"];
        match m["method"].as_str().unwrap_or_default() {
            "Page.loadEventFired" => self.loaded = true,
            "Network.requestWillBeSent" => {
                let url = p["request"]["url"].as_str().unwrap_or_default().to_owned();
                self.requested.push(url.clone());
                self.requests
                    .insert(p["requestId"].as_str().unwrap_or_default().to_owned(), url);
            }
            "Network.responseReceived" => {
                let status = p["response"]["status"].as_u64().unwrap_or(0);
                if status >= 400 {
                    self.problems.push(format!(
                        "{} answered {status}",
                        p["response"]["url"].as_str().unwrap_or_default()
                    ));
                }
            }
            "Network.loadingFailed" => {
                let url = self
                    .requests
                    .get(p["requestId"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                self.problems.push(format!(
                    "request {url} failed: {} {}",
                    p["errorText"].as_str().unwrap_or_default(),
                    p["blockedReason"].as_str().unwrap_or_default()
                ));
            }
            "Network.webSocketHandshakeResponseReceived" => {
                let url = self
                    .requests
                    .get(p["requestId"].as_str().unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                let status = p["response"]["status"].as_u64().unwrap_or(0);
                self.websockets.push((url, status));
            }
            "Network.webSocketCreated" => {
                self.requests.insert(
                    p["requestId"].as_str().unwrap_or_default().to_owned(),
                    p["url"].as_str().unwrap_or_default().to_owned(),
                );
            }
            "Runtime.consoleAPICalled" if p["type"] == "error" || p["type"] == "assert" => {
                self.problems.push(format!("console error: {}", p["args"]));
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                self.problems.push(format!(
                    "uncaught exception: {} {}",
                    d["text"].as_str().unwrap_or_default(),
                    d["exception"]["description"].as_str().unwrap_or_default()
                ));
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                self.problems.push(format!(
                    "log error: {} ({})",
                    p["entry"]["text"].as_str().unwrap_or_default(),
                    p["entry"]["url"].as_str().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asked to close, Chromium ends its own helper processes; killed only if it lingers.
        let msg = json!({"id": u64::MAX, "method": "Browser.close"});
        let _ = self.ws.send(Message::Text(msg.to_string().into()));
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.0.try_wait() {
                return;
            }
            std::thread::sleep(POLL_EVERY);
        }
        eprintln!("Chromium did not exit after Browser.close; killing it");
        // `Process::drop` kills it.
    }
}
