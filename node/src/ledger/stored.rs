//! The compact binary form of the ledger's stored records (value version 2, `storage::codec`).
//!
//! Each record has a wire form, a plain struct written positionally by `postcard` (varint
//! integers, length-prefixed strings): no field names, no quotes, no decimal digits. A journal
//! entry takes about 60 bytes instead of 150 in JSON, a saga record about 70 instead of 170,
//! and every row the writer stores is that much smaller (fewer pages per group commit).
//!
//! What stored bytes mean never depends on the order of a Rust enum: kinds and statuses are
//! written as the explicit codes of the tables below (a new variant takes a new code), error
//! codes by their API names (which never change), and the wire enums of this module keep
//! their variants in the order they have; a change of a wire form is a new value version.
//! Version 1 (JSON, written by releases before 0.2) still decodes: every record type also
//! keeps its serde form.

use super::records::{
    AccountRecord, DisbursementPhase, DisbursementRecord, HoldRecord, IdemRecord, Lease, LegRecord,
    LegState, SagaRecord, SenderStatus, StoredReply,
};
use crate::storage::codec::Stored;
use protocol::api::{
    AccountStatus, Entry, EntryKind, HoldStatus, MovementView, TransferStatus, TransferView,
};
use protocol::saga::CreditOutcome;
use protocol::{AccountId, Currency, ErrorCode, TransferId};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::IntoDeserializer;
use serde::{Deserialize, Serialize};

fn to_postcard<W: Serialize>(wire: &W, out: &mut Vec<u8>) {
    *out = postcard::to_extend(wire, std::mem::take(out)).expect("wire forms serialize");
}

