//! The wallet node's configuration: TOML schema, defaults, environment overrides, validation.
//!
//! Design note. A [`Config`] is built in three steps, each usable alone so that every step can be
//! tested without touching the process environment or the file system:
//! 1. [`Config::from_toml_str`] parses TOML (every section and field optional, defaults filled in,
//!    unknown fields refused so that a typo is an error naming the field, not a silent default);
//! 2. [`Config::apply_env`] overrides a few fields from `WALLET_*` variables given as an iterator;
//! 3. [`Config::validate`] checks every value and the rules between values, with one sentence
//!    naming the field.
//!
//! [`load`] chains the three for a file and the real environment; reading that one file is the
//! only IO this crate does.
//!
//! Left out on purpose: command-line flags (`walletd --listen/--data` are applied by the binary),
//! logging (an operator warning such as "the cookie is still `change-me`" belongs to `walletd`),
//! resolving host names (addresses are literal `IP:port`, so validation is pure and repeatable),
//! and checking that paths exist (the storage backend opens them and reports its own error).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod auth;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_tests;
mod webhooks;

pub use auth::{account_matches, AuthConfig, Scope, TokenConfig, ACCOUNT_PATTERN_LEN_MAX};
pub use webhooks::{
    EventType, WebhookConfig, WEBHOOKS_MAX, WEBHOOK_ID_LEN_MAX, WEBHOOK_RETRY_MAX_MS_DEFAULT,
    WEBHOOK_RETRY_MAX_MS_RANGE, WEBHOOK_SECRET_LEN_MIN, WEBHOOK_URL_LEN_MAX,
};

/// Longest node id, in characters.
pub const NODE_ID_LEN_MAX: usize = 64;

/// Smallest and largest number of virtual nodes per member on the ring.
pub const VNODES_RANGE: std::ops::RangeInclusive<u32> = 1..=4096;
/// Shortest accepted `cluster.failure_timeout_ms` (it is also at least three heartbeats).
pub const FAILURE_TIMEOUT_MS_MIN: u64 = 1_000;
/// Accepted `cluster.heartbeat_ms`.
pub const HEARTBEAT_MS_RANGE: std::ops::RangeInclusive<u64> = 10..=60_000;

/// Shortest idle time before an account actor passivates, in milliseconds.
pub const IDLE_PASSIVATE_MS_MIN: u64 = 100;

/// Allowed range of the saga credit timeout, in milliseconds.
pub const CREDIT_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 50..=600_000;

/// The whole configuration of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[node]`: this node's identity and addresses.
    pub node: NodeConfig,
    /// `[cluster]`: how the nodes find and trust each other.
    pub cluster: ClusterConfig,
    /// `[storage]`: where the ledger is persisted.
    pub storage: StorageConfig,
    /// `[actors]`: account actor lifecycle limits.
    pub actors: ActorsConfig,
    /// `[saga]`: transfer saga timings (extension of API.md).
    pub saga: SagaConfig,
    /// `[limits]`: admission control, the bound of every queue.
    pub limits: LimitsConfig,
    /// `[auth]`: bearer tokens; present (even empty), every route but health needs a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// `[[webhooks]]`: the receivers of events (default none: no outbox is written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[node]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique node id in the cluster: 1 to 64 characters of `A-Z a-z 0-9 _ - .` (default `n1`).
    pub id: String,
    /// HTTP and WebSocket listen address, `IP:port` (default `127.0.0.1:8080`).
    pub listen: String,
    /// Node-to-node listen address, `IP:port` (default `127.0.0.1:7946`).
    pub cluster_listen: String,
    /// Extension: on SIGTERM, how long in-flight requests and sagas may finish before exit, in ms (default 10000).
    pub shutdown_grace_ms: u64,
    /// PEM certificate chain: with `tls_key`, clients are served HTTPS and WSS (default none).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (default none).
    pub tls_key: Option<PathBuf>,
    /// `IP:port` serving `/admin/*` and `/metrics` instead of `listen` (default none: `listen`
    /// serves them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: "n1".into(),
            listen: "127.0.0.1:8080".into(),
            cluster_listen: "127.0.0.1:7946".into(),
            shutdown_grace_ms: 10_000,
            tls_cert: None,
            tls_key: None,
            admin_listen: None,
        }
    }
}

