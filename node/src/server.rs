//! A running node: storage, shell, sweeper and gateway wired together, with graceful shutdown.
//!
//! [`Node::start`] binds the listener (port 0 picks a free port, which tests use), resumes
//! unsettled transfers, and serves. [`Node::shutdown`] stops accepting, lets in-flight requests
//! finish, closes WebSockets, drains every actor's mailbox, and returns; every acknowledged
//! command was committed before its reply, so nothing acknowledged can be lost by stopping.

use crate::cluster::placement::{Member, Ring};
use crate::cluster::{sweeper, Shell, ShellConfig};
use crate::gateway::{self, AppState};
use crate::ledger::account::SagaTiming;
use crate::metrics::Metrics;
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::sqlite::{SqliteBackend, SyncMode};
use crate::storage::{Backend, Store};
use cluster_config::Config;
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
    shell: Shell,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
    grace: Duration,
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
        B::Fdb => {
            return Err(StartError::Config(
                "storage.backend = \"fdb\" needs a walletd built with the `fdb` feature, which this build is not".into(),
            ))
        }
    })
}

impl Node {
    /// Starts a node from a validated config.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        let backend = open_backend(config)?;
        Node::start_with_backend(config, backend).await
    }

    /// Starts a node on a given backend (tests use it to inject storage faults).
    pub async fn start_with_backend(
        config: &Config,
        backend: Arc<dyn Backend>,
    ) -> Result<Node, StartError> {
        if !config.cluster.peers.is_empty() {
            return Err(StartError::Config(
                "cluster.peers is set, but this version runs a single node; remove the peers"
                    .into(),
            ));
        }
        let store = Store::new(backend);
        let keys = match config.storage.backend {
            cluster_config::Backend::Fdb => Keys::new(&config.storage.prefix),
            _ => Keys::default(),
        };
        let shell_config = ShellConfig {
            node_id: config.node.id.clone(),
            idle_passivate_ms: config.actors.idle_passivate_ms,
            active_max: config.actors.active_max as usize,
            timing: SagaTiming {
                credit_timeout_ms: config.saga.credit_timeout_ms,
                ..SagaTiming::default()
            },
        };
        let shell = Shell::new(shell_config, store, keys, Arc::new(Metrics::default()));
        let listener = tokio::net::TcpListener::bind(&config.node.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.node.listen.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.node.listen.clone(),
            source,
        })?;
        let ring = Arc::new(Ring::new(
            vec![Member {
                node_id: config.node.id.clone(),
                http: addr.to_string(),
            }],
            config.cluster.vnodes,
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = watch::channel(false);
        let state = AppState {
            shell: shell.clone(),
            ring,
            started: Instant::now(),
            shutdown: shutdown_rx.clone(),
            ready: ready_rx,
        };
        let app = gateway::router(state);
        let mut stop = shutdown_rx.clone();
        let serve = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await
        });
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
            shell,
            shutdown,
            serve,
            sweeper,
            grace: Duration::from_millis(config.node.shutdown_grace_ms),
        })
    }

    /// The address the node serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's shell.
    pub fn shell(&self) -> &Shell {
        &self.shell
    }

    /// Stops the node gracefully, within the configured grace period.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let grace = self.grace;
        let shell = self.shell.clone();
        let drain = async move {
            let _ = self.serve.await;
            let _ = self.sweeper.await;
            shell.passivate_all().await;
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period ran out; stopping anyway (acknowledged commands are already durable)");
        }
    }
}