fn from_postcard<'a, W: Deserialize<'a>>(bytes: &'a [u8]) -> Result<W, String> {
    match postcard::take_from_bytes::<W>(bytes) {
        Ok((w, [])) => Ok(w),
        Ok((_, rest)) => Err(format!("{} bytes after the record", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

fn bad(what: &str, code: u8) -> String {
    format!("unknown {what} code {code}")
}

fn status_code(s: AccountStatus) -> u8 {
    match s {
        AccountStatus::Active => 1,
        AccountStatus::Frozen => 2,
        AccountStatus::Closed => 3,
    }
}

fn status_of(c: u8) -> Result<AccountStatus, String> {
    Ok(match c {
        1 => AccountStatus::Active,
        2 => AccountStatus::Frozen,
        3 => AccountStatus::Closed,
        _ => return Err(bad("account status", c)),
    })
}

fn kind_code(k: EntryKind) -> u8 {
    match k {
        EntryKind::Deposit => 1,
        EntryKind::Withdrawal => 2,
        EntryKind::Hold => 3,
        EntryKind::TransferOut => 4,
        EntryKind::TransferIn => 5,
        EntryKind::Release => 6,
    }
}

fn kind_of(c: u8) -> Result<EntryKind, String> {
    Ok(match c {
        1 => EntryKind::Deposit,
        2 => EntryKind::Withdrawal,
        3 => EntryKind::Hold,
        4 => EntryKind::TransferOut,
        5 => EntryKind::TransferIn,
        6 => EntryKind::Release,
        _ => return Err(bad("entry kind", c)),
    })
}

fn transfer_status_code(s: TransferStatus) -> u8 {
    match s {
        TransferStatus::Pending => 1,
        TransferStatus::Completed => 2,
        TransferStatus::Failed => 3,
    }
}

fn transfer_status_of(c: u8) -> Result<TransferStatus, String> {
    Ok(match c {
        1 => TransferStatus::Pending,
        2 => TransferStatus::Completed,
        3 => TransferStatus::Failed,
        _ => return Err(bad("transfer status", c)),
    })
}

/// An error code from its API name.
fn error_code(name: &str) -> Result<ErrorCode, String> {
    let de: StrDeserializer<'_, ValueError> = name.into_deserializer();
    ErrorCode::deserialize(de).map_err(|_| format!("unknown error code {name:?}"))
}

fn error_code_opt(name: Option<&str>) -> Result<Option<ErrorCode>, String> {
    name.map(error_code).transpose()
}

#[derive(Serialize, Deserialize)]
struct AccountWire {
    currency: Currency,
    status: u8,
    balance: u64,
    held: u64,
    seq: u64,
    opened_at: u64,
}

impl Stored for AccountRecord {
    fn write_wire(&self, out: &mut Vec<u8>) {
        let w = AccountWire {
            currency: self.currency,
            status: status_code(self.status),
            balance: self.balance,
            held: self.held,
            seq: self.seq,
            opened_at: self.opened_at,
        };
        to_postcard(&w, out);
        // The shard count of a sharded account's record follows; an account with one shard
        // writes the same bytes as releases before sharding.
        if let Some(k) = self.shards {
            to_postcard(&k, out);
        }
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        let (w, rest): (AccountWire, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| e.to_string())?;
        let shards = if rest.is_empty() {
            None
        } else {
            Some(from_postcard::<u16>(rest)?)
        };
        Ok(AccountRecord {
            shards,
            currency: w.currency,
            status: status_of(w.status)?,
            balance: w.balance,
            held: w.held,
            seq: w.seq,
            opened_at: w.opened_at,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct LeaseWire<'a> {
    node: &'a str,
    epoch: u64,
    nonce: u64,
}

impl Stored for Lease {
    fn write_wire(&self, out: &mut Vec<u8>) {
        let w = LeaseWire {
            node: &self.node,
            epoch: self.epoch,
            nonce: self.nonce,
        };
        to_postcard(&w, out)
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        let w: LeaseWire<'_> = from_postcard(bytes)?;
        Ok(Lease {
            node: w.node.to_owned(),
            epoch: w.epoch,
            nonce: w.nonce,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct EntryWire<'a> {
    seq: u64,
    kind: u8,
    amount: u64,
    balance: u64,
    available: u64,
    transfer_id: Option<&'a str>,
    reference: Option<&'a str>,
    at: u64,
}

impl Stored for Entry {
    fn write_wire(&self, out: &mut Vec<u8>) {
        let w = EntryWire {
            seq: self.seq,
            kind: kind_code(self.kind),
            amount: self.amount,
            balance: self.balance,
            available: self.available,
            transfer_id: self.transfer_id.as_ref().map(|t| t.as_str()),
            reference: self.reference.as_deref(),
            at: self.at,
        };
        to_postcard(&w, out)
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        let w: EntryWire<'_> = from_postcard(bytes)?;
        Ok(Entry {
            seq: w.seq,
            kind: kind_of(w.kind)?,
            amount: w.amount,
            balance: w.balance,
            available: w.available,
            transfer_id: w.transfer_id.map(TransferId::new).transpose()?,
            reference: w.reference.map(str::to_owned),
            at: w.at,
            shard: None,
        })
    }
}

/// The reply of an idempotency record; variants keep this order.
#[derive(Serialize, Deserialize)]
enum ReplyWire<'a> {
    Movement {
        id: &'a str,
        account: &'a str,
        amount: u64,
        balance: u64,
        seq: u64,
    },
    TransferId(&'a str),
    Transfer {
        id: &'a str,
        from: &'a str,
        to: &'a str,
        amount: u64,
        status: u8,
        reason: Option<&'a str>,
        created_at: u64,
    },
    HoldId(&'a str),
    Capture {
        hold: &'a str,
        transfer: &'a str,
    },
    DisbursementId(&'a str),
}

#[derive(Serialize, Deserialize)]
struct IdemWire<'a> {
    fingerprint: &'a str,
    #[serde(borrow)]
    reply: ReplyWire<'a>,
}

impl Stored for IdemRecord {
    fn write_wire(&self, out: &mut Vec<u8>) {
        let reply = match &self.reply {
            StoredReply::Movement(m) => ReplyWire::Movement {
                id: &m.id,
                account: m.account.as_str(),
                amount: m.amount,
                balance: m.balance,
                seq: m.seq,
            },
            StoredReply::TransferId(t) => ReplyWire::TransferId(t.as_str()),
            StoredReply::HoldId(h) => ReplyWire::HoldId(h.as_str()),
            StoredReply::DisbursementId(d) => ReplyWire::DisbursementId(d.as_str()),
            StoredReply::Capture { hold, transfer } => ReplyWire::Capture {
                hold: hold.as_str(),
                transfer: transfer.as_str(),
            },
            StoredReply::Transfer(v) => ReplyWire::Transfer {
                id: v.id.as_str(),
                from: v.from.as_str(),
                to: v.to.as_str(),
                amount: v.amount,
                status: transfer_status_code(v.status),
                reason: v.reason.map(|c| c.as_str()),
                created_at: v.created_at,
            },
        };
        let w = IdemWire {
            fingerprint: &self.fingerprint,
            reply,
        };
        to_postcard(&w, out)
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        let w: IdemWire<'_> = from_postcard(bytes)?;
        let reply = match w.reply {
            ReplyWire::Movement {
                id,
                account,
                amount,
                balance,
                seq,
            } => StoredReply::Movement(MovementView {
                shard: None,
                id: id.to_owned(),
                account: AccountId::new(account)?,
                amount,
                balance,
                seq,
            }),
            ReplyWire::TransferId(t) => StoredReply::TransferId(TransferId::new(t)?),
            ReplyWire::HoldId(h) => StoredReply::HoldId(TransferId::new(h)?),
            ReplyWire::DisbursementId(d) => StoredReply::DisbursementId(TransferId::new(d)?),
            ReplyWire::Capture { hold, transfer } => StoredReply::Capture {
                hold: TransferId::new(hold)?,
                transfer: TransferId::new(transfer)?,
            },
            ReplyWire::Transfer {
                id,
                from,
                to,
                amount,
                status,
                reason,
                created_at,
            } => {
                let status = transfer_status_of(status)?;
                if (status == TransferStatus::Failed) != reason.is_some() {
                    return Err(format!("transfer status {status:?} with reason {reason:?}"));
                }
                StoredReply::Transfer(TransferView {
                    id: TransferId::new(id)?,
                    from: AccountId::new(from)?,
                    to: AccountId::new(to)?,
                    amount,
                    status,
                    reason: error_code_opt(reason)?,
                    created_at,
                })
            }
        };
        Ok(IdemRecord {
            fingerprint: w.fingerprint.to_owned(),
            reply,
        })
    }
}

/// A saga record; variants keep this order. Statuses and outcomes are a code (1 holding or
/// applied, 2 completed or rejected, 3 failed or aborted) and the reason's API name; a hold's
/// status is the code of [`hold_status_code`].
#[derive(Serialize, Deserialize)]
enum SagaWire<'a> {
    Sender {
        transfer_id: &'a str,
        to: &'a str,
        amount: u64,
        status: u8,
        reason: Option<&'a str>,
        idem_key: Option<&'a str>,
        fingerprint: Option<&'a str>,
        reference: Option<&'a str>,
        created_at: u64,
    },
    Receiver {
        transfer_id: &'a str,
        from: &'a str,
        amount: u64,
        outcome: u8,
        reason: Option<&'a str>,
    },
    Hold {
        hold_id: &'a str,
        to: &'a str,
        amount: u64,
        status: u8,
        capture: Option<(&'a str, u64)>,
        expires_at: u64,
        reference: Option<&'a str>,
        created_at: u64,
    },
    Disbursement {
        id: &'a str,
        legs: Vec<(&'a str, u64)>,
        phase: u8,
        leg: u32,
        reason: Option<&'a str>,
        reference: Option<&'a str>,
        created_at: u64,
        answered: Vec<u32>,
    },
    Leg {
        disbursement_id: &'a str,
        from: &'a str,
        amount: u64,
        state: u8,
        reason: Option<&'a str>,
    },
}

fn hold_status_code(s: HoldStatus) -> u8 {
    match s {
        HoldStatus::Held => 1,
        HoldStatus::Capturing => 2,
        HoldStatus::Captured => 3,
        HoldStatus::Voided => 4,
        HoldStatus::Expired => 5,
    }
}

fn hold_status_of(c: u8) -> Result<HoldStatus, String> {
    Ok(match c {
        1 => HoldStatus::Held,
        2 => HoldStatus::Capturing,
        3 => HoldStatus::Captured,
        4 => HoldStatus::Voided,
        5 => HoldStatus::Expired,
        _ => return Err(bad("hold status", c)),
    })
}

impl Stored for SagaRecord {
    fn write_wire(&self, out: &mut Vec<u8>) {
        let w = match self {
            SagaRecord::Sender {
                transfer_id,
                to,
                amount,
                status,
                idem_key,
                fingerprint,
                reference,
                created_at,
            } => {
                let (status, reason) = match status {
                    SenderStatus::Holding => (1, None),
                    SenderStatus::Completed => (2, None),
                    SenderStatus::Failed(code) => (3, Some(code.as_str())),
                };
                SagaWire::Sender {
                    transfer_id: transfer_id.as_str(),
                    to: to.as_str(),
                    amount: *amount,
                    status,
                    reason,
                    idem_key: idem_key.as_deref(),
                    fingerprint: fingerprint.as_deref(),
                    reference: reference.as_deref(),
                    created_at: *created_at,
                }
            }
            SagaRecord::Receiver {
                transfer_id,
                from,
                amount,
                outcome,
            } => {
                let (outcome, reason) = match outcome {
                    CreditOutcome::Applied => (1, None),
                    CreditOutcome::Rejected(code) => (2, Some(code.as_str())),
                    CreditOutcome::Aborted => (3, None),
                };
                SagaWire::Receiver {
                    transfer_id: transfer_id.as_str(),
                    from: from.as_str(),
                    amount: *amount,
                    outcome,
                    reason,
                }
            }
            SagaRecord::Disbursement(d) => {
                let (phase, leg, reason) = match d.phase {
                    DisbursementPhase::Trying => (1, 0, None),
                    DisbursementPhase::Confirming => (2, 0, None),
                    DisbursementPhase::Cancelling { leg, reason } => (3, leg, Some(reason)),
                    DisbursementPhase::Completed => (4, 0, None),
                    DisbursementPhase::Failed { leg, reason } => (5, leg, Some(reason)),
                };
                SagaWire::Disbursement {
                    id: d.id.as_str(),
                    legs: d.legs.iter().map(|(to, a)| (to.as_str(), *a)).collect(),
                    phase,
                    leg,
                    reason: reason.map(ErrorCode::as_str),
                    reference: d.reference.as_deref(),
                    created_at: d.created_at,
                    answered: d.answered.iter().copied().collect(),
                }
            }
            SagaRecord::Leg(l) => {
                let (state, reason) = match l.state {
                    LegState::Reserved => (1, None),
                    LegState::Refused(code) => (2, Some(code.as_str())),
                    LegState::Credited => (3, None),
                    LegState::Cancelled => (4, None),
                };
                SagaWire::Leg {
                    disbursement_id: l.disbursement_id.as_str(),
                    from: l.from.as_str(),
                    amount: l.amount,
                    state,
                    reason,
                }
            }
            SagaRecord::Hold(h) => SagaWire::Hold {
                hold_id: h.hold_id.as_str(),
                to: h.to.as_str(),
                amount: h.amount,
                status: hold_status_code(h.status),
                capture: h.capture.as_ref().map(|(t, a)| (t.as_str(), *a)),
                expires_at: h.expires_at,
                reference: h.reference.as_deref(),
                created_at: h.created_at,
            },
        };
        to_postcard(&w, out)
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        let w: SagaWire<'_> = from_postcard(bytes)?;
        let reason = |r: Option<&str>| r.map(error_code).ok_or("a failure without a reason")?;
        // A status or outcome that carries no reason must have none: not guessed away.
        let none = |r: Option<&str>, code: u8| match r {
            None => Ok(()),
            Some(r) => Err(format!("reason {r:?} with status code {code}")),
        };
        Ok(match w {
            SagaWire::Sender {
                transfer_id,
                to,
                amount,
                status,
                reason: why,
                idem_key,
                fingerprint,
                reference,
                created_at,
            } => SagaRecord::Sender {
                transfer_id: TransferId::new(transfer_id)?,
                to: AccountId::new(to)?,
                amount,
                status: match status {
                    1 => none(why, 1).map(|()| SenderStatus::Holding)?,
                    2 => none(why, 2).map(|()| SenderStatus::Completed)?,
                    3 => SenderStatus::Failed(reason(why)?),
                    c => return Err(bad("sender status", c)),
                },
                idem_key: idem_key.map(str::to_owned),
                fingerprint: fingerprint.map(str::to_owned),
                reference: reference.map(str::to_owned),
                created_at,
            },
            SagaWire::Receiver {
                transfer_id,
                from,
                amount,
                outcome,
                reason: why,
            } => SagaRecord::Receiver {
                transfer_id: TransferId::new(transfer_id)?,
                from: AccountId::new(from)?,
                amount,
                outcome: match outcome {
                    1 => none(why, 1).map(|()| CreditOutcome::Applied)?,
                    2 => CreditOutcome::Rejected(reason(why)?),
                    3 => none(why, 3).map(|()| CreditOutcome::Aborted)?,
                    c => return Err(bad("credit outcome", c)),
                },
            },
            SagaWire::Hold {
                hold_id,
                to,
                amount,
                status,
                capture,
                expires_at,
                reference,
                created_at,
            } => {
                let status = hold_status_of(status)?;
                let capture = capture
                    .map(|(t, a)| TransferId::new(t).map(|t| (t, a)))
                    .transpose()?;
                if capture.as_ref().is_some_and(|c| c.1 > amount)
                    || (capture.is_none()
                        && matches!(status, HoldStatus::Capturing | HoldStatus::Captured))
                {
                    return Err(format!(
                        "hold {hold_id}: {status:?} with capture {capture:?}"
                    ));
                }
                SagaRecord::Hold(HoldRecord {
                    hold_id: TransferId::new(hold_id)?,
                    to: AccountId::new(to)?,
                    amount,
                    status,
                    capture,
                    expires_at,
                    reference: reference.map(str::to_owned),
                    created_at,
                })
            }
            SagaWire::Disbursement {
                id,
                legs,
                phase,
                leg,
                reason: why,
                reference,
                created_at,
                answered,
            } => {
                let phase = match phase {
                    1 => none(why, 1).map(|()| DisbursementPhase::Trying)?,
                    2 => none(why, 2).map(|()| DisbursementPhase::Confirming)?,
                    3 => DisbursementPhase::Cancelling {
                        leg,
                        reason: reason(why)?,
                    },
                    4 => none(why, 4).map(|()| DisbursementPhase::Completed)?,
                    5 => DisbursementPhase::Failed {
                        leg,
                        reason: reason(why)?,
                    },
                    c => return Err(bad("disbursement phase", c)),
                };
                let legs = legs
                    .into_iter()
                    .map(|(to, a)| AccountId::new(to).map(|to| (to, a)))
                    .collect::<Result<Vec<_>, _>>()?;
                let out_of_range = |i: u32| (i as usize) >= legs.len();
                if legs.is_empty() || out_of_range(leg) || answered.iter().any(|&i| out_of_range(i))
                {
                    return Err(format!(
                        "disbursement {id}: leg {leg} or answered {answered:?} of {} legs",
                        legs.len()
                    ));
                }
                SagaRecord::Disbursement(DisbursementRecord {
                    id: TransferId::new(id)?,
                    legs,
                    phase,
                    answered: answered.into_iter().collect(),
                    reference: reference.map(str::to_owned),
                    created_at,
                })
            }
            SagaWire::Leg {
                disbursement_id,
                from,
                amount,
                state,
                reason: why,
            } => SagaRecord::Leg(LegRecord {
                disbursement_id: TransferId::new(disbursement_id)?,
                from: AccountId::new(from)?,
                amount,
                state: match state {
                    1 => none(why, 1).map(|()| LegState::Reserved)?,
                    2 => LegState::Refused(reason(why)?),
                    3 => none(why, 3).map(|()| LegState::Credited)?,
                    4 => none(why, 4).map(|()| LegState::Cancelled)?,
                    c => return Err(bad("leg state", c)),
                },
            }),
        })
    }
}

/// The pending index's value: the sender's account id.
impl Stored for AccountId {
    fn write_wire(&self, out: &mut Vec<u8>) {
        to_postcard(&self.as_str(), out)
    }

    fn read_wire(bytes: &[u8]) -> Result<Self, String> {
        AccountId::new(from_postcard::<&str>(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::{decode, encode, encode_json};
    use std::fmt::Debug;

    fn both_ways<T: Stored + PartialEq + Debug>(v: T) -> usize {
        let bin = encode(&v);
        assert_eq!(decode::<T>(&bin).unwrap(), v, "binary");
        assert_eq!(
            decode::<T>(&encode_json(&v)).unwrap(),
            v,
            "JSON of releases before 0.2"
        );
        bin.len()
    }

    fn entry(kind: EntryKind, transfer: Option<&str>) -> Entry {
        Entry {
            shard: None,
            seq: 118,
            kind,
            amount: 2_500,
            balance: 1_000_413,
            available: 997_913,
            transfer_id: transfer.map(|t| TransferId::new(t).unwrap()),
            reference: Some("rent".into()),
            at: 1_795_983_331_900,
        }
    }

    #[test]
    fn stored_every_record_reads_back_from_both_encodings_and_is_smaller_in_binary() {
        // Proves every record kind, with every kind, status and outcome, round-trips through
        // the binary form and still decodes from the JSON of earlier releases, and that the
        // binary journal entry is under half its JSON size.
        let t = "t_01a228f2d25e044dcc038580f96000d6";
        for kind in EntryKind::ALL {
            both_ways(entry(kind, Some(t)));
        }
        let e = entry(EntryKind::TransferOut, Some(t));
        let bin = both_ways(e.clone());
        assert!(bin * 2 < encode_json(&e).len(), "{bin} bytes");
        for status in [
            AccountStatus::Active,
            AccountStatus::Frozen,
            AccountStatus::Closed,
        ] {
            for shards in [None, Some(2), Some(64)] {
                both_ways(AccountRecord {
                    shards,
                    currency: Currency::new("EUR").unwrap(),
                    status,
                    balance: 10,
                    held: 3,
                    seq: 7,
                    opened_at: 1,
                });
            }
        }
        both_ways(Lease {
            node: "n1".into(),
            epoch: 3,
            nonce: u64::MAX,
        });
        both_ways(AccountId::new("alice").unwrap());
        let tid = TransferId::new(t).unwrap();
        let view = |status, reason| TransferView {
            id: tid.clone(),
            from: AccountId::new("a").unwrap(),
            to: AccountId::new("b").unwrap(),
            amount: 5,
            status,
            reason,
            created_at: 9,
        };
        for reply in [
            StoredReply::Movement(MovementView {
                shard: None,
                id: "a:1".into(),
                account: AccountId::new("a").unwrap(),
                amount: 5,
                balance: 5,
                seq: 1,
            }),
            StoredReply::TransferId(tid.clone()),
            StoredReply::Transfer(view(TransferStatus::Pending, None)),
            StoredReply::Transfer(view(TransferStatus::Completed, None)),
            StoredReply::Transfer(view(
                TransferStatus::Failed,
                Some(ErrorCode::CurrencyMismatch),
            )),
            StoredReply::HoldId(tid.clone()),
            StoredReply::DisbursementId(tid.clone()),
            StoredReply::Capture {
                hold: tid.clone(),
                transfer: TransferId::new("t_2").unwrap(),
            },
        ] {
            both_ways(IdemRecord {
                fingerprint: "transfer|b|5|".into(),
                reply,
            });
        }
        for status in [
            SenderStatus::Holding,
            SenderStatus::Completed,
            SenderStatus::Failed(ErrorCode::AccountFrozen),
        ] {
            both_ways(SagaRecord::Sender {
                transfer_id: tid.clone(),
                to: AccountId::new("b").unwrap(),
                amount: 5,
                status,
                idem_key: Some("k".into()),
                fingerprint: None,
                reference: Some("r".into()),
                created_at: 3,
            });
        }
        for outcome in [
            CreditOutcome::Applied,
            CreditOutcome::Rejected(ErrorCode::BalanceOverflow),
            CreditOutcome::Aborted,
        ] {
            both_ways(SagaRecord::Receiver {
                transfer_id: tid.clone(),
                from: AccountId::new("a").unwrap(),
                amount: 5,
                outcome,
            });
        }
        let cancelled = DisbursementPhase::Cancelling {
            leg: 1,
            reason: ErrorCode::AccountFrozen,
        };
        let failed = DisbursementPhase::Failed {
            leg: 0,
            reason: ErrorCode::TransferAborted,
        };
        for phase in [
            DisbursementPhase::Trying,
            DisbursementPhase::Confirming,
            cancelled,
            DisbursementPhase::Completed,
            failed,
        ] {
            both_ways(SagaRecord::Disbursement(DisbursementRecord {
                id: tid.clone(),
                legs: vec![
                    (AccountId::new("b").unwrap(), 5),
                    (AccountId::new("c").unwrap(), 7),
                ],
                phase,
                answered: [1].into(),
                reference: Some("payroll".into()),
                created_at: 3,
            }));
        }
        for state in [
            LegState::Reserved,
            LegState::Refused(ErrorCode::CurrencyMismatch),
            LegState::Credited,
            LegState::Cancelled,
        ] {
            both_ways(SagaRecord::Leg(LegRecord {
                disbursement_id: tid.clone(),
                from: AccountId::new("a").unwrap(),
                amount: 5,
                state,
            }));
        }
        for (status, capture) in [
            (HoldStatus::Held, None),
            (HoldStatus::Held, Some(2)),
            (HoldStatus::Capturing, Some(5)),
            (HoldStatus::Captured, Some(3)),
            (HoldStatus::Voided, None),
            (HoldStatus::Expired, Some(1)),
        ] {
            both_ways(SagaRecord::Hold(HoldRecord {
                hold_id: tid.clone(),
                to: AccountId::new("b").unwrap(),
                amount: 5,
                status,
                capture: capture.map(|a| (TransferId::new("t_2").unwrap(), a)),
                expires_at: 99,
                reference: Some("room 12".into()),
                created_at: 3,
            }));
        }
    }

    #[test]
    fn stored_unknown_codes_and_trailing_bytes_are_corrupt_not_guessed() {
        // Proves a value that does not parse exactly (an unknown kind code, bytes left over,
        // a truncated record) is reported as corrupt.
        let mut bin = encode(&entry(EntryKind::Deposit, None));
        let mut extra = bin.clone();
        extra.push(0);
        assert!(decode::<Entry>(&extra).is_err());
        assert!(decode::<Entry>(&bin[..bin.len() - 1]).is_err());
        bin[2] = 99; // the kind code follows the version byte and the one-byte seq varint
        assert!(decode::<Entry>(&bin).is_err());
        // A reason where the status carries none, or none where it needs one.
        let receiver = |outcome, reason| {
            let mut out = vec![crate::storage::codec::VALUE_VERSION];
            let w = SagaWire::Receiver {
                transfer_id: "t_1",
                from: "a",
                amount: 5,
                outcome,
                reason,
            };
            to_postcard(&w, &mut out);
            decode::<SagaRecord>(&out)
        };
        assert!(receiver(2, Some("account_frozen")).is_ok());
        assert!(receiver(1, Some("account_frozen")).is_err());
        assert!(receiver(3, Some("account_frozen")).is_err());
        assert!(receiver(2, None).is_err());
        assert!(receiver(2, Some("no_such_code")).is_err());
    }
}
