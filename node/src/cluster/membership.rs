//! Membership: which nodes are live, and the ring over them (DESIGN.md section 4).
//!
//! Nodes connect through `ractor_cluster` (one TCP session per pair, authenticated with the
//! cluster cookie; transitive mode, so joining through one seed connects a node to every member).
//! Each node runs one [`PeerEndpoint`] actor and puts it in the process group named after its
//! node id, in the [`PEER_SCOPE`] scope; `ractor_cluster` mirrors process groups between
//! connected nodes, so a node learns of a peer when the peer's endpoint appears in its groups
//! and forgets it when the session ends (the remote endpoint leaves the group).
//!
//! When two endpoints first see each other each sends a [`Hello`] (HTTP address, node-to-node
//! address, whether it is leaving). A peer becomes a member once both its endpoint and its
//! `Hello` are known. The [`Ring`] is rebuilt from the live members on every change and
//! published on a watch channel; every node computes the same ring from the same member set.
//!
//! A leaving (draining) node takes itself out of its own ring and tells its peers with a new
//! `Hello`; requests that still reach it are forwarded to the new owners.
//!
//! Failure detection ([`super::detector`]): every member sends every peer a heartbeat each
//! `cluster.heartbeat_ms` from a task of its own, and the endpoint answers them in its mailbox
//! without waiting for ledger work (it hands every saga message and request to a task). A peer
//! silent for `cluster.failure_timeout_ms` is dropped from this node's ring although its
//! session stays open, and is told so; it stays known (its endpoint, its introduction) so that
//! it can come back. A node that learns it was dropped (told by a peer, or because its own
//! ticks show it was stopped) *rejoins*: it leaves its own ring, passivates every account it
//! holds (the lease epoch fences any of them that another node activated meanwhile), and
//! introduces itself again with a newer incarnation, which puts it back in every ring.
//!
//! Left out: a peer that sees another as live while a third has dropped it does not relay the
//! news (each member decides for itself; fencing keeps the disagreement safe).

use super::detector::{Detector, Heard, Verdict};
use super::placement::{Member, Ring};
use super::Shell;
use protocol::cluster::{self, Hello, PeerCast, PeerReply, PeerRequest};
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::pg::GroupChangeMessage;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The process-group scope of the nodes' endpoints (one group per node id).
pub const PEER_SCOPE: &str = "wallet.nodes";
/// Most peers a node keeps; introductions beyond it are refused (a config error upstream).
pub const PEERS_MAX: usize = 64;

/// A message to a node's endpoint, from a peer (serialized over `ractor_cluster`) or local.
#[derive(Debug)]
pub enum PeerMsg {
    /// A versioned [`PeerCast`].
    Cast(Vec<u8>),
    /// A versioned [`PeerRequest`]; the answer is a versioned [`PeerReply`].
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

const CAST_VARIANT: &str = "cast.v1";
const CALL_VARIANT: &str = "call.v1";

impl ractor::Message for PeerMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(match self {
            PeerMsg::Cast(args) => SerializedMessage::Cast {
                variant: CAST_VARIANT.into(),
                args,
                metadata: None,
            },
            PeerMsg::Call(args, reply) => SerializedMessage::Call {
                variant: CALL_VARIANT.into(),
                args,
                reply,
                metadata: None,
            },
        })
    }

    fn deserialize(msg: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match msg {
            SerializedMessage::Cast { variant, args, .. } if variant == CAST_VARIANT => {
                Ok(PeerMsg::Cast(args))
            }
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == CALL_VARIANT => Ok(PeerMsg::Call(args, reply)),
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// A live peer.
#[derive(Clone)]
struct Peer {
    hello: Hello,
    endpoint: ActorRef<PeerMsg>,
}

struct State {
    /// Introduced peers with a live endpoint, by node id.
    peers: BTreeMap<String, Peer>,
    /// Endpoints seen in the process groups whose `Hello` has not arrived yet.
    unintroduced: BTreeMap<String, ActorRef<PeerMsg>>,
    /// `Hello`s that arrived before their endpoint appeared in the process groups.
    early: BTreeMap<String, Hello>,
    /// This node is draining.
    leaving: bool,
    /// Which peers went silent, and this node's incarnation.
    detector: Detector,
    /// The incarnation this node announces (behind the detector's during a rejoin).
    incarnation: u64,
    /// This node is passivating its accounts before it rejoins (it is out of its own ring).
    rejoining: bool,
}

/// How members watch each other.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    /// Interval of the heartbeats.
    pub heartbeat: Duration,
    /// Silence after which a peer is dropped.
    pub failure_timeout: Duration,
    /// This node's first incarnation: its start time in ms since the epoch, so that a restarted
    /// node always comes back with a larger one.
    pub incarnation: u64,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_millis(500),
            failure_timeout: Duration::from_millis(3_000),
            incarnation: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_millis() as u64),
        }
    }
}

