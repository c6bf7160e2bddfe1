//! Actor-to-actor messages of the transfer saga (DESIGN.md section 5), with a versioned encoding.

use crate::{AccountId, Amount, Currency, ErrorCode, TransferId};
use serde::{Deserialize, Serialize};

/// Version of the saga message encoding; a receiver refuses versions it does not know.
pub const SAGA_WIRE_VERSION: u8 = 1;

/// A message between two account actors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum SagaMsg {
    /// Sender to receiver: apply this credit once.
    Credit {
        /// Transfer.
        transfer_id: TransferId,
        /// Debited account (the sender).
        from: AccountId,
        /// Credited account.
        to: AccountId,
        /// Amount.
        amount: Amount,
        /// The sender's currency; the receiver refuses another.
        currency: Currency,
        /// Free text for the receiver's entry.
        #[serde(default)]
        reference: Option<String>,
        /// When the sender created the transfer, ms since the Unix epoch (0 from senders
        /// before it was sent): the receiver lists the transfer at that time.
        #[serde(default)]
        created_at: u64,
    },
    /// Sender to receiver: the sender gives up waiting; refuse a later credit.
    Abort {
        /// Transfer.
        transfer_id: TransferId,
        /// Sender.
        from: AccountId,
        /// Receiver.
        to: AccountId,
        /// When the sender created the transfer (as in `Credit`).
        #[serde(default)]
        created_at: u64,
    },
    /// Receiver to sender: the recorded outcome of the credit.
    Outcome {
        /// Transfer.
        transfer_id: TransferId,
        /// Sender (the destination of this message).
        from: AccountId,
        /// The decision.
        outcome: CreditOutcome,
    },
    /// Disbursement payer to one receiver: reserve this credit (not spendable yet) once.
    Try {
        /// Disbursement.
        disbursement_id: TransferId,
        /// Payer.
        from: AccountId,
        /// Receiver of this leg.
        to: AccountId,
        /// Amount of this leg.
        amount: Amount,
        /// The payer's currency; the receiver refuses another.
        currency: Currency,
        /// When the payer created the disbursement.
        created_at: u64,
    },
    /// Payer to a receiver whose leg is reserved: credit it (every leg was reserved).
    Confirm {
        /// Disbursement.
        disbursement_id: TransferId,
        /// Payer.
        from: AccountId,
        /// Receiver of this leg.
        to: AccountId,
        /// Free text for the receiver's entry.
        #[serde(default)]
        reference: Option<String>,
    },
    /// Payer to a receiver: drop the leg; refuse a later `Try` (some leg failed).
    Cancel {
        /// Disbursement.
        disbursement_id: TransferId,
        /// Payer.
        from: AccountId,
        /// Receiver of this leg.
        to: AccountId,
        /// When the payer created the disbursement.
        created_at: u64,
    },
    /// A shard of a sharded account to a sibling shard: a debit found too little here, so
    /// move up to `want` of your available money to me (as a transfer between the two).
    Gather {
        /// The shard that asks (receives the move).
        from: AccountId,
        /// The shard asked.
        to: AccountId,
        /// How much is missing.
        want: Amount,
    },
    /// Receiver to payer: where its leg stands.
    LegOutcome {
        /// Disbursement.
        disbursement_id: TransferId,
        /// Payer (the destination of this message).
        from: AccountId,
        /// Receiver of the leg.
        to: AccountId,
        /// Its state.
        outcome: LegOutcome,
    },
}

impl SagaMsg {
    /// The account this message is addressed to.
    pub fn destination(&self) -> &AccountId {
        match self {
            SagaMsg::Credit { to, .. }
            | SagaMsg::Abort { to, .. }
            | SagaMsg::Try { to, .. }
            | SagaMsg::Confirm { to, .. }
            | SagaMsg::Cancel { to, .. }
            | SagaMsg::Gather { to, .. } => to,
            SagaMsg::Outcome { from, .. } | SagaMsg::LegOutcome { from, .. } => from,
        }
    }

    /// Encodes with the version prefix.
    pub fn encode(&self) -> Vec<u8> {
        crate::versioned_encode(SAGA_WIRE_VERSION, self)
    }

    /// Decodes a versioned message.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        crate::versioned_decode(SAGA_WIRE_VERSION, "saga message", bytes)
    }
}

/// A disbursement leg's state, as its receiver answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum LegOutcome {
    /// Reserved: the receiver will credit it on `Confirm`.
    Reserved,
    /// Refused for a business reason.
    Refused(ErrorCode),
    /// Credited.
    Confirmed,
    /// Dropped, or marked before its try came (a late try answers this too): never to be
    /// credited.
    Cancelled,
}

/// The receiver's recorded decision on a credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum CreditOutcome {
    /// Credited (exactly once).
    Applied,
    /// Refused for a business reason; the sender releases its hold.
    Rejected(ErrorCode),
    /// Refused because the sender aborted first (tombstone); the sender releases its hold.
    Aborted,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credit_from_before_created_at_decodes_with_zero() {
        // Proves a Credit of a sender that did not send `created_at` still decodes (0: the
        // receiver lists the transfer at its own time).
        let old = crate::versioned_encode(
            SAGA_WIRE_VERSION,
            &serde_json::json!({"msg": "credit", "transfer_id": "t1", "from": "a", "to": "b",
                "amount": 5, "currency": "EUR"}),
        );
        match SagaMsg::decode(&old) {
            Ok(SagaMsg::Credit { created_at, .. }) => assert_eq!(created_at, 0),
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn saga_messages_round_trip_with_version() {
        // Proves the versioned encoding decodes what it encodes and refuses unknown versions.
        let m = SagaMsg::Outcome {
            transfer_id: TransferId::new("t1").unwrap(),
            from: AccountId::new("a").unwrap(),
            outcome: CreditOutcome::Rejected(ErrorCode::AccountFrozen),
        };
        let bytes = m.encode();
        assert_eq!(SagaMsg::decode(&bytes).unwrap(), m);
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(SagaMsg::decode(&bad).unwrap_err().contains("version 99"));
    }
}
