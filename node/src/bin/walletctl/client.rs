//! HTTP client of the node's API, and the mapping of every failure to a [`CliError`].
//!
//! One ureq [`Agent`] per client keeps connections alive between requests. HTTP error statuses
//! are not ureq errors here (`http_status_as_error(false)`): the body of a 4xx/5xx is the API's
//! `{"error":{code,message}}` and must be read. Transport failures are split by what they mean
//! for money: [`CliError::Connect`] (the request was never sent: nothing happened) versus
//! [`CliError::NoAnswer`] (it may have been applied: the outcome is unknown). With a token
//! (`--token` or `$WALLET_TOKEN`), every request carries `Authorization: Bearer <token>`. An
//! `https://` node is reached through rustls, trusting the certificates of `--ca-cert` (or
//! `$WALLET_CA_CERT`) when given, the public roots otherwise.

use protocol::error::ErrorBody;
use protocol::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use ureq::tls::{parse_pem, Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Timeout};

/// Time allowed to open a TCP connection to the node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for a whole request and its answer, unless a command sets its own.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of one command's request when the outcome is unknown (503 or no answer); the
/// idempotency key makes a repeated mutation safe.
pub const ATTEMPTS: u32 = 3;

/// Pause before the second attempt; doubled for each later one.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);

/// Longest part of an unexpected body quoted in an error message.
const BODY_QUOTE_MAX: usize = 200;

/// Everything that can make a command fail; each has a stable code for `error: <code>: ...`.
#[derive(Debug)]
pub enum CliError {
    /// A bad argument, refused before any request was sent.
    Usage(String),
    /// The node answered with an API error (or a transfer that failed).
    Api {
        /// Code and sentence from the body.
        error: ApiError,
    },
    /// No connection could be made: the request was not sent, so nothing happened.
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        detail: String,
    },
    /// The request may have reached the node but no complete answer came back.
    NoAnswer {
        /// The URL tried.
        url: String,
        /// Why.
        detail: String,
    },
    /// The node answered something that is not the documented body.
    BadResponse {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// A transfer (or disbursement) was accepted but not settled within its wait; its saga
    /// settles it later.
    Pending {
        /// What it is: `transfer` or `disbursement`.
        kind: &'static str,
        /// Its id.
        transfer_id: String,
        /// How long the node waited, in ms.
        wait_ms: u64,
    },
    /// A command ran but its result is a failure (audit violations, a bench with no success).
    Failed {
        /// Stable code (`audit_failed`, `bench_failed`).
        code: &'static str,
        /// The sentence.
        message: String,
    },
    /// Writing to standard output failed.
    Output(io::Error),
}

impl CliError {
    /// The stable code printed after `error:`.
    pub fn code(&self) -> &str {
        match self {
            CliError::Usage(_) => "invalid_argument",
            CliError::Api { error, .. } => error.code.as_str(),
            CliError::Connect { .. } => "connection_failed",
            CliError::NoAnswer { .. } => "no_answer",
            CliError::BadResponse { .. } => "bad_response",
            CliError::Pending { .. } => "transfer_pending",
            CliError::Failed { code, .. } => code,
            CliError::Output(_) => "output_failed",
        }
    }

    /// True when a mutation may or may not have been applied (retry with the same key).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            CliError::Api { error, .. } => error.code.is_outcome_unknown(),
            CliError::NoAnswer { .. } | CliError::Pending { .. } => true,
            _ => false,
        }
    }

    /// Process exit status: 2 bad usage, 3 outcome unknown or not yet settled, 1 any other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ if self.outcome_unknown() => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Api { error, .. } => f.write_str(&error.message),
            CliError::Connect { url, detail } => write!(
                f,
                "cannot connect to {url} ({detail}); is walletd running there? (set --node or WALLETCTL_NODE)"
            ),
            CliError::NoAnswer { url, detail } => {
                write!(f, "no complete answer from {url} ({detail})")
            }
            CliError::BadResponse {
                url,
                status,
                detail,
            } => write!(f, "unexpected answer from {url} (HTTP {status}): {detail}"),
            CliError::Pending {
                kind,
                transfer_id,
                wait_ms,
            } => write!(
                f,
                "{kind} {transfer_id} did not settle within {wait_ms} ms; its saga settles it on its own (the amount stays held until then); see GET /v1/{kind}s/{transfer_id}"
            ),
            CliError::Failed { message, .. } => f.write_str(message),
            CliError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

