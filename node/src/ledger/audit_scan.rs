//! Feeds the [`Auditor`] from the store, in pages: the driver behind `GET /admin/audit`.
//!
//! Blocking (every call reads storage): run it on a blocking thread. Each page is its own short
//! read transaction (FoundationDB allows 5 s), so a large ledger is read while it may still
//! change, the way `walletctl audit` reads it over HTTP: accounts in id order, each account's
//! journal up to the `seq` it was listed at (the auditor ignores entries written later).
//!
//! Accounts are read as raw records rather than through `exec::read_accounts`, whose view
//! asserts that holds never exceed the balance: a record that breaks that is what an audit
//! must report, not a reason to stop. An account in the index without a stored state is
//! reported too. Journals are read with `exec::read_entries`, the history route's own reader.
//!
//! Left out on purpose: a snapshot of the whole ledger (no transaction may last that long), so
//! a transfer that starts or settles while the scan runs may be seen with part of its legs;
//! the audit is meant for a quiet ledger. The auditor's memory grows with accounts and
//! transfers, so one scan audits at most [`AUDIT_ACCOUNTS_MAX`] accounts.

use super::audit::Auditor;
use super::exec;
use super::records::AccountRecord;
use crate::storage::codec::decode;
use crate::storage::keys::Keys;
use crate::storage::{StorageError, Store};
use protocol::admin::AuditCheck;
use protocol::api::AccountView;
use protocol::{AccountId, TransferId};

/// Accounts read per storage transaction.
pub const AUDIT_ACCOUNTS_PAGE: usize = 1_000;

/// Journal entries read per storage transaction.
pub const AUDIT_ENTRIES_PAGE: usize = 1_000;

/// Pending-index entries read per storage transaction.
pub const AUDIT_PENDING_PAGE: usize = 1_000;

/// Most accounts one scan audits (the auditor keeps a small trace per account and transfer).
pub const AUDIT_ACCOUNTS_MAX: usize = 1_000_000;

/// Page sizes and the account cap of one scan; the node uses [`ScanLimits::default`] (the
/// constants above), the simulator small pages so that every page boundary is crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanLimits {
    /// Accounts read per storage transaction.
    pub accounts_page: usize,
    /// Journal entries read per storage transaction.
    pub entries_page: usize,
    /// Pending-index entries read per storage transaction.
    pub pending_page: usize,
    /// Most accounts one scan audits.
    pub accounts_max: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            accounts_page: AUDIT_ACCOUNTS_PAGE,
            entries_page: AUDIT_ENTRIES_PAGE,
            pending_page: AUDIT_PENDING_PAGE,
            accounts_max: AUDIT_ACCOUNTS_MAX,
        }
    }
}

/// How a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every account was audited.
    Complete,
    /// `accounts_max` accounts were audited and more exist: the report would be partial.
    AccountsMaxReached,
}

/// Reads up to `max` ids in pages of `limits.pending_page`, each page read by `page(after,
/// want)` (the ids after `after`, in order, and whether more exist); true when more exist.
fn paged_ids(
    limits: &ScanLimits,
    max: usize,
    mut page: impl FnMut(Option<&TransferId>, usize) -> Result<(Vec<TransferId>, bool), StorageError>,
) -> Result<(Vec<TransferId>, bool), StorageError> {
    let mut ids: Vec<TransferId> = Vec::new();
    for _ in 0..max.div_ceil(limits.pending_page) {
        let want = (max - ids.len()).min(limits.pending_page);
        let (got, more) = page(ids.last(), want)?;
        ids.extend(got);
        if !more {
            return Ok((ids, false));
        }
    }
    Ok((ids, true))
}

/// Reads up to `max` transfer ids of the pending index, in id order, in pages of
/// `limits.pending_page`; true when more exist.
pub fn pending_ids(
    store: &Store,
    keys: &Keys,
    limits: &ScanLimits,
    max: usize,
) -> Result<(Vec<TransferId>, bool), StorageError> {
    paged_ids(limits, max, |after, want| {
        store.read(|txn| {
            let (begin, end) = keys.pending_after(after.map(TransferId::as_str));
            // One more than asked tells whether more exist.
            let rows = txn.get_range(&begin, &end, want + 1)?;
            let more = rows.len() > want;
            let mut page = Vec::with_capacity(want.min(rows.len()));
            for (k, _) in rows.iter().take(want) {
                let raw = keys
                    .pending_transfer_id(k)
                    .ok_or_else(|| StorageError::Corrupt("pending key".into()))?;
                page.push(TransferId::new(raw).map_err(StorageError::Corrupt)?);
            }
            Ok((page, more))
        })
    })
}

