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
    /// True when this node dropped it for silence (no heartbeat for `failure_timeout_ms`): it
    /// is out of the ring until it rejoins.
    #[serde(default)]
    pub dropped: bool,
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
    /// True when more exist than the page holds (of either list).
    pub truncated: bool,
    /// The unsettled disbursements, by id (extension; absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disbursements: Vec<crate::api::DisbursementView>,
}

/// `GET /admin/holds?after=&limit=`: open holds, the soonest to expire first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldsPage {
    /// The open holds (`held` or `capturing`).
    pub holds: Vec<crate::api::HoldView>,
    /// Cursor of the next page (`after=`), absent on the last.
    pub next_after: Option<String>,
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

/// Longest `wait_secs` a `GET /admin/audit` may ask for pending transfers to settle.
pub const AUDIT_WAIT_SECS_MAX: u64 = 60;

/// One property the audit checks (DESIGN.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditCheck {
    /// No transfer is still pending once the cluster is quiet (invariant 3, liveness).
    Settled,
    /// Replaying each journal gives its entries' balances and the stored state (invariant 6).
    Replay,
    /// Available never below zero (invariant 2).
    NoOverdraft,
    /// Per currency, sum of balances = deposits - withdrawals (invariant 1).
    Conservation,
    /// Every transfer is completed (debited once, credited once) or failed (neither) (invariant 3).
    AtomicTransfers,
    /// A sharded account's own record holds no money, and each of its shards holds its
    /// currency (its money is counted in them, once).
    Shards,
}

impl AuditCheck {
    /// Every check, in report order.
    pub const ALL: [AuditCheck; 6] = [
        AuditCheck::Settled,
        AuditCheck::Replay,
        AuditCheck::NoOverdraft,
        AuditCheck::Conservation,
        AuditCheck::AtomicTransfers,
        AuditCheck::Shards,
    ];

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditCheck::Settled => "settled",
            AuditCheck::Replay => "replay",
            AuditCheck::NoOverdraft => "no_overdraft",
            AuditCheck::Conservation => "conservation",
            AuditCheck::AtomicTransfers => "atomic_transfers",
            AuditCheck::Shards => "shards",
        }
    }

    /// A short description for the human report.
    pub fn describe(self) -> &'static str {
        match self {
            AuditCheck::Settled => "no transfer left pending (invariant 3)",
            AuditCheck::Replay => "journals replay to the stored state (invariant 6)",
            AuditCheck::NoOverdraft => "available never below zero (invariant 2)",
            AuditCheck::Conservation => {
                "balances = deposits - withdrawals per currency (invariant 1)"
            }
            AuditCheck::AtomicTransfers => {
                "transfers completed or failed, never half (invariant 3)"
            }
            AuditCheck::Shards => "sharded accounts: money only in shards, in one currency",
        }
    }
}

/// Whether a check passed: `PASS` or `FAIL` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckStatus {
    /// No violation.
    #[serde(rename = "PASS")]
    Pass,
    /// At least one violation.
    #[serde(rename = "FAIL")]
    Fail,
}

impl CheckStatus {
    /// `PASS` or `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
        }
    }
}

/// One broken property, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditViolation {
    /// Which check.
    pub check: AuditCheck,
    /// The account, when the violation is in one account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The transfer, when the violation is about one transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_id: Option<String>,
    /// What is wrong, with the values found.
    pub message: String,
}

/// Outcome of one check in an audit report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckResult {
    /// Which check.
    pub check: AuditCheck,
    /// `PASS` or `FAIL`.
    pub status: CheckStatus,
    /// Violations found (listed or not).
    pub violations: u64,
}

/// `GET /admin/audit` and `walletctl audit --json`: the audit's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// True when every check passed.
    pub ok: bool,
    /// Accounts audited.
    pub accounts: u64,
    /// Journal entries replayed.
    pub entries: u64,
    /// Distinct transfer ids checked.
    pub transfers: u64,
    /// Each check's outcome, in [`AuditCheck::ALL`] order.
    pub checks: Vec<AuditCheckResult>,
    /// The first violations found (the auditor caps how many are listed).
    pub violations: Vec<AuditViolation>,
    /// Violations found beyond those listed.
    pub violations_not_listed: u64,
}

/// One shard of a sharded account, as `GET /admin/accounts/{id}/shards` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardView {
    /// Its number, 0 to K-1.
    pub shard: u16,
    /// Its internal account id (`id~shard`).
    pub account: AccountId,
    /// The node the ring gives it to.
    pub node_id: String,
    /// Booked balance (a move to a sibling is in it, held, until settled).
    pub balance: u64,
    /// Balance minus holds.
    pub available: u64,
    /// Held.
    pub held: u64,
    /// Its journal's last sequence.
    pub seq: u64,
}

/// Seconds of per-second samples `GET /admin/stats` keeps and answers.
pub const STATS_WINDOW_SECS: u64 = 300;

/// `GET /admin/stats`: this node's `/v1` requests of each of the last seconds (the dashboard's
/// throughput and latency charts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsWindow {
    /// This node's id (each node counts its own requests).
    pub node_id: String,
    /// Length of one sample, in milliseconds (1000).
    pub interval_ms: u64,
    /// The finished seconds, oldest first, at most [`STATS_WINDOW_SECS`], one per second
    /// without gaps (a second without requests is a sample of zeros).
    pub samples: Vec<StatsSample>,
}

/// The `/v1` requests a node answered in one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSample {
    /// Start of the second, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Requests answered in it.
    pub requests: u64,
    /// Of those, answered with a 5xx status (`unavailable`, `overloaded`).
    pub errors: u64,
    /// Median latency, microseconds (0 without requests).
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Slowest request, microseconds.
    pub max_us: u64,
}
