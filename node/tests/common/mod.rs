//! A node started in-process on a free loopback port, for API tests.

#![allow(dead_code)]

use node::server::Node;
use node::storage::memory::MemoryBackend;
use serde_json::Value;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A node serving on 127.0.0.1 with a memory store, stopped on drop.
pub struct TestNode {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT` of `node.admin_listen`, when set.
    pub admin_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestNode {
    /// Starts a node with the memory backend.
    pub fn start() -> TestNode {
        Self::start_with(|_| {})
    }

    /// Starts a node after letting the caller adjust the config.
    pub fn start_with(adjust: impl FnOnce(&mut cluster_config::Config)) -> TestNode {
        Self::start_on(Arc::new(MemoryBackend::new()), adjust)
    }

    /// Starts a node on a given memory backend (to inject faults into it).
    pub fn start_on(
        backend: Arc<MemoryBackend>,
        adjust: impl FnOnce(&mut cluster_config::Config),
    ) -> TestNode {
        Self::start_backend(backend, adjust)
    }

    /// Starts a node on any backend (an embedded store in a directory, for example).
    pub fn start_backend(
        backend: Arc<dyn node::storage::Backend>,
        adjust: impl FnOnce(&mut cluster_config::Config),
    ) -> TestNode {
        let mut config = cluster_config::Config::default();
        config.node.listen = "127.0.0.1:0".into();
        config.storage.backend = cluster_config::Backend::Memory;
        adjust(&mut config);
        config.validate().expect("test config is valid");
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let node = Node::start_with_backend(&config, backend)
                    .await
                    .expect("node starts");
                addr_tx.send((node.addr(), node.admin_addr())).unwrap();
                let _ = stop_rx.await;
                node.shutdown().await;
            });
        });
        let (addr, admin) = addr_rx.recv().expect("node reports its address");
        TestNode {
            url: format!("http://{addr}"),
            admin_url: admin.map(|a| format!("http://{a}")),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The `host:port` of the node.
    pub fn host(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A blocking HTTP client that returns every status as a value, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends a request; returns status and parsed JSON body (Null when empty or not JSON).
pub fn call(method: &str, url: &str, body: Option<&str>, key: Option<&str>) -> (u16, Value) {
    let a = agent();
    let mut resp = match (method, body) {
        ("GET", _) => a.get(url).call(),
        ("POST", b) => {
            let mut req = a.post(url).header("content-type", "application/json");
            if let Some(k) = key {
                req = req.header("idempotency-key", k);
            }
            req.send(b.unwrap_or(""))
        }
        _ => panic!("method {method}"),
    }
    .expect("the node answers");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Opens an account in EUR on the node at `url`, asserting it was created.
pub fn open_account(url: &str, id: &str) {
    let body = format!(r#"{{"id":"{id}","currency":"EUR"}}"#);
    let (s, v) = call("POST", &format!("{url}/v1/accounts"), Some(&body), None);
    assert_eq!(s, 201, "{v}");
}

/// Deposits `amount` into `id` without a key, asserting it was applied.
pub fn deposit(url: &str, id: &str, amount: u64) {
    let body = format!(r#"{{"account":"{id}","amount":{amount}}}"#);
    let (s, v) = call("POST", &format!("{url}/v1/deposits"), Some(&body), None);
    assert_eq!(s, 201, "{v}");
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// A WebSocket client of `/v1/stream`.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one JSON frame.
pub async fn ws_send<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, v: Value)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::SinkExt;
    let frame = tokio_tungstenite::tungstenite::Message::Text(v.to_string().into());
    ws.send(frame).await.unwrap();
}

/// The next JSON frame, within 10 s.
pub async fn ws_next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A WebSocket connected to the node's `/v1/stream`.
pub async fn ws_connect(n: &TestNode) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/stream", n.host()))
        .await
        .expect("ws connects");
    ws
}

/// Runs `walletctl --node URL ARGS...` and returns its output.
pub fn walletctl(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(["--node", url])
        .args(args)
        .output()
        .expect("walletctl runs")
}

impl TestNode {
    /// `POST path` with a JSON body and an optional idempotency key.
    pub fn post(&self, path: &str, body: serde_json::Value, key: Option<&str>) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", self.url),
            Some(&body.to_string()),
            key,
        )
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> (u16, Value) {
        call("GET", &format!("{}{path}", self.url), None, None)
    }

    /// The entries of a page of a journal (`path` is the entries route with its query),
    /// asserting it reads.
    pub fn entries(&self, path: &str) -> Vec<Value> {
        let (s, v) = self.get(path);
        assert_eq!(s, 200, "{v}");
        v["entries"].as_array().expect("a page of entries").clone()
    }

    /// (balance, available, held) of an account, asserting it reads.
    pub fn money(&self, id: &str) -> (u64, u64, u64) {
        let (s, v) = self.get(&format!("/v1/accounts/{id}"));
        assert_eq!(s, 200, "{v}");
        let f = |k: &str| v[k].as_u64().unwrap();
        (f("balance"), f("available"), f("held"))
    }
}