/// Reads up to `max` ids of unsettled disbursements (their index), in pages of
/// `limits.pending_page`; true when more exist.
pub fn open_disbursement_ids(
    store: &Store,
    keys: &Keys,
    limits: &ScanLimits,
    max: usize,
) -> Result<(Vec<TransferId>, bool), StorageError> {
    paged_ids(limits, max, |after, want| {
        let after = after.map(TransferId::as_str);
        let (page, more) = exec::read_disbursing(store, keys, after, want)?;
        Ok((page.into_iter().map(|d| d.id).collect(), more))
    })
}

/// Reads up to `max` ids of open holds (the index of holds by expiry), in pages of
/// `limits.pending_page`; true when more exist. The audit names them pending: an open hold
/// still holds what it has not released.
pub fn open_hold_ids(
    store: &Store,
    keys: &Keys,
    limits: &ScanLimits,
    max: usize,
) -> Result<(Vec<TransferId>, bool), StorageError> {
    // The index runs by expiry: the cursor is the last row read, not the last id.
    let mut cursor: Option<(u64, String)> = None;
    paged_ids(limits, max, |_, want| {
        let (page, more) =
            exec::read_due_holds(store, keys, exec::EXPIRY_MAX, cursor.take(), want)?;
        cursor = page.last().map(|((at, h), _)| (*at, h.as_str().to_owned()));
        Ok((page.into_iter().map(|((_, h), _)| h).collect(), more))
    })
}

/// Feeds every account and its journal to `auditor`, in id order; stops after
/// `limits.accounts_max` accounts.
pub fn scan(
    store: &Store,
    keys: &Keys,
    limits: &ScanLimits,
    auditor: &mut Auditor,
) -> Result<ScanEnd, StorageError> {
    let mut after: Option<AccountId> = None;
    assert!(
        limits.accounts_max > 0 && limits.accounts_page > 0,
        "{limits:?}"
    );
    let mut audited = 0usize;
    for _ in 0..limits.accounts_max.div_ceil(limits.accounts_page) {
        let want = (limits.accounts_max - audited).min(limits.accounts_page);
        let (page, more) = account_page(store, keys, after.as_ref(), want)?;
        audited += page.len();
        for (id, record) in &page {
            match record {
                Some(r) => audit_account(store, keys, limits, auditor, &view(id, r))?,
                None => auditor.violation(
                    AuditCheck::Replay,
                    Some(id.as_str()),
                    None,
                    "listed in the account index but has no stored state".to_owned(),
                ),
            }
        }
        if !more {
            return Ok(ScanEnd::Complete);
        }
        after = page.last().map(|(id, _)| id.clone());
    }
    Ok(ScanEnd::AccountsMaxReached)
}

/// The record as the auditor sees it; `available` is not asserted, the auditor checks it.
fn view(id: &AccountId, r: &AccountRecord) -> AccountView {
    AccountView {
        id: id.clone(),
        currency: r.currency,
        status: r.status,
        balance: r.balance,
        available: r.balance.saturating_sub(r.held),
        held: r.held,
        seq: r.seq,
        // As the record's own view: a sharded account's record names its shards.
        shards: r.shards.filter(|_| !id.is_shard()),
    }
}

/// Accounts of the index with their stored records (`None`: no state), and whether more exist.
type AccountPage = (Vec<(AccountId, Option<AccountRecord>)>, bool);

/// Reads a page of the account index after `after` with each account's stored record.
fn account_page(
    store: &Store,
    keys: &Keys,
    after: Option<&AccountId>,
    limit: usize,
) -> Result<AccountPage, StorageError> {
    store.read(|txn| {
        let (begin, end) = keys.account_index_after(after.map(|a| a.as_str()));
        // One more than asked tells whether more exist.
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut page = Vec::with_capacity(limit.min(rows.len()));
        for (k, _) in rows.iter().take(limit) {
            let raw = keys
                .account_index_id(k)
                .ok_or_else(|| StorageError::Corrupt("account index key".into()))?;
            let id = AccountId::new(raw).map_err(StorageError::Corrupt)?;
            let record = txn
                .get(&keys.state(id.as_str()))?
                .map(|b| decode::<AccountRecord>(&b))
                .transpose()?;
            page.push((id, record));
        }
        Ok((page, more))
    })
}

