//! The node-to-node network: a `ractor_cluster` node server, this node's endpoint, a loop
//! that keeps connecting to the configured seed peers, and the heartbeat loop of failure
//! detection.
//!
//! Sessions authenticate with the cluster cookie; a session that closes before it
//! authenticated is reported with a sentence naming the likely cause (a cookie mismatch).
//! Transitive mode makes a node that joins through one seed connect to every member. A seed that
//! is down is retried every [`RECONNECT_EVERY`], which is how a restarted node rejoins and how
//! a node that started first finds the others.

use super::membership::{PeerEndpoint, PeerMsg};
use super::Shell;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the seed peers that are not members are dialed again.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How long a starting node with seed peers waits to meet one before it serves alone.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);

/// This node's presence on the node-to-node network.
pub struct Network {
    server: ActorRef<NodeServerMessage>,
    endpoint: ActorRef<PeerMsg>,
    dialer: JoinHandle<()>,
    heartbeats: JoinHandle<()>,
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for peers on {addr}: {why}")]
pub struct NetworkError {
    /// The address.
    pub addr: SocketAddr,
    /// The cause.
    pub why: String,
}

impl Network {
    /// Listens on `listen` for peers, starts the endpoint and dials `seeds` until each is a
    /// member. Stops dialing when `stop` changes.
    pub async fn start(
        shell: &Shell,
        listen: SocketAddr,
        cookie: &str,
        seeds: Vec<SocketAddr>,
        stop: watch::Receiver<bool>,
    ) -> Result<Network, NetworkError> {
        let node_id = shell.membership().me().node_id.clone();
        let server = NodeServer::new(
            listen.port(),
            cookie.to_owned(),
            node_id,
            listen.ip().to_string(),
            None,
            Some(NodeConnectionMode::Transitive),
        )
        .with_listen_addr(listen.ip());
        let (server, _) = Actor::spawn(None, server, ())
            .await
            .map_err(|e| NetworkError {
                addr: listen,
                why: e.to_string(),
            })?;
        server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "wallet.auth".into(),
                subscription: Box::new(AuthWatch::default()),
            })
            .map_err(|e| NetworkError {
                addr: listen,
                why: e.to_string(),
            })?;
        let (endpoint, _) = Actor::spawn(None, PeerEndpoint, shell.clone())
            .await
            .map_err(|e| NetworkError {
                addr: listen,
                why: format!("the endpoint did not start: {e}"),
            })?;
        let dialer = tokio::spawn(dial(shell.clone(), server.clone(), seeds, stop.clone()));
        // Heartbeats go on through a shutdown's drain (a leaving node is alive); `stop` ends
        // them with the sessions.
        let heartbeats = tokio::spawn(beat(shell.clone()));
        Ok(Network {
            server,
            endpoint,
            dialer,
            heartbeats,
        })
    }

    /// Waits until this node has met a peer, or `JOIN_WAIT` passed.
    pub async fn wait_for_peers(shell: &Shell) {
        let mut ring = shell.membership().watch();
        let met = async {
            while ring.borrow_and_update().members().len() < 2 {
                if ring.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(JOIN_WAIT, met).await.is_err() {
            tracing::warn!(
                wait_s = JOIN_WAIT.as_secs(),
                "no seed peer answered; serving alone until one does"
            );
        }
    }

    /// Leaves the network: stops dialing, closes the endpoint and every session.
    pub async fn stop(self) {
        self.dialer.abort();
        self.heartbeats.abort();
        self.endpoint.stop(None);
        let _ = self.server.stop_and_wait(None, None).await;
    }
}

/// Runs failure detection until the network stops: every `cluster.heartbeat_ms`, drops the
/// peers silent too long and sends every peer a heartbeat, on a task of its own (the endpoint
/// answers heartbeats in its mailbox and hands ledger work to other tasks). A tick that finds
/// this node was stopped itself starts a rejoin.
async fn beat(shell: Shell) {
    let mut tick = tokio::time::interval(shell.membership().heartbeat_every());
    // After a stop, one tick at once (it notices the stall), not a burst of the missed ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = shell.membership().tick();
        for _ in 0..t.dropped {
            shell.metrics().peers_dropped.inc();
        }
        if t.stalled {
            let shell = shell.clone();
            tokio::spawn(async move { shell.rejoin().await });
        }
    }
}

/// Dials every seed that is not a member, every [`RECONNECT_EVERY`].
async fn dial(
    shell: Shell,
    server: ActorRef<NodeServerMessage>,
    seeds: Vec<SocketAddr>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing: HashSet<SocketAddr> = HashSet::new();
    let mut tick = tokio::time::interval(RECONNECT_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let addrs = shell.membership().peer_cluster_addrs();
        if addrs.len() >= seeds.len() {
            // As many live peers as seeds: every seed is connected, even one whose address
            // differs from the one it advertises (a peer listening on 0.0.0.0, say); dialing it
            // again would only open a duplicate session.
            failing.clear();
            continue;
        }
        let connected: HashSet<SocketAddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        for seed in &seeds {
            if connected.contains(seed) {
                failing.remove(seed);
                continue;
            }
            match ractor_cluster::client_connect(&server, *seed).await {
                Ok(()) => {
                    failing.remove(seed);
                }
                Err(e) => {
                    // Said once per outage, not every second.
                    if failing.insert(*seed) {
                        tracing::info!(peer = %seed, error = %e, "seed peer unreachable; retrying every second");
                    }
                }
            }
        }
    }
}

/// Sessions that closed before they authenticated, in a row, before it is reported (one such
/// close is normal: two nodes dialing each other at once keep one of the two sessions).
pub const AUTH_FAILURES_REPORTED_AFTER: u32 = 2;
/// After the first report, a peer that keeps being refused is reported again every this many
/// closes (about once a minute with one dial a second).
pub const AUTH_FAILURES_REPEAT_EVERY: u32 = 60;

/// Reports peers whose sessions keep closing before they authenticate.
#[derive(Default)]
struct AuthWatch {
    state: Mutex<AuthState>,
}

#[derive(Default)]
struct AuthState {
    /// Authenticated sessions, by session id.
    authenticated: HashSet<u64>,
    /// Unauthenticated closes in a row, by peer.
    failures: HashMap<String, u32>,
}

fn peer_key(ses: &NodeServerSessionInformation) -> String {
    match &ses.peer_name {
        Some(n) => n.name.clone(),
        None => ses.peer_addr.clone(),
    }
}

impl NodeEventSubscription for AuthWatch {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let mut g = self.state.lock().expect("auth watch lock");
        if g.authenticated.remove(&ses.node_id) {
            return;
        }
        let key = peer_key(&ses);
        let n = g.failures.entry(key.clone()).or_default();
        *n += 1;
        if *n == AUTH_FAILURES_REPORTED_AFTER || n.is_multiple_of(AUTH_FAILURES_REPEAT_EVERY) {
            tracing::error!(
                peer = %key,
                closes = *n,
                "the peer and this node refuse each other: their sessions close before they authenticate; cluster.cookie must be the same on every node"
            );
        }
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let mut g = self.state.lock().expect("auth watch lock");
        g.authenticated.insert(ses.node_id);
        let key = peer_key(&ses);
        g.failures.remove(&key);
        g.failures.remove(&ses.peer_addr);
    }
}