/// What one failure-detection tick did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tick {
    /// Peers dropped for silence.
    pub dropped: usize,
    /// This node was stopped for longer than the failure timeout and must rejoin
    /// ([`Shell::rejoin`]).
    pub stalled: bool,
}

/// A peer as the admin routes show it.
#[derive(Clone)]
pub struct PeerView {
    /// Its introduction.
    pub hello: Hello,
    /// Its endpoint.
    pub endpoint: ActorRef<PeerMsg>,
    /// Dropped for silence: out of the ring until it rejoins.
    pub dropped: bool,
}

/// This node's view of the cluster: the live members and the ring over them.
pub struct Membership {
    me: Member,
    cluster_addr: String,
    store_id: String,
    vnodes: u32,
    state: Mutex<State>,
    ring: watch::Sender<Arc<Ring>>,
    local_endpoint: OnceLock<ActorRef<PeerMsg>>,
    in_flight: AtomicUsize,
    heartbeat: Duration,
    started: Instant,
}

impl Membership {
    /// A membership of this node alone (until peers are introduced). `store_id` identifies the
    /// store this node uses; a peer with another one is refused.
    pub fn new(
        me: Member,
        cluster_addr: String,
        store_id: String,
        vnodes: u32,
        liveness: Liveness,
    ) -> Arc<Self> {
        let ring = Arc::new(Ring::new(vec![me.clone()], vnodes));
        let heartbeat_ms = (liveness.heartbeat.as_millis() as u64).max(1);
        let timeout_ms = (liveness.failure_timeout.as_millis() as u64).max(heartbeat_ms + 1);
        Arc::new(Membership {
            me,
            cluster_addr,
            store_id,
            vnodes,
            state: Mutex::new(State {
                peers: BTreeMap::new(),
                unintroduced: BTreeMap::new(),
                early: BTreeMap::new(),
                leaving: false,
                detector: Detector::new(liveness.incarnation, heartbeat_ms, timeout_ms),
                incarnation: liveness.incarnation,
                rejoining: false,
            }),
            ring: watch::Sender::new(ring),
            local_endpoint: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            heartbeat: liveness.heartbeat,
            started: Instant::now(),
        })
    }

    /// Interval of the heartbeats this node sends.
    pub fn heartbeat_every(&self) -> Duration {
        self.heartbeat
    }

    /// The incarnation this node announces.
    pub fn incarnation(&self) -> u64 {
        self.state.lock().expect("membership lock").incarnation
    }

    /// Whether `node_id` was dropped for silence (out of the ring until it rejoins).
    pub fn is_dropped(&self, node_id: &str) -> bool {
        let g = self.state.lock().expect("membership lock");
        g.detector.is_dropped(node_id)
    }

    /// Whether this node is passivating its accounts before it rejoins.
    pub fn is_rejoining(&self) -> bool {
        self.state.lock().expect("membership lock").rejoining
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.borrow().clone()
    }

    /// A receiver of every new ring.
    pub fn watch(&self) -> watch::Receiver<Arc<Ring>> {
        self.ring.subscribe()
    }