/// Feeds one account and its journal, up to the listed `seq`, page by page.
fn audit_account(
    store: &Store,
    keys: &Keys,
    limits: &ScanLimits,
    auditor: &mut Auditor,
    view: &AccountView,
) -> Result<(), StorageError> {
    auditor.begin_account(view);
    let mut after_seq = 0u64;
    // Enough pages for `seq` entries, and one more to see where the journal ends.
    let pages_max = view.seq / limits.entries_page as u64 + 2;
    for _ in 0..pages_max {
        if !auditor.wants_more() {
            break;
        }
        let Some(page) = exec::read_entries(store, keys, &view.id, after_seq, limits.entries_page)?
        else {
            auditor.violation(
                AuditCheck::Replay,
                Some(view.id.as_str()),
                None,
                "listed, but its stored state was gone when its journal was read".to_owned(),
            );
            break;
        };
        auditor.feed(&page.entries);
        match page.next_after_seq {
            None => break,
            Some(next) if next <= after_seq => {
                return Err(StorageError::Corrupt(format!(
                    "journal of {}: a page after seq {after_seq} ends at seq {next}",
                    view.id
                )))
            }
            Some(next) => after_seq = next,
        }
    }
    auditor.end_account();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::encode;
    use crate::storage::memory::MemoryBackend;
    use protocol::admin::CheckStatus;
    use protocol::api::{AccountStatus, Entry, EntryKind};
    use protocol::Currency;
    use std::sync::Arc;

    fn store() -> (Store, Keys) {
        (Store::new(Arc::new(MemoryBackend::new())), Keys::default())
    }

    /// Writes an account with deposits of `amounts` and a state of `balance` and `held`.
    fn put(store: &Store, keys: &Keys, id: &str, amounts: &[u64], balance: u64, held: u64) {
        store
            .run(|txn| {
                txn.set(&keys.account_index(id), b"")?;
                let mut b = 0;
                for (i, a) in amounts.iter().enumerate() {
                    b += a;
                    let e = Entry {
                        shard: None,
                        seq: i as u64 + 1,
                        kind: EntryKind::Deposit,
                        amount: *a,
                        balance: b,
                        available: b,
                        transfer_id: None,
                        reference: None,
                        at: 0,
                    };
                    txn.set(&keys.journal(id, e.seq), &encode(&e))?;
                }
                let r = AccountRecord {
                    shards: None,
                    currency: Currency::new("EUR").unwrap(),
                    status: AccountStatus::Active,
                    balance,
                    held,
                    seq: amounts.len() as u64,
                    opened_at: 0,
                };
                txn.set(&keys.state(id), &encode(&r))
            })
            .unwrap();
    }

    fn run(store: &Store, keys: &Keys) -> protocol::admin::AuditReport {
        let mut au = Auditor::new();
        let limits = ScanLimits::default();
        let (ids, more) = pending_ids(store, keys, &limits, 10).unwrap();
        au.still_pending(ids, more, "now");
        assert_eq!(
            scan(store, keys, &limits, &mut au).unwrap(),
            ScanEnd::Complete
        );
        au.finish()
    }

    #[test]
    fn audit_scan_reads_every_account_and_journal_page() {
        // Proves the scan feeds every account and every journal page (a journal longer than
        // one page included) and a consistent store passes.
        let (s, k) = store();
        let long: Vec<u64> = (1..=(AUDIT_ENTRIES_PAGE as u64 + 3)).collect();
        let total: u64 = long.iter().sum();
        put(&s, &k, "a", &long, total, 0);
        put(&s, &k, "b", &[5, 7], 12, 0);
        put(&s, &k, "c", &[], 0, 0);
        let r = run(&s, &k);
        assert!(r.ok, "{r:?}");
        assert_eq!((r.accounts, r.entries), (3, long.len() as u64 + 2));
    }

    #[test]
    fn audit_scan_reports_broken_records_instead_of_stopping() {
        // Proves a stored state holding more than its balance, a state off its journal, an
        // indexed account without a state and a pending transfer are all reported, not errors.
        let (s, k) = store();
        put(&s, &k, "a", &[10], 10, 11);
        put(&s, &k, "b", &[5], 6, 0);
        s.run(|txn| {
            txn.set(&k.account_index("ghost"), b"")?;
            txn.set(&k.pending("t1"), &encode(&AccountId::new("a").unwrap()))
        })
        .unwrap();
        let r = run(&s, &k);
        let failed: Vec<AuditCheck> = r
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.check)
            .collect();
        assert_eq!(
            failed,
            vec![
                AuditCheck::Settled,
                AuditCheck::Replay,
                AuditCheck::NoOverdraft,
                AuditCheck::Conservation
            ],
            "{r:?}"
        );
        let said = |words: &str| r.violations.iter().any(|v| v.message.contains(words));
        assert!(said("holds 11 of a balance of 10"), "{r:?}");
        assert!(said("stored state is balance 6"), "{r:?}");
        assert!(said("no stored state"), "{r:?}");
        assert!(said("1 transfers still pending now (t1)"), "{r:?}");
    }
}
