//! Node-to-node messages of the cluster, with a versioned encoding (DESIGN.md section 4).
//!
//! Nodes talk through one endpoint actor each. A [`PeerCast`] is one-way (introductions and
//! saga messages); a [`PeerRequest`] is answered by a [`PeerReply`] (a client command forwarded
//! to the account's owner, or a node's statistics). Every payload is one version byte
//! ([`CLUSTER_WIRE_VERSION`]) followed by JSON, so a node refuses a message from a version it
//! does not know instead of misreading it.
//!
//! The account [`Command`] and its [`Reply`] are defined here because they cross the network
//! when a node forwards a request to the account's owner; the ledger core uses the same types.

use crate::admin::NodeStats;
use crate::api::{
    AccountView, DisbursementView, HoldView, LegStatus, MovementView, TransferStatus, TransferView,
};
use crate::saga::SagaMsg;
use crate::{AccountId, Amount, ApiError, Currency, TransferId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Version of the node-to-node encoding; a receiver refuses versions it does not know.
pub const CLUSTER_WIRE_VERSION: u8 = 1;

/// A client command for one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open the account (idempotent for the same currency).
    Open {
        /// Currency.
        currency: Currency,
        /// Shards of a sharded account, for its own record and for each of its shards (the
        /// record is opened first, then the shards); `None` for an account with one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shards: Option<u16>,
    },
    /// Money in.
    Deposit {
        /// Amount.
        amount: Amount,
        /// Free text.
        reference: Option<String>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Money out.
    Withdraw {
        /// Amount.
        amount: Amount,
        /// Free text.
        reference: Option<String>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Start a transfer from this account.
    Transfer {
        /// Id for the transfer if it is new (chosen by the node that accepted it).
        transfer_id: TransferId,
        /// Receiver.
        to: AccountId,
        /// Amount.
        amount: Amount,
        /// Free text.
        reference: Option<String>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Refuse movements until unfrozen.
    Freeze,
    /// Accept movements again.
    Unfreeze,
    /// Read the account.
    Get,
    /// Hold money of this account for a later payment to `to`.
    Hold {
        /// Id for the hold if it is new (chosen by the node that accepted it).
        hold_id: TransferId,
        /// Account a capture pays.
        to: AccountId,
        /// Amount.
        amount: Amount,
        /// Life of the hold, ms.
        expires_in_ms: u64,
        /// Free text.
        reference: Option<String>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Capture a hold of this account: move `amount` (default all) to its receiver.
    Capture {
        /// The hold.
        hold_id: TransferId,
        /// Id for the capture's transfer if it is new (chosen by the node that accepted it).
        capture_id: TransferId,
        /// Amount to move; the rest is released.
        amount: Option<Amount>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Release a hold of this account.
    Void {
        /// The hold.
        hold_id: TransferId,
        /// Idempotency key.
        idem_key: Option<String>,
    },
    /// Pay several accounts from this one, all or nothing.
    Disburse {
        /// Id for the disbursement if it is new (chosen by the node that accepted it).
        disbursement_id: TransferId,
        /// The legs: receiver and amount (validated: 1 to 256, distinct, not this account).
        legs: Vec<(AccountId, Amount)>,
        /// Free text.
        reference: Option<String>,
        /// Idempotency key.
        idem_key: Option<String>,
    },
}

/// A successful reply to a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// An account; `created` is true when this command opened it.
    Account {
        /// The account.
        view: AccountView,
        /// Whether this command created it.
        created: bool,
    },
    /// A deposit or withdrawal.
    Movement(MovementView),
    /// A transfer (pending, or settled when replayed from its idempotency record).
    Transfer(TransferView),
    /// A hold (created, voided, or replayed); boxed, as it is the largest reply.
    Hold(Box<HoldView>),
    /// A disbursement (pending, or settled when replayed).
    Disbursement(Box<DisbursementView>),
    /// A capture: the hold, and the transfer that moves the captured amount.
    Capture {
        /// The hold as the capture left it (`capturing`, or settled when replayed).
        hold: Box<HoldView>,
        /// The capture's transfer.
        transfer: TransferView,
    },
}

impl Reply {
    /// The id whose settlement this reply waits on, while it is pending: a transfer's, a
    /// capture's transfer's, or a disbursement's.
    pub fn awaits(&self) -> Option<&TransferId> {
        match self {
            Reply::Transfer(t) | Reply::Capture { transfer: t, .. }
                if t.status == TransferStatus::Pending =>
            {
                Some(&t.id)
            }
            Reply::Disbursement(d) if d.status == TransferStatus::Pending => Some(&d.id),
            _ => None,
        }
    }

    /// The reply once what it waits on settled as `view` (a disbursement's settles as a
    /// summary with its status and reason; a capture's hold and a disbursement's legs are
    /// read again by whoever shows them).
    pub fn settled(self, view: TransferView) -> Reply {
        match self {
            Reply::Capture { hold, .. } => Reply::Capture {
                hold,
                transfer: view,
            },
            Reply::Disbursement(mut d) => {
                // Completed: every leg credited. Failed: the leg `view.to` refused, the
                // others were cancelled.
                d.status = view.status;
                d.reason = view.reason;
                for leg in &mut d.legs {
                    (leg.status, leg.reason) = match view.status {
                        TransferStatus::Completed => (LegStatus::Completed, None),
                        TransferStatus::Failed if leg.to == view.to => {
                            (LegStatus::Failed, view.reason)
                        }
                        TransferStatus::Failed => (LegStatus::Cancelled, None),
                        TransferStatus::Pending => (LegStatus::Pending, None),
                    };
                }
                Reply::Disbursement(d)
            }
            _ => Reply::Transfer(view),
        }
    }
}

/// A node introducing itself to a peer (sent when either first sees the other), and again
/// when it starts leaving the ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The node's id (unique in the cluster).
    pub node_id: String,
    /// Its HTTP address, as clients and `walletctl` reach it.
    pub http: String,
    /// Its node-to-node address.
    pub cluster_addr: String,
    /// True once it is draining: it owns no account any more.
    pub leaving: bool,
    /// Identity of the store it uses; nodes of one cluster must share one store.
    pub store_id: String,
    /// Its incarnation: its start time in ms, plus one per rejoin after it was dropped for
    /// silence (a peer that dropped it re-admits only a newer incarnation).
    #[serde(default)]
    pub incarnation: u64,
}

/// A one-way message between nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cast", rename_all = "snake_case")]
pub enum PeerCast {
    /// Who the sender is, and whether it is leaving.
    Hello(Hello),
    /// A saga message for an account the receiver owns; `hops` counts the nodes that
    /// forwarded it already (a node whose ring names another owner forwards it, a few times).
    Saga {
        /// The message.
        msg: SagaMsg,
        /// Forwards so far.
        hops: u8,
    },
    /// A liveness probe, sent every `cluster.heartbeat_ms` to every peer.
    Heartbeat {
        /// The sender.
        node_id: String,
        /// The sender's incarnation.
        incarnation: u64,
    },
    /// The receiver was dropped from the sender's ring for silence at `incarnation`: it must
    /// passivate what it holds and rejoin with a newer incarnation.
    Dropped {
        /// The sender.
        node_id: String,
        /// The receiver's incarnation when it was dropped.
        incarnation: u64,
    },
}

/// A request from one node to another, answered with a [`PeerReply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "req", rename_all = "snake_case")]
pub enum PeerRequest {
    /// Run a command on an account the receiver owns. A transfer waits up to `wait_ms` for
    /// its settlement before answering.
    Command {
        /// The account.
        account: AccountId,
        /// The command.
        command: Command,
        /// How long a transfer may wait to settle.
        wait_ms: u64,
    },
    /// The receiver's own statistics.
    Stats,
    /// The sender is leaving the ring; the receiver updates its ring, then acknowledges, so
    /// the sender knows no new request will come from it.
    Leaving(Hello),
}

/// The answer to a [`PeerRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum PeerReply {
    /// The command ran and committed (boxed: a capture's reply is large).
    Done(Box<Reply>),
    /// The command was refused (a business error) or its outcome is unknown (`unavailable`).
    Failed(ApiError),
    /// The receiver does not own the account (any more): nothing ran; ask the current owner.
    Moved,
    /// The receiver's statistics.
    Stats(NodeStats),
    /// Done (the answer to `Leaving`).
    Ack,
}

/// Encodes a node-to-node payload with the version prefix.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    crate::versioned_encode(CLUSTER_WIRE_VERSION, msg)
}

/// Decodes a versioned node-to-node payload.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    crate::versioned_decode(CLUSTER_WIRE_VERSION, "cluster message", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TransferStatus;

    #[test]
    fn cluster_messages_round_trip_with_version() {
        // Proves every kind of node-to-node payload decodes to what was encoded, and that an
        // unknown version is refused with a sentence naming it.
        let req = PeerRequest::Command {
            account: AccountId::new("alice").unwrap(),
            command: Command::Transfer {
                transfer_id: TransferId::new("t1").unwrap(),
                to: AccountId::new("bob").unwrap(),
                amount: Amount::new(250).unwrap(),
                reference: Some("rent".into()),
                idem_key: Some("k1".into()),
            },
            wait_ms: 5_000,
        };
        let bytes = encode(&req);
        assert_eq!(decode::<PeerRequest>(&bytes).unwrap(), req);
        let reply = PeerReply::Done(Box::new(Reply::Transfer(TransferView {
            id: TransferId::new("t1").unwrap(),
            from: AccountId::new("alice").unwrap(),
            to: AccountId::new("bob").unwrap(),
            amount: 250,
            status: TransferStatus::Pending,
            reason: None,
            created_at: 7,
        })));
        assert_eq!(decode::<PeerReply>(&encode(&reply)).unwrap(), reply);
        let cast = PeerCast::Hello(Hello {
            node_id: "n1".into(),
            http: "127.0.0.1:8080".into(),
            cluster_addr: "127.0.0.1:7946".into(),
            leaving: true,
            store_id: "s1".into(),
            incarnation: 1_767_225_600_000,
        });
        assert_eq!(decode::<PeerCast>(&encode(&cast)).unwrap(), cast);
        for cast in [
            PeerCast::Heartbeat {
                node_id: "n2".into(),
                incarnation: 5,
            },
            PeerCast::Dropped {
                node_id: "n3".into(),
                incarnation: 5,
            },
        ] {
            assert_eq!(decode::<PeerCast>(&encode(&cast)).unwrap(), cast);
        }
        // An introduction from before incarnations decodes with incarnation 0.
        let old = crate::versioned_encode(
            CLUSTER_WIRE_VERSION,
            &serde_json::json!({"cast": "hello", "node_id": "n1", "http": "h", "cluster_addr": "c", "leaving": false, "store_id": "s"}),
        );
        match decode::<PeerCast>(&old).unwrap() {
            PeerCast::Hello(h) => assert_eq!(h.incarnation, 0),
            other => panic!("decoded {other:?}"),
        }
        let mut bad = encode(&cast);
        bad[0] = 9;
        assert!(decode::<PeerCast>(&bad).unwrap_err().contains("version 9"));
        assert!(decode::<PeerCast>(&[]).is_err());
    }
}