/// An answer as received: status, body bytes, and the URL asked (for messages).
#[derive(Debug)]
pub struct Raw {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The URL asked.
    pub url: String,
}

impl Raw {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Decodes the body as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CliError> {
        serde_json::from_slice(&self.body).map_err(|e| CliError::BadResponse {
            url: self.url.clone(),
            status: self.status,
            detail: format!("{e}; body: {}", quote(&self.body)),
        })
    }

    /// Decodes a 2xx body as `T`, or turns an error status into its [`CliError`].
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, CliError> {
        if self.is_success() {
            self.json()
        } else {
            Err(self.error())
        }
    }

    /// The error a non-2xx answer stands for.
    pub fn error(&self) -> CliError {
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(&self.body) {
            return CliError::Api { error: body.error };
        }
        // A gateway in front of the node answers these without the API's body; the request may
        // have been forwarded, so for money they mean the same as `unavailable`.
        if matches!(self.status, 502..=504) {
            return CliError::Api {
                error: ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "HTTP {} from {} without an API error body: {}",
                        self.status,
                        self.url,
                        quote(&self.body)
                    ),
                ),
            };
        }
        CliError::BadResponse {
            url: self.url.clone(),
            status: self.status,
            detail: format!("not an API error body: {}", quote(&self.body)),
        }
    }
}

/// The first bytes of a body, lossily decoded, for an error message.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_QUOTE_MAX)]);
    let more = if body.len() > BODY_QUOTE_MAX {
        "..."
    } else {
        ""
    };
    format!("{:?}{more}", text.trim())
}

/// The certificates a client trusts for `https://` nodes: the given ones, or the usual
/// public roots when `None`.
pub type Roots = Option<Arc<Vec<Certificate<'static>>>>;

