//! A running node: storage, shell, sweeper and gateway wired together, with graceful shutdown.
//!
//! [`Node::start`] binds the listener (port 0 picks a free port, which tests use), resumes
//! unsettled transfers, and serves. [`Node::shutdown`] stops accepting, lets in-flight requests
//! finish, closes WebSockets, drains every actor's mailbox, and returns; every acknowledged
//! command was committed before its reply, so nothing acknowledged can be lost by stopping.

use crate::cluster::membership::{Liveness, Membership};
use crate::cluster::network::Network;
use crate::cluster::placement::Member;
use crate::cluster::{sweeper, Shell, ShellConfig};
use crate::gateway::Listener;
use crate::gateway::{self, AppShared, AppState};
use crate::ledger::account::SagaTiming;
use crate::ledger::committer::{GroupLimits, GROUPS_IN_FLIGHT_FDB, GROUPS_IN_FLIGHT_MAX};
use crate::ledger::driver::Limits as DriverLimits;
use crate::ledger::exec;
use crate::metrics::Metrics;
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::sqlite::{SqliteBackend, SyncMode};
use crate::storage::{Backend, Store};
use cluster_config::{AuthConfig, Config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the pending index is swept for transfers whose sender is not active.
pub const PENDING_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// A node that is serving.
pub struct Node {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    auth: Option<Arc<gateway::auth::Auth>>,
    admin_serve: Option<JoinHandle<std::io::Result<()>>>,
    shell: Shell,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
    network: Option<Network>,
    drained: watch::Receiver<bool>,
    grace: Duration,
    publishers: crate::webhooks::Publishers,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config cannot work.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Opens the backend the config names.
pub fn open_backend(config: &Config) -> Result<Arc<dyn Backend>, StartError> {
    use cluster_config::Backend as B;
    Ok(match config.storage.backend {
        B::Memory => Arc::new(MemoryBackend::new()),
        B::Embedded => {
            let sync = match config.storage.sync {
                cluster_config::SyncMode::Full => SyncMode::Full,
                cluster_config::SyncMode::Normal => SyncMode::Normal,
            };
            Arc::new(SqliteBackend::open(&config.storage.path, sync)?)
        }
        #[cfg(feature = "fdb")]
        B::Fdb => {
            let file = config
                .storage
                .cluster_file
                .as_deref()
                .expect("a validated fdb config names its cluster file");
            Arc::new(crate::storage::fdb::FdbBackend::open(file)?)
        }
        #[cfg(not(feature = "fdb"))]
        B::Fdb => {
            return Err(StartError::Config(
                "storage.backend = \"fdb\" needs a walletd built with the `fdb` feature, which this build is not: cargo build --release --features fdb".into(),
            ))
        }
    })
}

impl Node {
    /// Starts a node from a validated config.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        // Opening may wait for the store (FoundationDB checks that its cluster answers).
        let owned = config.clone();
        let backend = tokio::task::spawn_blocking(move || open_backend(&owned))
            .await
            .expect("opening the backend does not panic")?;
        Node::start_with_backend(config, backend).await
    }

    /// Starts a node on a given backend (tests use it to inject storage faults).
    pub async fn start_with_backend(
        config: &Config,
        backend: Arc<dyn Backend>,
    ) -> Result<Node, StartError> {
        let store = Store::new(backend);
        let keys = match config.storage.backend {
            cluster_config::Backend::Fdb => Keys::new(&config.storage.prefix),
            _ => Keys::default(),
        }
        .with_webhooks(&config.webhooks);
        let shell_config = ShellConfig {
            node_id: config.node.id.clone(),
            idle_passivate_ms: config.actors.idle_passivate_ms,
            active_max: config.actors.active_max as usize,
            timing: SagaTiming {
                credit_timeout_ms: config.saga.credit_timeout_ms,
                ..SagaTiming::default()
            },
            group: GroupLimits {
                // FoundationDB commits concurrently; the embedded store has one writer.
                in_flight: match config.storage.backend {
                    cluster_config::Backend::Fdb => GROUPS_IN_FLIGHT_FDB,
                    _ => GROUPS_IN_FLIGHT_MAX,
                },
                ..GroupLimits::default()
            },
            driver_limits: DriverLimits {
                queue_inputs: config.limits.actor_queue_max as usize,
                ..DriverLimits::default()
            },
            outbox_gate: Arc::new(crate::webhooks::OutboxGate::default()),
        };
        // TLS for clients: the files are read before anything listens, so a bad one is a
        // clear error at start.
        let tls = match (&config.node.tls_cert, &config.node.tls_key) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::acceptor(cert, key).map_err(StartError::Config)?)
            }
            _ => None,
        };
        let (listener, addr) = bind(&config.node.listen).await?;
        let admin_listener = match &config.node.admin_listen {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let store_id = {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::task::spawn_blocking(move || {
                exec::store_identity(
                    &store,
                    &keys,
                    &crate::gateway::transfers::random_hex_id("s"),
                )
            })
            .await
            .expect("store identity does not panic")?
        };
        let membership = Membership::new(
            Member {
                node_id: config.node.id.clone(),
                http: addr.to_string(),
            },
            config.node.cluster_listen.clone(),
            store_id,
            config.cluster.vnodes,
            Liveness {
                heartbeat: Duration::from_millis(config.cluster.heartbeat_ms),
                failure_timeout: Duration::from_millis(config.cluster.failure_timeout_ms),
                ..Liveness::default()
            },
        );
        let shell = Shell::new(
            shell_config,
            store,
            keys,
            Arc::new(Metrics::default()),
            membership,
        )
        .await;
        let (shutdown, shutdown_rx) = watch::channel(false);
        // A node with peers joins them (and waits a moment to meet one, so that it does not
        // take every account for itself); a node without peers runs alone and does not listen.
        let network = if config.cluster.peers.is_empty() {
            None
        } else {
            if config.cluster.cookie == cluster_config::ClusterConfig::default().cookie {
                tracing::warn!(
                    "cluster.cookie is still the default; any process that can reach cluster_listen can join this cluster: set a secret of your own on every node"
                );
            }
            let listen = config
                .node
                .cluster_listen_addr()
                .map_err(|e| StartError::Config(e.to_string()))?;
            let seeds = config
                .cluster
                .peer_addrs()
                .map_err(|e| StartError::Config(e.to_string()))?;
            let net = Network::start(
                &shell,
                listen,
                &config.cluster.cookie,
                seeds,
                shutdown_rx.clone(),
            )
            .await
            .map_err(|e| StartError::Bind {
                addr: listen.to_string(),
                source: std::io::Error::other(e.why),
            })?;
            Network::wait_for_peers(&shell).await;
            Some(net)
        };
        let (drained_tx, drained) = watch::channel(false);
        let (ready_tx, ready_rx) = watch::channel(false);
        let auth = config
            .auth
            .as_ref()
            .map(|a| Arc::new(gateway::auth::Auth::new(a)));
        if let Some(a) = &config.auth {
            let ids: Vec<&str> = a.tokens.iter().map(|t| t.id.as_str()).collect();
            tracing::info!(tokens = ?ids, "authentication on: every route but /healthz and /readyz needs a token");
        }
        let publishers = crate::webhooks::Publishers::start(
            shell.store(),
            shell.keys(),
            shell.membership(),
            &shell.config().outbox_gate,
            config.limits.webhook_outbox_max,
        );
        let state = AppState::new(AppShared {
            shell: shell.clone(),
            drained: Arc::new(drained_tx),
            started: Instant::now(),
            shutdown: shutdown_rx.clone(),
            ready: ready_rx,
            admission: Arc::new(gateway::admission::Admission::new(&config.limits)),
            auth: auth.clone(),
            layouts: gateway::sharded::Layouts::default(),
            webhooks: publishers.stats().to_vec(),
            stats: gateway::stats::Window::new(),
        });
        let (serve, admin_serve, admin_addr) = match admin_listener {
            None => {
                let app = gateway::router_for(state, Listener::All);
                (serve(listener, tls.clone(), app, &shutdown_rx), None, None)
            }
            Some((admin_listener, admin_addr)) => {
                let public = gateway::router_for(state.clone(), Listener::Public);
                let admin = gateway::router_for(state, Listener::Admin);
                (
                    serve(listener, tls.clone(), public, &shutdown_rx),
                    Some(serve(admin_listener, tls.clone(), admin, &shutdown_rx)),
                    Some(admin_addr),
                )
            }
        };
        // Resume every unsettled transfer before declaring the node ready; the sweeper keeps
        // doing it for senders that passivate or get evicted later.
        let resumed = sweeper::sweep_pending_once(&shell).await;
        if resumed > 0 {
            tracing::info!(senders = resumed, "resumed unsettled transfers at start");
        }
        let _ = ready_tx.send(true);
        let sweeper = tokio::spawn(sweeper::run(
            shell.clone(),
            PENDING_SWEEP_EVERY,
            shutdown_rx,
        ));
        Ok(Node {
            addr,
            admin_addr,
            auth,
            admin_serve,
            shell,
            shutdown,
            serve,
            sweeper,
            network,
            drained,
            grace: Duration::from_millis(config.node.shutdown_grace_ms),
            publishers,
        })
    }

    /// The address the node serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/admin/*` and `/metrics` are served on, when `node.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Whether the node checks tokens (its config had `[auth]` at start).
    pub fn auth_on(&self) -> bool {
        self.auth.is_some()
    }

    /// Replaces the accepted tokens by those of `config` (a validated config's `[auth]`),
    /// atomically; returns their ids. Turning authentication on or off needs a restart, so a
    /// config that does so is refused and the current tokens stay.
    pub fn reload_auth(&self, config: Option<&AuthConfig>) -> Result<Vec<String>, String> {
        match (&self.auth, config) {
            (Some(auth), Some(c)) => Ok(auth.reload(c)),
            (Some(_), None) => Err("the config has no [auth] any more; turning authentication off needs a restart, so the current tokens stay".into()),
            (None, Some(_)) => Err("the config has [auth] now; turning authentication on needs a restart".into()),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// The node's shell.
    pub fn shell(&self) -> &Shell {
        &self.shell
    }

    /// Resolves when a drain (`POST /admin/drain`) finished and the node should stop.
    pub async fn drained(&self) {
        let mut rx = self.drained.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Stops the node gracefully, within the configured grace period: it leaves the ring first
    /// (peers take its accounts over at once), then finishes in-flight work.
    pub async fn shutdown(self) {
        if self.network.is_some() {
            let _ = tokio::time::timeout(self.grace, self.shell.leave_cluster()).await;
        }
        let _ = self.shutdown.send(true);
        // The publishers end their deliveries in flight (bounded by one delivery's timeout)
        // while the rest stops.
        let publishers = self.publishers;
        let publishers_stopped = tokio::task::spawn_blocking(move || publishers.stop());
        let network = self.network;
        let grace = self.grace;
        let shell = self.shell.clone();
        let admin_serve = self.admin_serve;
        let drain = async move {
            let _ = self.serve.await;
            if let Some(a) = admin_serve {
                let _ = a.await;
            }
            let _ = self.sweeper.await;
            shell.passivate_all().await;
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period ran out; stopping anyway (acknowledged commands are already durable)");
        }
        if let Some(net) = network {
            // Forwarded requests that arrived while HTTP and the actors stopped are answered
            // (or answered `Moved`) before the sessions close.
            let _ = tokio::time::timeout(grace, self.shell.leave_cluster()).await;
            if tokio::time::timeout(grace, net.stop()).await.is_err() {
                tracing::warn!("node-to-node sessions did not close within the grace period");
            }
        }
        self.shell.stop_hosts();
        let _ = tokio::time::timeout(grace, publishers_stopped).await;
    }
}

/// Binds a listen address (port 0 picks a free port); returns the listener and its address.
async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let bind_error = |source| StartError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

/// Serves a router on a listener (through TLS when configured) until the node shuts down.
fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    shutdown: &watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let mut stop = shutdown.clone();
    let stopped = async move {
        let _ = stop.changed().await;
    };
    match tls {
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }),
    }
}
