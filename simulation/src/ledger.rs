//! What the store holds, as the checkers see it: every committed write, decoded, kept in a
//! mirror of the store and in per-account and per-transfer views with their history.
//!
//! The mirror is built only from observed commits; at the end of each phase it is compared
//! byte for byte with the store's own snapshot, so a write the observer missed is caught too.

use crate::store::{RawCommit, Writer};
use cluster_config::EventType;
use foundationdb_tuple::Element;
use node::ledger::records::{
    AccountRecord, DisbursementRecord, HoldRecord, IdemRecord, Lease, SagaRecord,
};
use node::storage::codec::decode;
use protocol::api::{Entry, HoldStatus, TransferStatus, TransferView};
use protocol::AccountId;
use std::collections::{BTreeMap, BTreeSet};

/// One decoded write.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    /// `("acct", id, "state")`.
    State(String, Option<AccountRecord>),
    /// `("acct", id, "lease")`.
    Lease(String, Option<Lease>),
    /// `("acct", id, "jrnl", seq)`.
    Journal(String, u64, Option<Entry>),
    /// `("acct", id, "idem", key)`.
    Idem(String, String, Option<IdemRecord>),
    /// `("saga", transfer_id, id)`: account, transfer, record (a sender's is also the
    /// transfer's summary, kept in [`Ledger::transfers`]).
    Saga(String, String, Option<SagaRecord>),
    /// `("acct", id, "open", transfer_id)`.
    Open(String, String, bool),
    /// `("acct", shard, "moving", transfer_id)`: a move of a shard's money in flight.
    Moving(String, String, bool),
    /// `("accts", id)`.
    Index(String, bool),
    /// `("pending", transfer_id)` and the sender.
    Pending(String, Option<String>),
    /// `("acct", id, "xfers", rank, transfer_id)` and the transfer's sender: the account's
    /// transfer list.
    Listed(String, u64, String, Option<String>),
    /// `("holds", expires_at, hold_id)` and the payer: the index of open holds by expiry.
    HoldDue(u64, String, Option<String>),
    /// `("disbs", disbursement_id)` and the payer: the index of unsettled disbursements.
    Disbursing(String, Option<String>),
    /// `("outbox", webhook, id, seq, kind, record_id)`: a webhook event (the simulation has
    /// one webhook, and nothing delivers its events): account, seq, its event id, and its
    /// value (`None`: deleted).
    Outbox(String, u64, String, Option<Vec<u8>>),
}

/// A decoded commit with its place in the global commit order.
#[derive(Clone, Debug)]
pub struct Commit {
    /// 1-based position in commit order.
    pub seq: u64,
    /// Simulated time.
    pub at_ms: u64,
    /// Who wrote it (several activations for a group commit), each with its account's lease
    /// at commit time.
    pub writers: Vec<(Writer, Option<Lease>)>,
    /// The writes.
    pub rows: Vec<Row>,
}