/// A client of one node.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: Agent,
    /// `Bearer <token>`, sent with every request when given.
    authorization: Option<String>,
    roots: Roots,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.authorization.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Client {
    /// A client of the node at `node` (`http://host:port` or `https://host:port`; `http://`
    /// is assumed without a scheme), sending `token` as a bearer token when given, trusting
    /// the certificates of the PEM file `ca_cert` for HTTPS (the public roots without it).
    pub fn new(node: &str, token: Option<&str>, ca_cert: Option<&Path>) -> Result<Self, CliError> {
        // An empty token (`WALLET_TOKEN=` exported blank) is no token.
        let authorization = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) if t.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                return Err(CliError::Usage(
                    "--token (or WALLET_TOKEN) must be one word without spaces".into(),
                ))
            }
            Some(t) => Some(format!("Bearer {t}")),
        };
        let roots = ca_cert.map(load_roots).transpose()?;
        Client::with(node, "http", authorization, roots)
    }

    fn with(
        node: &str,
        default_scheme: &str,
        authorization: Option<String>,
        roots: Roots,
    ) -> Result<Self, CliError> {
        let base = normalize_base(node, default_scheme)?;
        let root_certs = match &roots {
            Some(certs) => RootCerts::Specific(certs.clone()),
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder()
            .unversioned_rustls_crypto_provider(Arc::new(aws_lc_rs::default_provider()))
            .root_certs(root_certs)
            .build();
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("walletctl/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .into();
        Ok(Client {
            base,
            agent,
            authorization,
            roots,
        })
    }

    /// Another client of the same node with the same token and a connection of its own.
    pub fn fresh(&self) -> Result<Client, CliError> {
        self.for_node(&self.base)
    }

    /// A client of another node (a member of the same cluster) with the same token and
    /// certificates; an address without a scheme takes this node's.
    pub fn for_node(&self, node: &str) -> Result<Client, CliError> {
        let scheme = if self.base.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        Client::with(node, scheme, self.authorization.clone(), self.roots.clone())
    }

    /// Adds the `Authorization` header when the client has a token.
    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// The node's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `Bearer <token>`, when the client has a token.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// The certificates trusted for an `https://` node (`None`: the public roots).
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// `GET path` and decode a 2xx body, retrying while the outcome is unknown.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.with_retries(ATTEMPTS, || self.get_once(path))?
            .into_result()
    }

    /// `GET path` once, without decoding.
    pub fn get_once(&self, path: &str) -> Result<Raw, CliError> {
        let url = format!("{}{path}", self.base);
        let resp = self.authorized(self.agent.get(&url)).call();
        read(url, resp)
    }

    /// `POST path` with a JSON body and an idempotency key, retried up to `attempts` times with
    /// the same key while the outcome is unknown; returns the last answer undecoded.
    pub fn post_raw<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        key: &str,
        timeout: Duration,
        attempts: u32,
    ) -> Result<Raw, CliError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| CliError::Usage(format!("cannot encode the request: {e}")))?;
        self.with_retries(attempts, || self.post_once(path, &bytes, key, timeout))
    }

    /// `POST path` with an empty body and an idempotency key (freeze, unfreeze), retried.
    pub fn post_empty(&self, path: &str, key: &str) -> Result<Raw, CliError> {
        self.with_retries(ATTEMPTS, || {
            let url = format!("{}{path}", self.base);
            let resp = self
                .authorized(self.agent.post(&url))
                .header("Idempotency-Key", key)
                .send_empty();
            read(url, resp)
        })
    }

    fn post_once(
        &self,
        path: &str,
        body: &[u8],
        key: &str,
        timeout: Duration,
    ) -> Result<Raw, CliError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .authorized(self.agent.post(&url))
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .send(body);
        read(url, resp)
    }

    /// Runs `attempt` until it gives a definite answer or `attempts` are used up.
    fn with_retries(
        &self,
        attempts: u32,
        mut attempt: impl FnMut() -> Result<Raw, CliError>,
    ) -> Result<Raw, CliError> {
        let mut pause = BACKOFF_FIRST;
        let mut n = 1;
        loop {
            let result = attempt();
            let unknown = match &result {
                Ok(raw) => raw.status == 503,
                Err(e) => e.outcome_unknown(),
            };
            if !unknown || n >= attempts {
                return result;
            }
            let why = match &result {
                Ok(raw) => raw.error().to_string(),
                Err(e) => e.to_string(),
            };
            eprintln!(
                "note: attempt {n} of {attempts} has an unknown outcome ({why}); retrying in {} ms",
                pause.as_millis()
            );
            std::thread::sleep(pause);
            pause *= 2;
            n += 1;
        }
    }
}

