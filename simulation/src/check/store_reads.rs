//! The operators' reads of the store, checked at each phase end against the ledger the
//! checkers rebuilt from the same snapshot: what `GET /admin/audit`, `GET /admin/accounts`,
//! `GET /admin/pending`, the drain's pending count and the node's first start read is what
//! the store holds, across every page boundary.
//!
//! The snapshot is copied into a fault-free memory store (these reads are judged on what they
//! return, not on how they survive faults: the transaction bodies of the ledger are what the
//! faults are for), and read with the run's page sizes ([`ScanLimits`], drawn small for about
//! half the seeds so that every page boundary is crossed):
//! - the store audit (`audit_scan`: the pending index in pages, every account and its journal
//!   in pages) gives exactly the report the audit checker got from the snapshot, or, when the
//!   run's account cap is below the number of accounts, stops there and says so;
//! - the pending index read with a cap returns its first transfers in id order and whether
//!   more exist;
//! - the account listing, page after page, lists every indexed account with its stored
//!   balance, holds and `seq`, in id order, once;
//! - the pending listing, page after page, lists every pending transfer once, with its sender
//!   and a summary still `pending`; the pending count, in the same pages, counts it up to any
//!   limit;
//! - every account's transfer list names exactly the transfers it holds a record of (a sender
//!   at the transfer's creation), and reads page after page, whole and filtered by status,
//!   newest first;
//! - the store's identity is written by the first start and kept by every later one.
//!
//! Runs only after the audit checker passed (a listing asserts what the audit reports).

use super::audit::{feed_pending, report};
use crate::ledger::Ledger;
use node::ledger::account::MOVE_PREFIX;
use node::ledger::audit::Auditor;
use node::ledger::audit_scan::{self, ScanEnd, ScanLimits};
use node::ledger::exec;
use node::ledger::records::SagaRecord;
use node::storage::keys::{listed_rank, Keys};
use node::storage::memory::MemoryBackend;
use node::storage::{StorageError, Store};
use protocol::admin::{AuditReport, CheckStatus};
use protocol::api::{TransferStatus, TransferView};
use protocol::ids::SHARD_SEPARATOR;
use protocol::AccountId;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Rows written per transaction when the snapshot is copied.
const COPY_ROWS_PER_TXN: usize = 500;

/// Checks the operators' reads of `snapshot`, whose decoded form is `ledger`.
pub fn check(
    snapshot: &BTreeMap<Vec<u8>, Vec<u8>>,
    ledger: &Ledger,
    quiescent: bool,
    limits: &ScanLimits,
) -> Result<(), String> {
    let keys = Keys::default();
    let store = copy(snapshot).map_err(|e| format!("copying the snapshot: {e}"))?;
    audit(&store, &keys, ledger, quiescent, limits)?;
    accounts(&store, &keys, ledger, limits.accounts_page)
        .map_err(|e| format!("account listing: {e}"))??;
    pending(&store, &keys, ledger, limits.pending_page)
        .map_err(|e| format!("pending listing: {e}"))??;
    transfer_lists(ledger)?;
    transfer_list_pages(&store, &keys, ledger, limits.entries_page)
        .map_err(|e| format!("transfer lists: {e}"))??;
    identity(&store, &keys).map_err(|e| format!("store identity: {e}"))?
}

/// A fault-free store holding `snapshot`.
fn copy(snapshot: &BTreeMap<Vec<u8>, Vec<u8>>) -> Result<Store, StorageError> {
    let store = Store::new(Arc::new(MemoryBackend::new()));
    let rows: Vec<_> = snapshot.iter().collect();
    for chunk in rows.chunks(COPY_ROWS_PER_TXN) {
        store.run(|txn| {
            for (k, v) in chunk {
                txn.set(k, v)?;
            }
            Ok(())
        })?;
    }
    Ok(store)
}

