//! TLS for clients: with `node.tls_cert` and `node.tls_key` the node serves HTTPS and WSS. A
//! real TLS client (rustls) that trusts only a certificate this test makes (with `openssl`)
//! talks HTTP and WebSocket to it; a client that speaks plain HTTP to it gets nothing served.

mod common;
use common::TestNode;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Makes a self-signed certificate for `localhost` and 127.0.0.1; returns (cert, key).
fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server's certificate, not an authority's (the default of `req -x509`).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=digitalSignature"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (Debian package `openssl`)");
    assert!(status.success(), "openssl made the certificate");
    (cert, key)
}

fn connector(cert: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(n: &TestNode, cert: &Path) -> Tls {
    let tcp = tokio::net::TcpStream::connect(n.host()).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    connector(cert)
        .connect(name, tcp)
        .await
        .expect("the handshake succeeds with the node's certificate")
}

/// One HTTP/1.1 request over TLS; returns the whole response.
async fn https(n: &TestNode, cert: &Path, method: &str, path: &str, body: &str) -> String {
    let mut tls = tls_connect(n, cert).await;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    response
}

#[test]
fn tls_serves_https_and_wss_to_a_client_that_trusts_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path());
    let (c, k) = (cert.clone(), key.clone());
    let n = TestNode::start_with(move |config| {
        config.node.tls_cert = Some(c);
        config.node.tls_key = Some(k);
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let open = https(
            &n,
            &cert,
            "POST",
            "/v1/accounts",
            r#"{"id":"a","currency":"EUR"}"#,
        )
        .await;
        assert!(open.starts_with("HTTP/1.1 201"), "{open}");
        let get = https(&n, &cert, "GET", "/v1/accounts/a", "").await;
        assert!(
            get.starts_with("HTTP/1.1 200") && get.contains(r#""id":"a""#),
            "{get}"
        );
        // The WebSocket API over the same TLS listener.
        let tls = tls_connect(&n, &cert).await;
        let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/v1/stream", tls)
            .await
            .expect("the WebSocket upgrade over TLS");
        common::ws_send(&mut ws, serde_json::json!({"op": "ping"})).await;
        assert_eq!(common::ws_next(&mut ws).await["type"], "pong");
        // Plain HTTP to the TLS listener is not served.
        let mut plain = tokio::net::TcpStream::connect(n.host()).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("ok"),
            "plain HTTP was served on the TLS listener"
        );
    });

    // walletctl reaches the HTTPS node when it trusts the certificate (--ca-cert or
    // $WALLET_CA_CERT), and refuses it otherwise.
    let url = format!("https://{}", n.host());
    let walletctl = |ca: Option<&Path>, env_ca: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_walletctl"));
        cmd.args(["--node", &url, "--json"])
            .env_remove("WALLET_CA_CERT");
        if let Some(ca) = ca {
            cmd.arg("--ca-cert").arg(ca);
        }
        if let Some(ca) = env_ca {
            cmd.env("WALLET_CA_CERT", ca);
        }
        cmd.args(["account", "show", "a"])
            .output()
            .expect("walletctl runs")
    };
    for out in [walletctl(Some(&cert), None), walletctl(None, Some(&cert))] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(shown["id"], "a", "{shown}");
    }
    let untrusted = walletctl(None, None);
    assert!(
        !untrusted.status.success(),
        "a certificate no root vouches for is refused"
    );

    // walletctl watch streams over WSS with the same trust.
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_walletctl"));
        cmd.args(["--node", &url, "--json", "--ca-cert"])
            .arg(&cert)
            .args(args)
            .env_remove("WALLET_CA_CERT");
        cmd
    };
    let deposit = cli(&["deposit", "a", "42"]).output().unwrap();
    assert!(deposit.status.success(), "{deposit:?}");
    let mut watch = cli(&["watch", "a", "--from-seq", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("watch printed the deposit");
    let update: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (update["seq"].as_u64(), update["balance"].as_u64()),
        (Some(1), Some(42))
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn tls_with_a_bad_key_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = make_certificate(dir.path());
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let mut config = cluster_config::Config::default();
    config.node.listen = "127.0.0.1:0".into();
    config.storage.backend = cluster_config::Backend::Memory;
    config.node.tls_cert = Some(cert);
    config.node.tls_key = Some(bad.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(node::server::Node::start(&config))
        .err()
        .expect("refused");
    let said = err.to_string();
    assert!(
        said.contains("node.tls_key") && said.contains(&bad.display().to_string()),
        "{said}"
    );
}