/// Reads an answer fully, mapping transport failures.
fn read(
    url: String,
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Raw, CliError> {
    let mut resp = resp.map_err(|e| map_transport(&url, e))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_vec()
        .map_err(|e| map_transport(&url, e))?;
    Ok(Raw { status, body, url })
}

/// Maps a ureq error by what it means for the request: never sent, or outcome unknown.
pub fn map_transport(url: &str, e: ureq::Error) -> CliError {
    let connect = |detail: String| CliError::Connect {
        url: url.to_owned(),
        detail,
    };
    match e {
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::HostUnreachable
            ) =>
        {
            connect(io.to_string())
        }
        ureq::Error::HostNotFound => connect("host not found".into()),
        ureq::Error::ConnectionFailed => connect("connection failed".into()),
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => connect(format!(
            "no connection within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
        ureq::Error::BadUri(m) => CliError::Usage(format!("bad node URL {url}: {m}")),
        ureq::Error::Http(h) => CliError::Usage(format!("cannot build the request to {url}: {h}")),
        ureq::Error::Timeout(t) => CliError::NoAnswer {
            url: url.to_owned(),
            detail: format!("timed out ({t})"),
        },
        // Anything else happened after the request may have left: assume the worst for money.
        other => CliError::NoAnswer {
            url: url.to_owned(),
            detail: other.to_string(),
        },
    }
}

/// Checks and normalizes `--node`: `http://host:port`, no trailing slash, no path.
pub fn normalize_base(node: &str, default_scheme: &str) -> Result<String, CliError> {
    let node = node.trim().trim_end_matches('/');
    let with_scheme = if node.contains("://") {
        node.to_owned()
    } else {
        format!("{default_scheme}://{node}")
    };
    let Some(rest) = with_scheme
        .strip_prefix("http://")
        .or_else(|| with_scheme.strip_prefix("https://"))
    else {
        return Err(CliError::Usage(format!(
            "--node {node}: the URL must start with http:// or https://"
        )));
    };
    if rest.is_empty() || rest.contains('/') || rest.contains('?') {
        return Err(CliError::Usage(format!(
            "--node {node}: expected http://HOST:PORT (or https://) without a path"
        )));
    }
    Ok(with_scheme)
}

/// The certificates of a PEM file (`--ca-cert`): at least one.
pub fn load_roots(path: &Path) -> Result<Arc<Vec<Certificate<'static>>>, CliError> {
    let usage = |why: String| CliError::Usage(format!("--ca-cert {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| usage(e.to_string()))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| usage(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(usage("holds no PEM certificate".into()));
    }
    Ok(Arc::new(certs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16, body: &str) -> Raw {
        Raw {
            status,
            body: body.as_bytes().to_vec(),
            url: "http://n/x".into(),
        }
    }

    #[test]
    fn node_url_is_normalized_or_refused() {
        // Proves --node accepts host:port, http and https URLs (an address without a scheme
        // takes the default one) and refuses paths and other schemes.
        assert_eq!(
            normalize_base("127.0.0.1:8080", "http").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(normalize_base("h:1", "https").unwrap(), "https://h:1");
        assert_eq!(
            normalize_base("http://h:1/", "https").unwrap(),
            "http://h:1"
        );
        assert_eq!(
            normalize_base("https://h:1", "http").unwrap(),
            "https://h:1"
        );
        assert!(normalize_base("ftp://h", "http").is_err());
        assert!(normalize_base("http://h:1/v1", "http").is_err());
        assert!(normalize_base("", "http").is_err());
    }

    #[test]
    fn error_bodies_map_to_codes_and_exit_statuses() {
        // Proves an API error keeps its code and sentence, 503 means outcome unknown (exit 3),
        // a proxy's bare 502 is treated as unavailable, and junk is a bad_response.
        let e = raw(
            422,
            r#"{"error":{"code":"insufficient_funds","message":"too low"}}"#,
        )
        .error();
        assert_eq!(e.code(), "insufficient_funds");
        assert_eq!(e.to_string(), "too low");
        assert_eq!(e.exit_code(), 1);
        let e = raw(
            503,
            r#"{"error":{"code":"unavailable","message":"storage down"}}"#,
        )
        .error();
        assert!(e.outcome_unknown());
        assert_eq!(e.exit_code(), 3);
        let e = raw(502, "<html>Bad Gateway</html>").error();
        assert_eq!(e.code(), "unavailable");
        let e = raw(500, "oops").error();
        assert_eq!(e.code(), "bad_response");
        assert!(e.to_string().contains("oops"));
        let ok: Result<serde_json::Value, _> = raw(200, "not json").into_result();
        assert_eq!(ok.unwrap_err().code(), "bad_response");
    }

    #[test]
    fn connection_refused_names_the_url() {
        // Proves a refused connection is a connection_failed error naming the URL, not an unknown outcome.
        let e = map_transport(
            "http://127.0.0.1:1",
            ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        assert_eq!(e.code(), "connection_failed");
        assert!(!e.outcome_unknown());
        assert!(e.to_string().contains("http://127.0.0.1:1"));
        let e = map_transport("http://h", ureq::Error::Timeout(Timeout::RecvResponse));
        assert!(e.outcome_unknown());
    }
}
