//! Bodies of the admin API under `/admin`, used by `walletctl`.

use crate::api::{AccountView, TransferView};
use crate::AccountId;
use serde::{Deserialize, Serialize};

/// Largest page of accounts or transfers an admin listing returns.
pub const ADMIN_PAGE_MAX: u32 = 1_000;

/// `GET /admin/status`: one node's view of itself and the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's id.
    pub node_id: String,
    /// Storage backend in use (`embedded`, `memory`, `fdb`).
    pub backend: String,
    /// Live members, this node included.
    pub members: Vec<MemberStatus>,
    /// Account actors active on this node.
    pub active_actors: u64,
    /// Transfers not yet settled, cluster-wide (from the `pending` index).
    pub pending_sagas: u64,
    /// Storage commits since start.
    pub commits: u64,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Version of the software.
    pub version: String,
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node id.
    pub node_id: String,
    /// HTTP address.
    pub http: String,
    /// Share of the ring it owns, 0.0 to 1.0.
    pub ring_share: f64,
    /// Account actors active on it; absent when it did not answer in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_actors: Option<u64>,
    /// Unsettled transfers whose sender it owns (from the `pending` index).
    #[serde(default)]
    pub pending_sagas: u64,
    /// True while it drains (it has left the ring).
    #[serde(default)]
    pub leaving: bool,
}

/// One node's own figures, as it reports them to a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Node id.
    pub node_id: String,
    /// Account actors active on it.
    pub active_actors: u64,
    /// True while it drains (it owns no account any more).
    pub leaving: bool,
}

/// `POST /admin/drain`: where a drain of this node stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// This node's id.
    pub node_id: String,
    /// True once it has left the ring (new requests go to the other members).
    pub left_ring: bool,
    /// Account actors still active on it.
    pub active_actors: u64,
    /// True when no actor is left: the node stops now.
    pub drained: bool,
}

impl Eq for MemberStatus {}

/// `GET /admin/accounts?after=&limit=`: a page of accounts in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsPage {
    /// Accounts as stored (not through the actors).
    pub accounts: Vec<AccountView>,
    /// Pass as `after` for the next page; null at the end.
    pub next_after: Option<AccountId>,
}

/// `GET /admin/pending?limit=`: transfers whose saga has not settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPage {
    /// The unsettled transfers, oldest id first.
    pub transfers: Vec<TransferView>,
    /// True when more exist than the page holds.
    pub truncated: bool,
}

/// `GET /admin/owner/{id}`: which node owns an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerView {
    /// The account.
    pub account: AccountId,
    /// The owning node's id.
    pub node_id: String,
    /// The owning node's HTTP address.
    pub http: String,
    /// Whether its actor is active now (only known when asked of the owner).
    pub active: Option<bool>,
}