/// Decodes a key and value written by the node's key layout.
pub fn decode_row(key: &[u8], value: Option<&[u8]>) -> Result<Row, String> {
    let elems = match foundationdb_tuple::unpack::<Element>(key) {
        Ok(Element::Tuple(v)) => v,
        Ok(other) => vec![other],
        Err(e) => return Err(format!("undecodable key {key:?}: {e}")),
    };
    let s = |i: usize| match elems.get(i) {
        Some(Element::String(s)) => Some(s.to_string()),
        _ => None,
    };
    let dec = |what: &str| format!("bad {what} key {elems:?}");
    macro_rules! val {
        ($t:ty) => {
            match value {
                Some(v) => Some(decode::<$t>(v).map_err(|e| e.to_string())?),
                None => None,
            }
        };
    }
    let row = match (s(0).as_deref(), elems.len()) {
        (Some("acct"), 3) => {
            let id = s(1).ok_or("account id")?;
            match s(2).as_deref() {
                Some("state") => Row::State(id, val!(AccountRecord)),
                Some("lease") => Row::Lease(id, val!(Lease)),
                _ => return Err(dec("account")),
            }
        }
        (Some("acct"), 4) => {
            let id = s(1).ok_or("account id")?;
            match (s(2).as_deref(), elems.get(3)) {
                (Some("jrnl"), Some(Element::Int(seq))) => {
                    Row::Journal(id, *seq as u64, val!(Entry))
                }
                (Some("idem"), Some(Element::String(k))) => {
                    Row::Idem(id, k.to_string(), val!(IdemRecord))
                }
                (Some("open"), Some(Element::String(t))) => {
                    Row::Open(id, t.to_string(), value.is_some())
                }
                (Some("moving"), Some(Element::String(t))) => {
                    Row::Moving(id, t.to_string(), value.is_some())
                }
                _ => return Err(dec("account")),
            }
        }
        (Some("acct"), 5) => match (s(2).as_deref(), elems.get(3), s(4)) {
            (Some("xfers"), Some(Element::Int(rank)), Some(t)) => {
                let id = s(1).ok_or("account id")?;
                Row::Listed(id, *rank as u64, t, val!(AccountId).map(String::from))
            }
            _ => return Err(dec("account")),
        },
        (Some("accts"), 2) => Row::Index(s(1).ok_or("account id")?, value.is_some()),
        (Some("saga"), 3) => Row::Saga(
            s(2).ok_or("account id")?,
            s(1).ok_or("transfer id")?,
            val!(SagaRecord),
        ),
        (Some("holds"), 3) => match (elems.get(1), s(2)) {
            (Some(Element::Int(at)), Some(h)) => {
                Row::HoldDue(*at as u64, h, val!(AccountId).map(String::from))
            }
            _ => return Err(dec("hold index")),
        },
        (Some("disbs"), 2) => Row::Disbursing(
            s(1).ok_or("disbursement id")?,
            val!(AccountId).map(String::from),
        ),
        (Some("outbox"), 6) => match (s(2), elems.get(3), elems.get(4), s(5)) {
            (Some(id), Some(Element::Int(seq)), Some(Element::Int(kind)), Some(record)) => {
                let ty = *EventType::ALL
                    .get(*kind as usize)
                    .ok_or_else(|| dec("outbox kind"))?;
                let event = if record.is_empty() {
                    format!("entry:{id}:{seq}")
                } else {
                    format!("{ty}:{record}")
                };
                Row::Outbox(id, *seq as u64, event, value.map(<[u8]>::to_vec))
            }
            _ => return Err(dec("outbox")),
        },
        (Some("pending"), 2) => Row::Pending(
            s(1).ok_or("transfer id")?,
            val!(AccountId).map(String::from),
        ),
        _ => return Err(dec("unknown")),
    };
    Ok(row)
}

/// One account as stored.
#[derive(Clone, Debug, Default)]
pub struct AccountObs {
    /// Every state the account had, with the commit that wrote it (oldest first).
    pub states: Vec<(u64, AccountRecord)>,
    /// The lease.
    pub lease: Option<Lease>,
    /// The journal: entry and the commit that wrote it.
    pub journal: BTreeMap<u64, (Entry, u64)>,
    /// Idempotency records.
    pub idem: BTreeMap<String, IdemRecord>,
    /// The commit that first wrote each idempotency record.
    pub idem_at: BTreeMap<String, u64>,
    /// Saga records by transfer id.
    pub sagas: BTreeMap<String, SagaRecord>,
    /// Open sender sagas.
    pub open: BTreeSet<String>,
    /// Moves of this shard's money to a sibling, marked in flight.
    pub moving: BTreeSet<String>,
    /// The transfer list: transfer id to rank (newest first by rank) and sender.
    pub listed: BTreeMap<String, (u64, String)>,
    /// Listed in the account index.
    pub indexed: bool,
}

impl AccountObs {
    /// The current state.
    pub fn state(&self) -> Option<&AccountRecord> {
        self.states.last().map(|(_, r)| r)
    }
}