/// The store audit against the snapshot's audit.
fn audit(
    store: &Store,
    keys: &Keys,
    ledger: &Ledger,
    quiescent: bool,
    limits: &ScanLimits,
) -> Result<(), String> {
    let expected = report(ledger, quiescent)?;
    let n = ledger.pending.len();
    let err = |e: StorageError| format!("store audit: {e}");
    // Capped: its first transfers, and `more`; in one page, and across pages (a cap that
    // ends inside a page).
    for cap in [limits.pending_page.min(n + 1), n / 2 + 1] {
        let (first, more) = audit_scan::pending_ids(store, keys, limits, cap).map_err(err)?;
        let want: Vec<&String> = ledger.pending.keys().take(cap).collect();
        let got: Vec<&str> = first.iter().map(|t| t.as_str()).collect();
        if got != want || more != (n > cap) {
            return Err(format!(
                "the pending index read with a cap of {cap} gave {got:?} (more: {more}); it holds {n}, first {want:?}"
            ));
        }
    }
    let mut au = Auditor::new();
    let (mut ids, more) = audit_scan::pending_ids(store, keys, limits, n + 1).map_err(err)?;
    let d = ledger.disbursing.len();
    let (disbursing, more_d) =
        audit_scan::open_disbursement_ids(store, keys, limits, d + 1).map_err(err)?;
    let want: Vec<&String> = ledger.disbursing.keys().collect();
    let got_d: Vec<&str> = disbursing.iter().map(|t| t.as_str()).collect();
    if got_d != want || more_d {
        return Err(format!(
            "the index of disbursements read in pages gave {got_d:?} (more: {more_d}); it holds {want:?}"
        ));
    }
    ids.extend(disbursing.iter().cloned());
    feed_pending(&mut au, ids, more, quiescent);
    au.set_disbursements(disbursing);
    // The open holds, read in pages as the route reads them: the index, in expiry order.
    let h = ledger.holds_due.len();
    let (holds, more) = audit_scan::open_hold_ids(store, keys, limits, h + 1).map_err(err)?;
    let want: Vec<&str> = ledger.holds_due.keys().map(|(_, id)| id.as_str()).collect();
    let got_ids: Vec<&str> = holds.iter().map(|t| t.as_str()).collect();
    if got_ids != want || more {
        return Err(format!(
            "the index of holds by expiry read in pages gave {got_ids:?} (more: {more}); it holds {want:?}"
        ));
    }
    au.set_pending(holds);
    let end = audit_scan::scan(store, keys, limits, &mut au).map_err(err)?;
    let got = au.finish();
    let indexed = ledger.accounts.values().filter(|a| a.indexed).count();
    if indexed > limits.accounts_max {
        if end != ScanEnd::AccountsMaxReached || got.accounts != limits.accounts_max as u64 {
            return Err(format!(
                "the store audit capped at {} of {indexed} accounts ended {end:?} after {} accounts",
                limits.accounts_max, got.accounts
            ));
        }
    } else if end != ScanEnd::Complete || got != expected {
        return Err(format!(
            "the store audit ({end:?}) disagrees with the snapshot's: {} against {}",
            summary(&got),
            summary(&expected)
        ));
    }
    Ok(())
}

/// A report in one line: its counts, failed checks and first violation.
fn summary(r: &AuditReport) -> String {
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.check.as_str())
        .collect();
    format!(
        "ok {} ({} accounts, {} entries, {} transfers; failed {failed:?}; first {:?})",
        r.ok,
        r.accounts,
        r.entries,
        r.transfers,
        r.violations.first().map(|v| &v.message)
    )
}

/// The account listing, page by page, against the stored states.
fn accounts(
    store: &Store,
    keys: &Keys,
    ledger: &Ledger,
    page: usize,
) -> Result<Result<(), String>, StorageError> {
    let want: Vec<(String, u64, u64, u64)> = ledger
        .accounts
        .iter()
        .filter(|(_, a)| a.indexed)
        .filter_map(|(id, a)| a.state().map(|s| (id.clone(), s.balance, s.held, s.seq)))
        .collect();
    let mut got = Vec::new();
    let mut after: Option<AccountId> = None;
    // One page per `page` accounts, and one to find the end.
    for _ in 0..=want.len().div_ceil(page) {
        let (views, next) = exec::read_accounts(store, keys, after.as_ref(), page)?;
        if views.is_empty() && after.is_some() {
            return Ok(Err(format!(
                "a page of {page} accounts pointed past {after:?}, where none are left"
            )));
        }
        got.extend(
            views
                .iter()
                .map(|v| (v.id.as_str().to_owned(), v.balance, v.held, v.seq)),
        );
        match next {
            None => break,
            Some(n) => after = Some(n),
        }
    }
    Ok(if got == want {
        Ok(())
    } else {
        Err(format!(
            "pages of {page} list {got:?}; the store holds {want:?}"
        ))
    })
}

/// Every account's transfer list names exactly the transfers it holds a record of (both are
/// written in one transaction; holds and disbursements are not transfers, captures are),
/// each at the
/// transfer's creation and with its sender, on both sides.
fn transfer_lists(ledger: &Ledger) -> Result<(), String> {
    // A sharded account's list is its shards' records (moves between them are not listed).
    let mut recorded: BTreeMap<&str, BTreeSet<&String>> = BTreeMap::new();
    for (id, a) in &ledger.accounts {
        let public = id.split(SHARD_SEPARATOR).next().unwrap_or(id);
        let mine = recorded.entry(public).or_default();
        mine.extend(
            a.sagas
                .iter()
                .filter(|(t, r)| {
                    matches!(r, SagaRecord::Sender { .. } | SagaRecord::Receiver { .. })
                        && !t.starts_with(MOVE_PREFIX)
                })
                .map(|(t, _)| t),
        );
    }
    for (id, a) in &ledger.accounts {
        let listed: BTreeSet<&String> = a.listed.keys().collect();
        let empty = BTreeSet::new();
        let recorded = match id.contains(SHARD_SEPARATOR) {
            true => &empty,
            false => recorded.get(id.as_str()).unwrap_or(&empty),
        };
        if listed != *recorded {
            return Err(format!(
                "the transfer list of {id} names {listed:?}; it and its shards hold records of {recorded:?}"
            ));
        }
        for (t, (rank, sender)) in &a.listed {
            let Some(view) = ledger.transfers.get(t) else {
                return Err(format!("{id} lists {t}, which has no sender record"));
            };
            if (*rank, sender.as_str()) != (listed_rank(view.created_at), view.from.as_str()) {
                return Err(format!(
                    "{id} lists {t} at rank {rank} from {sender}, not at its creation ({}) from {}",
                    view.created_at, view.from
                ));
            }
        }
    }
    Ok(())
}