impl NodeConfig {
    /// The HTTP listen address, parsed (always `Ok` after [`Config::validate`] passed).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("node.listen", &self.listen)
    }

    /// The node-to-node listen address, parsed (always `Ok` after [`Config::validate`] passed).
    pub fn cluster_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("node.cluster_listen", &self.cluster_listen)
    }

    /// The admin listen address, parsed, if set (always `Ok` after [`Config::validate`] passed).
    pub fn admin_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.admin_listen
            .as_deref()
            .map(|a| parse_addr("node.admin_listen", a))
            .transpose()
    }
}

/// `[cluster]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Shared secret of the cluster's nodes; must not be empty (default `change-me`).
    pub cookie: String,
    /// Node-to-node addresses (`IP:port`) of any live members to join through (default none).
    pub peers: Vec<String>,
    /// Virtual nodes per member on the placement ring, 1 to 4096 (default 256).
    pub vnodes: u32,
    /// Interval of the liveness probes between members, ms (default 500).
    pub heartbeat_ms: u64,
    /// A member silent this long leaves the ring, ms; at least three heartbeats and 1000
    /// (default 3000).
    pub failure_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cookie: "change-me".into(),
            peers: Vec::new(),
            vnodes: 256,
            heartbeat_ms: 500,
            failure_timeout_ms: 3_000,
        }
    }
}

impl ClusterConfig {
    /// The peers, parsed (always `Ok` after [`Config::validate`] passed).
    pub fn peer_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| parse_addr(&format!("cluster.peers[{i}]"), p))
            .collect()
    }
}

/// Storage backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded durable engine under `storage.path` (the default).
    #[default]
    Embedded,
    /// In-memory, lost at exit: tests and demos only.
    Memory,
    /// FoundationDB through `storage.cluster_file` (needs the `fdb` build feature).
    Fdb,
}

impl Backend {
    /// The name used in TOML and in `WALLET_STORAGE_BACKEND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Memory => "memory",
            Backend::Fdb => "fdb",
        }
    }

    /// Parses a backend name (`embedded`, `memory`, `fdb`; exact, lower case).
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "embedded" => Some(Backend::Embedded),
            "memory" => Some(Backend::Memory),
            "fdb" => Some(Backend::Fdb),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Durability of a commit on the embedded backend (extension of API.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Flush to stable storage before a commit returns: an acknowledged command survives power
    /// loss (DESIGN.md invariant 7). The default.
    #[default]
    Full,
    /// Fewer flushes: survives a process crash, but the last commits may be lost on power loss or
    /// an OS crash. Only for tests and benchmarks, never for money.
    Normal,
}

/// `[storage]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Which backend (default `embedded`).
    pub backend: Backend,
    /// Data directory of the embedded backend; must not be empty for it (default `./data`).
    pub path: PathBuf,
    /// FoundationDB cluster file; required when `backend = "fdb"` (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_file: Option<PathBuf>,
    /// Key prefix of this cluster in FoundationDB (default `wallet`).
    pub prefix: String,
    /// Extension: commit durability of the embedded backend, `full` or `normal` (default `full`).
    pub sync: SyncMode,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Embedded,
            path: PathBuf::from("./data"),
            cluster_file: None,
            prefix: "wallet".into(),
            sync: SyncMode::Full,
        }
    }
}

/// `[actors]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorsConfig {
    /// An account actor idle this long passivates, in ms; at least 100 (default 60000).
    pub idle_passivate_ms: u64,
    /// Most account actors active on one node before the least recently used passivate; at least 1 (default 1000000).
    pub active_max: u64,
}

impl Default for ActorsConfig {
    fn default() -> Self {
        ActorsConfig {
            idle_passivate_ms: 60_000,
            active_max: 1_000_000,
        }
    }
}

/// `[limits]` section: past a limit a request is answered 503 `overloaded` with `Retry-After`,
/// and nothing of it ran. Each is at least 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests in progress per node (default 4096).
    pub http_inflight_max: u64,
    /// Inputs waiting at one account, queued or in its batch in flight (default 10000).
    pub actor_queue_max: u64,
    /// WebSocket connections per node (default 10000).
    pub ws_connections_max: u64,
    /// Subscriptions per WebSocket connection (default 1000).
    pub ws_subscriptions_max: u64,
    /// Events waiting in one webhook's outbox, among the accounts this node owns (default
    /// 100000); past it, requests that move money are refused until the receiver catches up
    /// (extension of API.md).
    pub webhook_outbox_max: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            http_inflight_max: 4_096,
            actor_queue_max: 10_000,
            ws_connections_max: 10_000,
            ws_subscriptions_max: 1_000,
            webhook_outbox_max: 100_000,
        }
    }
}