    /// Whether `account` is owned by this node under the current ring.
    pub fn owns(&self, account: &str) -> bool {
        self.ring().owner(account).node_id == self.me.node_id
    }

    /// The endpoint of a live peer.
    pub fn endpoint(&self, node_id: &str) -> Option<ActorRef<PeerMsg>> {
        let g = self.state.lock().expect("membership lock");
        if g.detector.is_dropped(node_id) {
            return None; // silent: nothing is sent to it until it rejoins
        }
        g.peers.get(node_id).map(|p| p.endpoint.clone())
    }

    /// Every introduced peer with an open session, also the ones dropped for silence.
    pub fn peers(&self) -> Vec<PeerView> {
        let g = self.state.lock().expect("membership lock");
        g.peers
            .iter()
            .map(|(id, p)| PeerView {
                hello: p.hello.clone(),
                endpoint: p.endpoint.clone(),
                dropped: g.detector.is_dropped(id),
            })
            .collect()
    }

    /// The node-to-node addresses of the live peers.
    pub fn peer_cluster_addrs(&self) -> Vec<String> {
        let g = self.state.lock().expect("membership lock");
        g.peers
            .values()
            .map(|p| p.hello.cluster_addr.clone())
            .collect()
    }

    /// Whether this node is draining.
    pub fn is_leaving(&self) -> bool {
        self.state.lock().expect("membership lock").leaving
    }

    /// This node's introduction.
    pub fn hello(&self) -> Hello {
        let g = self.state.lock().expect("membership lock");
        self.hello_of(g.leaving, g.incarnation)
    }

    fn hello_of(&self, leaving: bool, incarnation: u64) -> Hello {
        Hello {
            node_id: self.me.node_id.clone(),
            http: self.me.http.clone(),
            cluster_addr: self.cluster_addr.clone(),
            leaving,
            store_id: self.store_id.clone(),
            incarnation,
        }
    }

    /// Starts draining: this node leaves its own ring. Idempotent. Returns the peers to tell.
    pub fn leave(&self) -> Vec<(String, ActorRef<PeerMsg>)> {
        let mut g = self.state.lock().expect("membership lock");
        if !g.leaving {
            g.leaving = true;
            self.publish(&g);
        }
        g.peers
            .iter()
            .map(|(id, p)| (id.clone(), p.endpoint.clone()))
            .collect()
    }

    /// This node's own endpoint, once it started.
    pub fn local_endpoint(&self) -> Option<ActorRef<PeerMsg>> {
        self.local_endpoint.get().cloned()
    }

    /// Requests from peers being served now.
    pub fn requests_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A peer's endpoint appeared (it gets our `Hello` next).
    fn endpoint_seen(&self, node_id: &str, endpoint: ActorRef<PeerMsg>) {
        let mut g = self.state.lock().expect("membership lock");
        if let Some(hello) = g.early.remove(node_id) {
            self.admit(&mut g, hello, endpoint);
        } else if let Some(p) = g.peers.get_mut(node_id) {
            // The same node on a new session (it restarted): keep its introduction.
            p.endpoint = endpoint;
        } else {
            g.unintroduced.insert(node_id.to_owned(), endpoint);
        }
    }

    /// A peer introduced itself (first time, or with news such as leaving).
    pub(crate) fn introduced(&self, hello: Hello) {
        if hello.node_id == self.me.node_id {
            tracing::error!(node = %hello.node_id, "a peer uses this node's id; node ids must be unique in the cluster");
            return;
        }
        if hello.store_id != self.store_id {
            tracing::error!(
                node = %hello.node_id,
                "peer refused: it uses another store than this node; the nodes of one cluster must share one store (the same storage.path on one machine, or the same FoundationDB cluster file and prefix)"
            );
            return;
        }
        let mut g = self.state.lock().expect("membership lock");
        let endpoint = match g.peers.get(&hello.node_id) {
            Some(p) => Some(p.endpoint.clone()),
            None => g.unintroduced.remove(&hello.node_id),
        };
        match endpoint {
            Some(e) => self.admit(&mut g, hello, e),
            None => {
                if g.early.len() < PEERS_MAX {
                    g.early.insert(hello.node_id.clone(), hello);
                }
            }
        }
    }