/// Each opened account's transfer list read page by page, whole and by each status, newest
/// first by creation time (ties in id order), against the records the ledger holds; the
/// filtered reads scan a few rows per request, so pages end short with a cursor.
fn transfer_list_pages(
    store: &Store,
    keys: &Keys,
    ledger: &Ledger,
    page: usize,
) -> Result<Result<(), String>, StorageError> {
    for (id, a) in ledger.accounts.iter().filter(|(_, a)| a.state().is_some()) {
        let account = AccountId::new(id.clone()).expect("stored ids are valid");
        let mut order: Vec<&TransferView> = a
            .listed
            .keys()
            .filter_map(|t| ledger.transfers.get(t))
            .collect();
        order.sort_by(|x, y| {
            (std::cmp::Reverse(x.created_at), x.id.as_str())
                .cmp(&(std::cmp::Reverse(y.created_at), y.id.as_str()))
        });
        let statuses = [
            None,
            Some(TransferStatus::Pending),
            Some(TransferStatus::Completed),
            Some(TransferStatus::Failed),
        ];
        for status in statuses {
            let want: Vec<TransferView> = order
                .iter()
                .filter(|v| status.is_none_or(|s| v.status == s))
                .map(|v| (*v).clone())
                .collect();
            let scan = if status.is_some() { page + 1 } else { page };
            let mut got = Vec::new();
            let mut after = None;
            // At most one request per listed transfer, and one to find the end.
            for _ in 0..=order.len() {
                let Some(p) =
                    exec::list_transfers(store, keys, &account, status, after, page, scan)?
                else {
                    return Ok(Err(format!("the list of opened account {id} is not found")));
                };
                got.extend(p.transfers);
                match p.next_after {
                    None => break,
                    Some(c) => after = exec::decode_list_cursor(&c),
                }
            }
            if got != want {
                return Ok(Err(format!(
                    "pages of {page} of {id}'s list ({status:?}) give {:?}; its records are {:?}",
                    got.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.id.as_str()).collect::<Vec<_>>()
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// The pending listing, page by page, and the pending count, against the pending index.
fn pending(
    store: &Store,
    keys: &Keys,
    ledger: &Ledger,
    page: usize,
) -> Result<Result<(), String>, StorageError> {
    let want: Vec<(String, String)> = ledger
        .pending
        .iter()
        .map(|(t, s)| (t.clone(), s.clone()))
        .collect();
    let mut got = Vec::new();
    for _ in 0..=want.len().div_ceil(page) {
        let after = got.last().map(|(t, _): &(String, String)| t.clone());
        let (rows, more) = exec::read_pending(store, keys, after.as_deref(), page)?;
        if rows.is_empty() && after.is_some() {
            return Ok(Err(format!(
                "a page of {page} pending transfers said more exist after {after:?}; none do"
            )));
        }
        for (view, sender) in rows {
            if view.status != TransferStatus::Pending {
                return Ok(Err(format!(
                    "{} is in the pending index with a {:?} summary",
                    view.id, view.status
                )));
            }
            got.push((view.id.as_str().to_owned(), sender.as_str().to_owned()));
        }
        if !more {
            break;
        }
    }
    if got != want {
        return Ok(Err(format!(
            "pages of {page} list {got:?}; the index holds {want:?}"
        )));
    }
    let n = want.len();
    for limit in [0, 1, page, n / 2 + 1, n, n + 1] {
        let count = exec::count_pending(store, keys, limit, page)?;
        if count != n.min(limit) as u64 {
            return Ok(Err(format!(
                "counted {count} pending transfers up to {limit}; the index holds {n}"
            )));
        }
    }
    Ok(Ok(()))
}

/// The first start writes the store's identity; a later one reads it back.
fn identity(store: &Store, keys: &Keys) -> Result<Result<(), String>, StorageError> {
    let first = exec::store_identity(store, keys, "first start")?;
    let again = exec::store_identity(store, keys, "second start")?;
    Ok(
        if (first.as_str(), again.as_str()) == ("first start", "first start") {
            Ok(())
        } else {
            Err(format!(
                "the first start got identity {first:?}, the second {again:?}"
            ))
        },
    )
}