/// The store as observed.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Raw mirror of every key.
    pub mirror: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Accounts (including never-opened ones that hold receiver records).
    pub accounts: BTreeMap<String, AccountObs>,
    /// Transfer summaries.
    pub transfers: BTreeMap<String, TransferView>,
    /// Pending index: transfer id to sender.
    pub pending: BTreeMap<String, String>,
    /// The commit that settled each transfer (its summary left `pending`).
    pub settled_at: BTreeMap<String, u64>,
    /// The commit that first wrote each transfer's summary.
    pub created_at: BTreeMap<String, u64>,
    /// Holds by id: the payer and the record.
    pub holds: BTreeMap<String, (String, HoldRecord)>,
    /// Each hold's statuses, with the commit that wrote each (oldest first).
    pub hold_history: BTreeMap<String, Vec<(u64, HoldStatus)>>,
    /// The transfer of every capture, to its hold.
    pub captures: BTreeMap<String, String>,
    /// The index of open holds by expiry: (expires_at, hold) to payer.
    pub holds_due: BTreeMap<(u64, String), String>,
    /// Disbursements by id: the payer and the record.
    pub disbursements: BTreeMap<String, (String, DisbursementRecord)>,
    /// The commits that first wrote, and settled, each disbursement.
    pub disbursement_commits: BTreeMap<String, (u64, Option<u64>)>,
    /// The index of unsettled disbursements: id to payer.
    pub disbursing: BTreeMap<String, String>,
    /// The webhook outbox: event id to the account (its stored id), the seq it is at, and
    /// its value.
    pub outbox: BTreeMap<String, (String, u64, Vec<u8>)>,
    /// Commits applied.
    pub commits: u64,
    /// Per account, batches with two commands that set its status (open, freeze, unfreeze),
    /// marked at twice the commit count when they ran, plus one (a reply from inside such a
    /// batch may show a status no stored state has).
    pub mixed_status: BTreeMap<String, BTreeSet<u64>>,
}

impl Ledger {
    /// The open holds (`held` or `capturing`), by id.
    pub fn open_holds(&self) -> impl Iterator<Item = (&String, &(String, HoldRecord))> {
        self.holds.iter().filter(|(_, (_, h))| h.status.is_open())
    }

    /// True when a hold is open or a transfer or disbursement pending: the run is not
    /// settled yet.
    pub fn unsettled(&self) -> bool {
        !self.pending.is_empty()
            || !self.disbursing.is_empty()
            || self.open_holds().next().is_some()
    }

    /// Decodes a raw commit as the next one in commit order.
    pub fn decode(&self, raw: &RawCommit, at_ms: u64) -> Result<Commit, String> {
        let mut rows = Vec::with_capacity(raw.writes.len());
        for (k, v) in &raw.writes {
            rows.push(decode_row(k, v.as_deref())?);
        }
        Ok(Commit {
            seq: self.commits + 1,
            at_ms,
            writers: raw.writers.clone(),
            rows,
        })
    }

    /// Applies a decoded commit and its raw writes.
    pub fn apply(&mut self, commit: &Commit, raw: &[(Vec<u8>, Option<Vec<u8>>)]) {
        for (k, v) in raw {
            match v {
                Some(v) => self.mirror.insert(k.clone(), v.clone()),
                None => self.mirror.remove(k),
            };
        }
        self.commits = commit.seq;
        for row in &commit.rows {
            self.apply_row(commit.seq, row);
        }
    }