/// `[saga]` section (extension of API.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SagaConfig {
    /// How long a sender waits for the receiver's answer to `Credit` before sending `Abort`, in ms; 50 to 600000 (default 2000).
    pub credit_timeout_ms: u64,
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            credit_timeout_ms: 2_000,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (unknown field, wrong type).
    Parse {
        /// The file, when parsed by [`load`].
        path: Option<PathBuf>,
        /// The TOML parser's message, which names the line and the field.
        message: String,
    },
    /// A value is out of range or contradicts another.
    Invalid {
        /// The field, dotted (`cluster.vnodes`).
        field: String,
        /// What is wrong, and the value found.
        message: String,
    },
    /// An environment override has a bad value.
    Env {
        /// The variable (`WALLET_LISTEN`).
        var: String,
        /// What is wrong, and the value found.
        message: String,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn env(var: &str, message: impl Into<String>) -> Self {
        ConfigError::Env {
            var: var.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfigError::Parse {
                path: Some(path),
                message,
            } => write!(f, "invalid config file {}: {message}", path.display()),
            ConfigError::Parse {
                path: None,
                message,
            } => write!(f, "invalid config: {message}"),
            ConfigError::Invalid { field, message } => {
                write!(f, "invalid config value {field}: {message}")
            }
            ConfigError::Env { var, message } => {
                write!(f, "invalid environment variable {var}: {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the TOML file at `path`, applies the `WALLET_*` environment overrides, and validates.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut config = Config::from_toml_str(&text).map_err(|e| match e {
        ConfigError::Parse { message, .. } => ConfigError::Parse {
            path: Some(path.to_path_buf()),
            message,
        },
        other => other,
    })?;
    config.apply_env(wallet_env_vars()?.into_iter())?;
    config.validate()?;
    Ok(config)
}

/// Parses TOML (without environment overrides or validation); missing fields take their defaults.
pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(s)
}

/// The process's `WALLET_*` variables; `std::env::vars` would panic on a non-UTF-8 one.
fn wallet_env_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str().filter(|k| k.starts_with(ENV_PREFIX)) else {
            continue;
        };
        match v.into_string() {
            Ok(v) => out.push((k.to_owned(), v)),
            Err(_) => return Err(ConfigError::env(k, "the value is not valid UTF-8")),
        }
    }
    Ok(out)
}

const ENV_PREFIX: &str = "WALLET_";

fn parse_addr(field: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!("{s:?} is not an IP:port address (e.g. \"127.0.0.1:8080\"; host names are not resolved)"),
        )
    })
}

/// Checks a node id's length and characters; `Err` holds the sentence.
fn check_node_id(id: &str) -> Result<(), String> {
    let len = id.chars().count();
    if len == 0 || len > NODE_ID_LEN_MAX {
        return Err(format!(
            "must be 1 to {NODE_ID_LEN_MAX} characters, got {len} ({id:?})"
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "may contain only A-Z a-z 0-9 _ - . (found {c:?} in {id:?})"
        ));
    }
    Ok(())
}