    fn admit(&self, g: &mut State, hello: Hello, endpoint: ActorRef<PeerMsg>) {
        if !g.peers.contains_key(&hello.node_id) && g.peers.len() >= PEERS_MAX {
            tracing::error!(node = %hello.node_id, "peer refused: the cluster has {PEERS_MAX} members already");
            return;
        }
        let mut changed = g.peers.get(&hello.node_id).is_none_or(|p| p.hello != hello);
        let mut fresh = !g.peers.contains_key(&hello.node_id);
        match g
            .detector
            .heard(&hello.node_id, hello.incarnation, self.now_ms())
        {
            Heard::Live => {}
            Heard::Revived => {
                tracing::info!(node = %hello.node_id, incarnation = hello.incarnation, "peer rejoined after it was dropped for silence");
                changed = true;
                fresh = true;
            }
            Heard::Stale { incarnation } => {
                self.tell_dropped(&endpoint, incarnation);
                changed = false;
            }
        }
        if changed {
            tracing::info!(node = %hello.node_id, http = %hello.http, leaving = hello.leaving, "peer is live");
        }
        if fresh && g.leaving {
            // It may have heard of this node before it started leaving (or missed the news
            // while it was dropped): tell it now.
            let me = cluster::encode(&PeerCast::Hello(self.hello_of(true, g.incarnation)));
            let _ = endpoint.cast(PeerMsg::Cast(me));
        }
        g.peers
            .insert(hello.node_id.clone(), Peer { hello, endpoint });
        if changed {
            self.publish(g);
        }
    }

    fn tell_dropped(&self, endpoint: &ActorRef<PeerMsg>, incarnation: u64) {
        let msg = cluster::encode(&PeerCast::Dropped {
            node_id: self.me.node_id.clone(),
            incarnation,
        });
        let _ = endpoint.cast(PeerMsg::Cast(msg));
    }

    /// A peer's heartbeat. A peer dropped at this incarnation is told so (again).
    pub(crate) fn heartbeat_from(&self, node_id: &str, incarnation: u64) {
        let mut g = self.state.lock().expect("membership lock");
        let Some(endpoint) = g.peers.get(node_id).map(|p| p.endpoint.clone()) else {
            return; // not introduced yet: its introduction starts its silence window
        };
        match g.detector.heard(node_id, incarnation, self.now_ms()) {
            Heard::Live => {}
            Heard::Revived => {
                tracing::info!(node = %node_id, incarnation, "peer rejoined after it was dropped for silence");
                if g.leaving {
                    // It missed the news while it was dropped.
                    let me = cluster::encode(&PeerCast::Hello(self.hello_of(true, g.incarnation)));
                    let _ = endpoint.cast(PeerMsg::Cast(me));
                }
                self.publish(&g);
            }
            Heard::Stale { incarnation } => self.tell_dropped(&endpoint, incarnation),
        }
    }

    /// The periodic check: drops the peers silent too long (and tells them), then sends every
    /// peer this node's heartbeat.
    pub(crate) fn tick(&self) -> Tick {
        let mut g = self.state.lock().expect("membership lock");
        let mut tick = Tick::default();
        for verdict in g.detector.tick(self.now_ms()) {
            match verdict {
                Verdict::Drop { peer, incarnation } => {
                    if let Some(p) = g.peers.get(&peer) {
                        tracing::warn!(node = %peer, "peer is silent: dropped from the ring; its accounts move to the other members until it rejoins");
                        self.tell_dropped(&p.endpoint, incarnation);
                        tick.dropped += 1;
                    }
                }
                Verdict::Stalled { incarnation } => {
                    tracing::warn!(incarnation, "this node was stopped for longer than the failure timeout: its peers dropped it; passivating and rejoining");
                    tick.stalled = true;
                }
            }
        }
        if tick.dropped > 0 {
            self.publish(&g);
        }
        let beat = cluster::encode(&PeerCast::Heartbeat {
            node_id: self.me.node_id.clone(),
            incarnation: g.incarnation,
        });
        for p in g.peers.values() {
            let _ = p.endpoint.cast(PeerMsg::Cast(beat.clone()));
        }
        tick
    }