    fn apply_row(&mut self, seq: u64, row: &Row) {
        match row {
            Row::State(id, Some(r)) => self
                .accounts
                .entry(id.clone())
                .or_default()
                .states
                .push((seq, r.clone())),
            Row::State(id, None) => panic!("state of {id} removed"),
            Row::Lease(id, l) => self.accounts.entry(id.clone()).or_default().lease = l.clone(),
            Row::Journal(id, s, Some(e)) => {
                self.accounts
                    .entry(id.clone())
                    .or_default()
                    .journal
                    .insert(*s, (e.clone(), seq));
            }
            Row::Journal(id, s, None) => {
                self.accounts
                    .entry(id.clone())
                    .or_default()
                    .journal
                    .remove(s);
            }
            Row::Idem(id, k, r) => {
                let a = self.accounts.entry(id.clone()).or_default();
                match r {
                    Some(r) => {
                        a.idem_at.entry(k.clone()).or_insert(seq);
                        a.idem.insert(k.clone(), r.clone())
                    }
                    None => a.idem.remove(k),
                };
            }
            Row::Saga(id, t, r) => {
                let a = self.accounts.entry(id.clone()).or_default();
                match r {
                    Some(r) => a.sagas.insert(t.clone(), r.clone()),
                    None => a.sagas.remove(t),
                };
                let from = AccountId::new(id.clone()).expect("stored account ids are valid");
                if let Some(SagaRecord::Disbursement(d)) = r {
                    let at = self
                        .disbursement_commits
                        .entry(t.clone())
                        .or_insert((seq, None));
                    if !d.is_open() && at.1.is_none() {
                        at.1 = Some(seq);
                    }
                    self.disbursements
                        .insert(t.clone(), (id.clone(), d.clone()));
                }
                if let Some(SagaRecord::Hold(h)) = r {
                    if let Some((c, _)) = &h.capture {
                        self.captures.insert(c.as_str().to_owned(), t.clone());
                    }
                    let history = self.hold_history.entry(t.clone()).or_default();
                    if history.last().map(|(_, s)| *s) != Some(h.status) {
                        history.push((seq, h.status));
                    }
                    self.holds.insert(t.clone(), (id.clone(), h.clone()));
                }
                if let Some(v) = r.as_ref().and_then(|r| r.view(&from)) {
                    self.created_at.entry(t.clone()).or_insert(seq);
                    if v.status != TransferStatus::Pending {
                        self.settled_at.entry(t.clone()).or_insert(seq);
                    }
                    self.transfers.insert(t.clone(), v);
                }
            }
            Row::Open(id, t, on) => {
                let a = self.accounts.entry(id.clone()).or_default();
                if *on {
                    a.open.insert(t.clone());
                } else {
                    a.open.remove(t);
                }
            }
            Row::Moving(id, t, on) => {
                let a = self.accounts.entry(id.clone()).or_default();
                if *on {
                    a.moving.insert(t.clone());
                } else {
                    a.moving.remove(t);
                }
            }
            Row::Index(id, on) => self.accounts.entry(id.clone()).or_default().indexed = *on,
            Row::Listed(id, rank, t, sender) => {
                let a = self.accounts.entry(id.clone()).or_default();
                match sender {
                    Some(s) => a.listed.insert(t.clone(), (*rank, s.clone())),
                    None => a.listed.remove(t),
                };
            }
            Row::Pending(t, s) => {
                match s {
                    Some(s) => self.pending.insert(t.clone(), s.clone()),
                    None => self.pending.remove(t),
                };
            }
            Row::Disbursing(d, payer) => {
                match payer {
                    Some(p) => self.disbursing.insert(d.clone(), p.clone()),
                    None => self.disbursing.remove(d),
                };
            }
            Row::Outbox(id, seq, event, value) => {
                match value {
                    Some(v) => self
                        .outbox
                        .insert(event.clone(), (id.clone(), *seq, v.clone())),
                    None => self.outbox.remove(event),
                };
            }
            Row::HoldDue(at, h, payer) => {
                let k = (*at, h.clone());
                match payer {
                    Some(p) => self.holds_due.insert(k, p.clone()),
                    None => self.holds_due.remove(&k),
                };
            }
        }
    }

    /// A ledger built from a store snapshot (each account's history is just its current state).
    pub fn from_snapshot(snapshot: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Ledger, String> {
        let mut ledger = Ledger::default();
        let raw: Vec<(Vec<u8>, Option<Vec<u8>>)> = snapshot
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let commit = ledger.decode(
            &RawCommit {
                writers: Vec::new(),
                writes: raw.clone(),
            },
            0,
        )?;
        ledger.apply(&commit, &raw);
        Ok(ledger)
    }
}