/// Splits `WALLET_PEERS`: comma-separated, blanks around entries and empty entries ignored.
fn split_peers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// Parses TOML (without environment overrides or validation); missing fields take their defaults.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        toml::from_str(s).map_err(|e| ConfigError::Parse {
            path: None,
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Applies the `WALLET_*` overrides among `vars`; other variables are ignored.
    ///
    /// `WALLET_NODE_ID`, `WALLET_LISTEN`, `WALLET_CLUSTER_LISTEN`, `WALLET_COOKIE`, `WALLET_PEERS`
    /// (comma-separated), `WALLET_STORAGE_BACKEND`, `WALLET_DATA` (storage.path) and
    /// `WALLET_FDB_CLUSTER_FILE`. A value that is bad on its own (an address that does not parse,
    /// an unknown backend) is refused here, naming the variable; rules between fields are left to
    /// [`Config::validate`]. On error the config may be partly updated.
    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            match name.as_str() {
                "WALLET_NODE_ID" => {
                    check_node_id(&value).map_err(|m| ConfigError::env(&name, m))?;
                    self.node.id = value;
                }
                "WALLET_LISTEN" => {
                    check_env_addr(&name, &value)?;
                    self.node.listen = value;
                }
                "WALLET_CLUSTER_LISTEN" => {
                    check_env_addr(&name, &value)?;
                    self.node.cluster_listen = value;
                }
                "WALLET_COOKIE" => {
                    if value.is_empty() {
                        return Err(ConfigError::env(
                            &name,
                            "the cluster cookie must not be empty",
                        ));
                    }
                    self.cluster.cookie = value;
                }
                "WALLET_PEERS" => {
                    let peers = split_peers(&value);
                    for p in &peers {
                        check_env_addr(&name, p)?;
                    }
                    self.cluster.peers = peers;
                }
                "WALLET_STORAGE_BACKEND" => {
                    self.storage.backend = Backend::parse(&value).ok_or_else(|| {
                        ConfigError::env(
                            &name,
                            format!("{value:?} is not a backend; use embedded, memory or fdb"),
                        )
                    })?;
                }
                "WALLET_DATA" => {
                    if value.is_empty() {
                        return Err(ConfigError::env(
                            &name,
                            "the data directory must not be empty",
                        ));
                    }
                    self.storage.path = PathBuf::from(value);
                }
                "WALLET_FDB_CLUSTER_FILE" => {
                    if value.is_empty() {
                        return Err(ConfigError::env(
                            &name,
                            "the cluster file path must not be empty",
                        ));
                    }
                    self.storage.cluster_file = Some(PathBuf::from(value));
                }
                "WALLET_FDB_PREFIX" => {
                    self.storage.prefix = value;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks every value and the rules between values; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_node_id(&self.node.id).map_err(|m| ConfigError::invalid("node.id", m))?;
        let listen = self.node.listen_addr()?;
        let cluster_listen = self.node.cluster_listen_addr()?;
        if addrs_collide(listen, cluster_listen) {
            return Err(ConfigError::invalid(
                "node.cluster_listen",
                format!("{cluster_listen} collides with node.listen {listen}; the HTTP and node-to-node listeners need different addresses"),
            ));
        }
        if let Some(admin) = self.node.admin_listen_addr()? {
            for (name, other) in [
                ("node.listen", listen),
                ("node.cluster_listen", cluster_listen),
            ] {
                // Port 0 picks a free port at bind: it never collides.
                if admin.port() != 0 && addrs_collide(admin, other) {
                    return Err(ConfigError::invalid(
                        "node.admin_listen",
                        format!("{admin} collides with {name} {other}; each listener needs its own address"),
                    ));
                }
            }
        }
        if let Some(auth) = &self.auth {
            auth.validate()?;
        }
        webhooks::validate(&self.webhooks)?;
        if self.cluster.cookie.is_empty() {
            return Err(ConfigError::invalid(
                "cluster.cookie",
                "must not be empty: it is the shared secret that keeps other clusters' nodes out",
            ));
        }
        if !VNODES_RANGE.contains(&self.cluster.vnodes) {
            return Err(ConfigError::invalid(
                "cluster.vnodes",
                format!(
                    "must be from {} to {}, got {}",
                    VNODES_RANGE.start(),
                    VNODES_RANGE.end(),
                    self.cluster.vnodes
                ),
            ));
        }
        if !HEARTBEAT_MS_RANGE.contains(&self.cluster.heartbeat_ms) {
            return Err(ConfigError::invalid(
                "cluster.heartbeat_ms",
                format!(
                    "must be from {} to {}, got {}",
                    HEARTBEAT_MS_RANGE.start(),
                    HEARTBEAT_MS_RANGE.end(),
                    self.cluster.heartbeat_ms
                ),
            ));
        }
        let timeout_min = (3 * self.cluster.heartbeat_ms).max(FAILURE_TIMEOUT_MS_MIN);
        if self.cluster.failure_timeout_ms < timeout_min {
            return Err(ConfigError::invalid(
                "cluster.failure_timeout_ms",
                format!(
                    "must be at least {timeout_min} ms (three times cluster.heartbeat_ms, and {FAILURE_TIMEOUT_MS_MIN} ms at least), got {}: a late or lost probe must not drop a member",
                    self.cluster.failure_timeout_ms
                ),
            ));
        }
        let peers = self.cluster.peer_addrs()?;
        self.check_storage_reaches_peers(&peers, cluster_listen)?;
        match self.storage.backend {
            Backend::Fdb => match &self.storage.cluster_file {
                None => {
                    return Err(ConfigError::invalid(
                        "storage.cluster_file",
                        "is required when storage.backend is \"fdb\"",
                    ))
                }
                Some(p) if p.as_os_str().is_empty() => {
                    return Err(ConfigError::invalid(
                        "storage.cluster_file",
                        "must not be empty when storage.backend is \"fdb\"",
                    ))
                }
                Some(_) => {}
            },
            Backend::Embedded => {
                if self.storage.path.as_os_str().is_empty() {
                    return Err(ConfigError::invalid(
                        "storage.path",
                        "must not be empty when storage.backend is \"embedded\"",
                    ));
                }
            }
            Backend::Memory => {}
        }
        if self.actors.idle_passivate_ms < IDLE_PASSIVATE_MS_MIN {
            return Err(ConfigError::invalid(
                "actors.idle_passivate_ms",
                format!(
                    "must be at least {IDLE_PASSIVATE_MS_MIN}, got {}",
                    self.actors.idle_passivate_ms
                ),
            ));
        }
        if self.node.tls_cert.is_some() != self.node.tls_key.is_some() {
            let field = if self.node.tls_cert.is_some() {
                "node.tls_key"
            } else {
                "node.tls_cert"
            };
            return Err(ConfigError::invalid(
                field,
                "node.tls_cert and node.tls_key go together: give both, or neither",
            ));
        }
        for (field, value) in [
            ("limits.http_inflight_max", self.limits.http_inflight_max),
            ("limits.actor_queue_max", self.limits.actor_queue_max),
            ("limits.ws_connections_max", self.limits.ws_connections_max),
            (
                "limits.ws_subscriptions_max",
                self.limits.ws_subscriptions_max,
            ),
            ("limits.webhook_outbox_max", self.limits.webhook_outbox_max),
        ] {
            if value < 1 {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be at least 1, got {value}"),
                ));
            }
        }
        if self.actors.active_max < 1 {
            return Err(ConfigError::invalid(
                "actors.active_max",
                format!("must be at least 1, got {}", self.actors.active_max),
            ));
        }
        if !CREDIT_TIMEOUT_MS_RANGE.contains(&self.saga.credit_timeout_ms) {
            return Err(ConfigError::invalid(
                "saga.credit_timeout_ms",
                format!(
                    "must be from {} to {}, got {}",
                    CREDIT_TIMEOUT_MS_RANGE.start(),
                    CREDIT_TIMEOUT_MS_RANGE.end(),
                    self.saga.credit_timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Refuses a cluster whose nodes could not share one store: every node of a cluster must
    /// see the same ledger, and only FoundationDB is reachable from several machines.
    fn check_storage_reaches_peers(
        &self,
        peers: &[SocketAddr],
        cluster_listen: SocketAddr,
    ) -> Result<(), ConfigError> {
        if peers.is_empty() {
            return Ok(());
        }
        match self.storage.backend {
            Backend::Fdb => Ok(()),
            Backend::Memory => Err(ConfigError::invalid(
                "storage.backend",
                "\"memory\" keeps the ledger inside one process, so nodes with peers cannot share it; use \"embedded\" for nodes on one machine or \"fdb\" for nodes on several",
            )),
            Backend::Embedded => {
                if let Some((i, p)) = peers.iter().enumerate().find(|(_, p)| !p.ip().is_loopback()) {
                    return Err(ConfigError::invalid(
                        format!("cluster.peers[{i}]"),
                        format!("{p} is not a loopback address, but storage.backend = \"embedded\" is a file that only processes on this machine can share; run every node on this machine with loopback addresses (127.0.0.1), or use storage.backend = \"fdb\" for nodes on several machines"),
                    ));
                }
                if !cluster_listen.ip().is_loopback() {
                    return Err(ConfigError::invalid(
                        "node.cluster_listen",
                        format!("{cluster_listen} lets nodes on other machines join, but storage.backend = \"embedded\" is a file they cannot share; listen on a loopback address (127.0.0.1), or use storage.backend = \"fdb\""),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Whether two listen addresses would collide at bind: equal, or the same port with one side
/// on the unspecified address (0.0.0.0 / ::).
fn addrs_collide(a: SocketAddr, b: SocketAddr) -> bool {
    a == b || (a.port() == b.port() && (a.ip().is_unspecified() || b.ip().is_unspecified()))
}

fn check_env_addr(var: &str, value: &str) -> Result<(), ConfigError> {
    value.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        ConfigError::env(
            var,
            format!("{value:?} is not an IP:port address (e.g. \"127.0.0.1:8080\")"),
        )
    })
}