    /// A peer says it dropped this node at `incarnation`. True when that is news and this
    /// node must rejoin.
    pub(crate) fn told_dropped(&self, by: &str, incarnation: u64) -> bool {
        let mut g = self.state.lock().expect("membership lock");
        let news = g.detector.told_dropped(incarnation, self.now_ms());
        if news {
            tracing::warn!(by = %by, "this node was dropped from a peer's ring for silence; passivating and rejoining");
        }
        news
    }

    /// Starts a rejoin: this node leaves its own ring, so that every account it holds is
    /// passivated. False when a rejoin is under way already.
    pub(crate) fn begin_rejoin(&self) -> bool {
        let mut g = self.state.lock().expect("membership lock");
        if g.rejoining {
            return false;
        }
        g.rejoining = true;
        self.publish(&g);
        true
    }

    /// Ends a rejoin: this node takes its newest incarnation, enters its ring again and
    /// introduces itself to every peer, which puts it back in theirs.
    pub(crate) fn end_rejoin(&self) -> u64 {
        let mut g = self.state.lock().expect("membership lock");
        g.rejoining = false;
        g.incarnation = g.detector.incarnation();
        self.publish(&g);
        let hello = cluster::encode(&PeerCast::Hello(self.hello_of(g.leaving, g.incarnation)));
        for p in g.peers.values() {
            let _ = p.endpoint.cast(PeerMsg::Cast(hello.clone()));
        }
        g.incarnation
    }

    /// A peer's endpoint left the process groups (its session ended): it is down.
    fn endpoint_lost(&self, node_id: &str, cell: &ActorCell) {
        let mut g = self.state.lock().expect("membership lock");
        if g.unintroduced
            .get(node_id)
            .is_some_and(|e| e.get_id() == cell.get_id())
        {
            g.unintroduced.remove(node_id);
        }
        let current = g
            .peers
            .get(node_id)
            .is_some_and(|p| p.endpoint.get_id() == cell.get_id());
        if current {
            // Two sessions to one peer may exist for a moment: keep it through the other one.
            let other = ractor::pg::get_scoped_members(&PEER_SCOPE.to_owned(), &node_id.to_owned())
                .into_iter()
                .find(|c| !c.get_id().is_local() && c.get_id() != cell.get_id());
            if let (Some(other), Some(p)) = (other, g.peers.get_mut(node_id)) {
                p.endpoint = other.into();
                return;
            }
            g.early.remove(node_id);
            g.peers.remove(node_id);
            g.detector.forget(node_id);
            tracing::warn!(node = %node_id, "peer is down (session lost)");
            self.publish(&g);
        }
    }

    /// Rebuilds the ring from the live members and publishes it.
    fn publish(&self, g: &State) {
        let mut members: Vec<Member> = g
            .peers
            .iter()
            .filter(|(id, p)| !p.hello.leaving && !g.detector.is_dropped(id))
            .map(|(_, p)| Member {
                node_id: p.hello.node_id.clone(),
                http: p.hello.http.clone(),
            })
            .collect();
        if !(g.leaving || g.rejoining) || members.is_empty() {
            // A node that leaves while alone keeps serving what it has: there is nowhere to go.
            members.push(self.me.clone());
        }
        let ring = Arc::new(Ring::new(members, self.vnodes));
        let names: Vec<&str> = ring.members().iter().map(|m| m.node_id.as_str()).collect();
        tracing::info!(members = ?names, "ring changed");
        self.ring.send_replace(ring);
    }
}

/// The node's endpoint actor: receives peers' casts and requests, and watches the process
/// groups for peers coming and going.
pub struct PeerEndpoint;

