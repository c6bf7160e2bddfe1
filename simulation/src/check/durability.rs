//! Acknowledged means durable (DESIGN.md 6.7): what a client was told succeeded is in the
//! store when the reply arrives, and still there, unchanged, at every later phase end, across
//! every crash (nodes lose their memory; the store keeps what it committed).

use super::{Check, ReplyCtx};
use crate::ledger::Ledger;
use crate::workload::{ClientResult, OpSpec};
use node::ledger::account::Reply;
use protocol::api::{Entry, EntryKind, HoldStatus, HoldView, TransferStatus};

/// Every acknowledged effect, to re-check later.
#[derive(Default)]
pub struct Durability {
    acked: Vec<Acked>,
}

enum Acked {
    Entry {
        account: String,
        entry: Entry,
    },
    Account {
        account: String,
    },
    Transfer {
        id: String,
    },
    /// A hold, and the status it was acknowledged in when that status was final.
    Hold {
        id: String,
        settled: Option<HoldStatus>,
    },
    /// A disbursement, and the status it was acknowledged in when settled.
    Disbursement {
        id: String,
        settled: Option<TransferStatus>,
    },
}

fn present(ledger: &Ledger, a: &Acked) -> Result<(), String> {
    match a {
        Acked::Entry { account, entry } => {
            match ledger
                .accounts
                .get(account)
                .and_then(|x| x.journal.get(&entry.seq))
            {
                Some((stored, _)) if stored == entry => Ok(()),
                Some((stored, _)) => Err(format!(
                    "{account} entry {} acknowledged as {entry:?}, stored as {stored:?}",
                    entry.seq
                )),
                None => Err(format!(
                    "{account} entry {} was acknowledged but is not stored",
                    entry.seq
                )),
            }
        }
        Acked::Account { account } => match ledger.accounts.get(account).and_then(|x| x.state()) {
            Some(_) => Ok(()),
            None => Err(format!(
                "account {account} was acknowledged as opened but is not stored"
            )),
        },
        Acked::Hold { id, settled } => match (ledger.holds.get(id), settled) {
            (Some((_, h)), Some(s)) if h.status != *s => Err(format!(
                "hold {id} was acknowledged {s:?} but is stored {:?}",
                h.status
            )),
            (Some(_), _) => Ok(()),
            (None, _) => Err(format!("hold {id} was acknowledged but is not stored")),
        },
        Acked::Disbursement { id, settled } => {
            let stored = ledger.disbursements.get(id).map(|(p, d)| {
                d.view(&protocol::AccountId::new(p.clone()).expect("stored ids are valid"))
            });
            match (stored, settled) {
                (Some(v), Some(s)) if v.status != *s => Err(format!(
                    "disbursement {id} was acknowledged {s:?} but is stored {:?}",
                    v.status
                )),
                (Some(_), _) => Ok(()),
                (None, _) => Err(format!(
                    "disbursement {id} was acknowledged but is not stored"
                )),
            }
        }
        Acked::Transfer { id } => match ledger.transfers.get(id) {
            Some(_) => Ok(()),
            None => Err(format!("transfer {id} was acknowledged but is not stored")),
        },
    }
}

impl Check for Durability {
    fn name(&self) -> &'static str {
        "acknowledged means durable (DESIGN.md 6.7)"
    }

    fn on_reply(&mut self, ctx: &ReplyCtx<'_>) -> Result<(), String> {
        let ClientResult::Reply(Ok(reply)) = ctx.result else {
            return Ok(());
        };
        let account = ctx.op.account.as_str().to_owned();
        let acked = match reply {
            Reply::Movement(m) => {
                let Some((entry, _)) = ctx
                    .ledger
                    .accounts
                    .get(&account)
                    .and_then(|a| a.journal.get(&m.seq))
                else {
                    return Err(format!(
                        "{account} entry {} was acknowledged but is not stored",
                        m.seq
                    ));
                };
                if !matches!(entry.kind, EntryKind::Deposit | EntryKind::Withdrawal) {
                    return Err(format!(
                        "{account} entry {} acknowledged as a movement is a {:?}",
                        m.seq, entry.kind
                    ));
                }
                Acked::Entry {
                    account,
                    entry: entry.clone(),
                }
            }
            Reply::Account { created: true, .. } => Acked::Account { account },
            Reply::Transfer(t) => Acked::Transfer {
                id: t.id.as_str().to_owned(),
            },
            Reply::Account { .. } => return Ok(()),
            Reply::Hold(h) => acked_hold(h),
            Reply::Disbursement(d) => Acked::Disbursement {
                id: d.id.as_str().to_owned(),
                settled: (d.status != TransferStatus::Pending).then_some(d.status),
            },
            Reply::Capture { hold, transfer } => {
                let t = Acked::Transfer {
                    id: transfer.id.as_str().to_owned(),
                };
                present(ctx.ledger, &t)?;
                self.acked.push(t);
                acked_hold(hold)
            }
        };
        present(ctx.ledger, &acked)?;
        self.acked.push(acked);
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        _quiescent: bool,
    ) -> Result<(), String> {
        for a in &self.acked {
            present(ledger, a)?;
        }
        Ok(())
    }
}

fn acked_hold(h: &HoldView) -> Acked {
    Acked::Hold {
        id: h.id.as_str().to_owned(),
        settled: (!h.status.is_open()).then_some(h.status),
    }
}
