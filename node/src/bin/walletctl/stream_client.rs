//! A synchronous WebSocket to a node's `GET /v1/stream`, with the HTTP client's token and TLS.
//!
//! `http://` becomes `ws://` and `https://` becomes `wss://`; TLS is rustls with the same
//! crypto provider and trusted certificates as [`Client`] (`--ca-cert`, or the public roots).
//! The token goes in `Authorization: Bearer`. Reads on the open socket time out after the
//! period the caller gives, so that it can check for Ctrl-C between frames; a read that timed
//! out leaves the socket usable.

use crate::client::{CliError, Client, Raw, Roots, CONNECT_TIMEOUT};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::HeaderValue;
use tungstenite::WebSocket;

/// Longest a write to the socket may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream: plain TCP, or TLS over TCP.
pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// An open `/v1/stream` socket.
pub type Socket = WebSocket<Box<dyn Io>>;

/// Why a socket could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Refused for good (a bad token, a bad URL or certificate file): retrying cannot help.
    Refused(CliError),
    /// The node could not be reached, or answered that it cannot serve now: worth another try.
    Failed(String),
}

/// The stream's URL on the node at `base` (`http://HOST:PORT` or `https://HOST:PORT`).
pub fn stream_url(base: &str) -> String {
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}/v1/stream"),
        None => format!("ws://{}/v1/stream", base.trim_start_matches("http://")),
    }
}

/// Opens `/v1/stream` on the client's node; reads on it then time out after `read_timeout`.
pub fn open(client: &Client, read_timeout: Duration) -> Result<Socket, OpenError> {
    let url = stream_url(client.base());
    let usage = |why: String| OpenError::Refused(CliError::Usage(why));
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| usage(format!("bad stream URL {url}: {e}")))?;
    if let Some(a) = client.authorization() {
        let value = HeaderValue::from_str(a).map_err(|e| usage(format!("--token: {e}")))?;
        request.headers_mut().insert("Authorization", value);
    }
    let tls = url.starts_with("wss://");
    let host = request
        .uri()
        .host()
        .ok_or_else(|| usage(format!("no host in {url}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if tls { 443 } else { 80 });
    let tcp = connect(&host, port)?;
    let failed = |e: std::io::Error| OpenError::Failed(format!("{url}: {e}"));
    tcp.set_nodelay(true).map_err(failed)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(failed)?;
    // The handshake has the connection's time; the open socket then reads with the caller's.
    tcp.set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(failed)?;
    let control = tcp.try_clone().map_err(failed)?;
    let stream: Box<dyn Io> = if tls {
        let config = tls_config(client.roots()).map_err(OpenError::Refused)?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| usage(format!("{host} is not a TLS server name: {e}")))?;
        let conn = ClientConnection::new(config, name)
            .map_err(|e| usage(format!("cannot start TLS with {host}: {e}")))?;
        Box::new(StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    let (socket, _) = tungstenite::client(request, stream).map_err(|e| refusal(&url, e))?;
    control
        .set_read_timeout(Some(read_timeout))
        .map_err(failed)?;
    Ok(socket)
}

/// A TCP connection to the first address of `host:port` that answers.
fn connect(host: &str, port: u16) -> Result<TcpStream, OpenError> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| OpenError::Failed(format!("cannot resolve {host}: {e}")))?;
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    Err(OpenError::Failed(last))
}

/// What a failed handshake means: a refusal by the node (its API error), or a failure to retry.
fn refusal<S>(url: &str, e: HandshakeError<S>) -> OpenError
where
    S: tungstenite::handshake::HandshakeRole,
{
    match e {
        HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
            let raw = Raw {
                status: resp.status().as_u16(),
                body: resp.body().clone().unwrap_or_default(),
                url: url.to_owned(),
            };
            let error = raw.error();
            // Overloaded, unavailable or starting: the same request may succeed later.
            if raw.status >= 500 || raw.status == 429 {
                OpenError::Failed(error.to_string())
            } else {
                OpenError::Refused(error)
            }
        }
        HandshakeError::Failure(tungstenite::Error::Tls(e)) => {
            OpenError::Refused(CliError::Connect {
                url: url.to_owned(),
                detail: format!("TLS: {e}"),
            })
        }
        HandshakeError::Failure(other) => OpenError::Failed(format!("{url}: {other}")),
        HandshakeError::Interrupted(_) => OpenError::Failed(format!(
            "{url}: no handshake within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The rustls configuration of `wss://`: the client's trusted certificates, or the public roots.
fn tls_config(roots: &Roots) -> Result<Arc<ClientConfig>, CliError> {
    let mut store = RootCertStore::empty();
    match roots {
        Some(certs) => {
            for c in certs.iter() {
                store
                    .add(CertificateDer::from(c.der().to_vec()))
                    .map_err(|e| CliError::Usage(format!("--ca-cert: {e}")))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS: {e}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_url_follows_the_node_scheme() {
        // Proves http nodes stream over ws:// and https nodes over wss://, on /v1/stream.
        assert_eq!(
            stream_url("http://127.0.0.1:8080"),
            "ws://127.0.0.1:8080/v1/stream"
        );
        assert_eq!(stream_url("https://n1:443"), "wss://n1:443/v1/stream");
    }
}