impl Actor for PeerEndpoint {
    type Msg = PeerMsg;
    type State = Shell;
    type Arguments = Shell;

    async fn pre_start(
        &self,
        myself: ActorRef<PeerMsg>,
        shell: Shell,
    ) -> Result<Shell, ActorProcessingErr> {
        let me = shell.membership().me().node_id.clone();
        let _ = shell.membership().local_endpoint.set(myself.clone());
        ractor::pg::monitor_scope(PEER_SCOPE.into(), myself.get_cell());
        ractor::pg::join_scoped(PEER_SCOPE.into(), me, vec![myself.get_cell()]);
        // Peers already mirrored into the groups before we watched them.
        for group in ractor::pg::which_scoped_groups(&PEER_SCOPE.to_owned()) {
            for cell in ractor::pg::get_scoped_members(&PEER_SCOPE.to_owned(), &group) {
                see_endpoint(&shell, &group, cell);
            }
        }
        Ok(shell)
    }

    async fn handle(
        &self,
        _myself: ActorRef<PeerMsg>,
        msg: PeerMsg,
        shell: &mut Shell,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PeerMsg::Cast(bytes) => match cluster::decode::<PeerCast>(&bytes) {
                Ok(PeerCast::Hello(hello)) => shell.membership().introduced(hello),
                Ok(PeerCast::Heartbeat {
                    node_id,
                    incarnation,
                }) => shell.membership().heartbeat_from(&node_id, incarnation),
                Ok(PeerCast::Dropped {
                    node_id,
                    incarnation,
                }) => {
                    if shell.membership().told_dropped(&node_id, incarnation) {
                        let shell = shell.clone();
                        tokio::spawn(async move { shell.rejoin().await });
                    }
                }
                Ok(PeerCast::Saga { msg, hops }) => {
                    let shell = shell.clone();
                    tokio::spawn(async move { shell.deliver_from_peer(msg, hops).await });
                }
                Err(e) => tracing::warn!(error = %e, "peer message dropped"),
            },
            PeerMsg::Call(bytes, reply) => {
                let shell = shell.clone();
                // Counted here, in mailbox order, so a leaving node can wait for every request
                // that reached it before it closes its sessions.
                let guard = InFlight::enter(shell.membership().clone());
                tokio::spawn(async move {
                    let _guard = guard;
                    let answer = match cluster::decode::<PeerRequest>(&bytes) {
                        Ok(req) => shell.serve_peer(req).await,
                        Err(e) => PeerReply::Failed(protocol::ApiError::new(
                            protocol::ErrorCode::InvalidRequest,
                            e,
                        )),
                    };
                    let _ = reply.send(cluster::encode(&answer));
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<PeerMsg>,
        evt: SupervisionEvent,
        shell: &mut Shell,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ProcessGroupChanged(change) = evt {
            match change {
                GroupChangeMessage::Join(scope, group, cells) if scope == PEER_SCOPE => {
                    for cell in cells {
                        see_endpoint(shell, &group, cell);
                    }
                }
                GroupChangeMessage::Leave(scope, group, cells) if scope == PEER_SCOPE => {
                    for cell in cells {
                        if !cell.get_id().is_local() {
                            shell.membership().endpoint_lost(&group, &cell);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// One peer request being served; counted until dropped (also when its task panics).
struct InFlight(Arc<Membership>);

impl InFlight {
    fn enter(m: Arc<Membership>) -> Self {
        m.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(m)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A remote endpoint appeared in the groups: remember it and introduce ourselves.
fn see_endpoint(shell: &Shell, node_id: &str, cell: ActorCell) {
    if cell.get_id().is_local() {
        return;
    }
    let endpoint: ActorRef<PeerMsg> = cell.into();
    shell.membership().endpoint_seen(node_id, endpoint.clone());
    let hello = cluster::encode(&PeerCast::Hello(shell.membership().hello()));
    if let Err(e) = endpoint.cast(PeerMsg::Cast(hello)) {
        tracing::warn!(node = %node_id, error = %e, "could not introduce this node to a peer");
    }
}
