//! Background duties of a node: resuming unsettled sagas, passivating idle actors, and moving
//! actors off this node when the ring gives their accounts to another node.

use super::Shell;
use crate::ledger::exec;
use protocol::{AccountId, TransferId};
use std::time::Duration;
use tokio::sync::watch;

/// Pending-index entries read per page when sweeping.
pub const SWEEP_PAGE: usize = 1_000;
/// Most senders activated per sweep (the rest wait for the next sweep).
pub const SWEEP_ACTIVATIONS_MAX: usize = 10_000;

/// Activates the sender of every unsettled transfer, and the payer of every hold that came
/// due, that this node owns and whose actor is not active; activation resumes its sagas and
/// expires its due holds. Returns how many accounts were activated.
pub async fn sweep_pending_once(shell: &Shell) -> usize {
    let mut activated = sweep_transfers_once(shell).await;
    activated += sweep_disbursements_once(shell, SWEEP_ACTIVATIONS_MAX - activated).await;
    activated + sweep_due_holds_once(shell, SWEEP_ACTIVATIONS_MAX - activated).await
}

/// Activates, up to `budget`, the payers of unsettled disbursements that this node owns (an
/// active one checks its lease). Returns how many.
async fn sweep_disbursements_once(shell: &Shell, budget: usize) -> usize {
    let mut after: Option<String> = None;
    let mut activated = 0;
    loop {
        let (store, keys, cursor) = (shell.store().clone(), shell.keys().clone(), after.clone());
        let page = tokio::task::spawn_blocking(move || {
            exec::read_disbursing(&store, &keys, cursor.as_deref(), SWEEP_PAGE)
        })
        .await
        .expect("a disbursements read does not panic");
        let (rows, more) = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "disbursement sweep could not read the index");
                return activated;
            }
        };
        for d in &rows {
            after = Some(d.id.as_str().to_owned());
            activated += usize::from(resume_owned(shell, &d.from, &d.id, activated < budget).await);
        }
        if !more || activated >= budget {
            return activated;
        }
    }
}

/// Resumes `id` at `account` if this node owns it. An active account may be a stale
/// activation that never saw this saga (a newer one elsewhere started it and died): it checks
/// its lease and steps aside if so, and the next sweep activates it afresh. An inactive one
/// is activated when `may_activate`, which resumes it. True when it was activated.
async fn resume_owned(
    shell: &Shell,
    account: &AccountId,
    id: &TransferId,
    may_activate: bool,
) -> bool {
    if !shell.membership().owns(account.as_str()) {
        return false; // its owner's sweep resumes it
    }
    let active = shell.is_active(account);
    if !active && !may_activate {
        return false;
    }
    shell.resume(account, id.clone()).await.is_ok() && !active
}

/// Activates, up to `budget`, the payers of holds due by now that this node owns; an active
/// payer that does not know its due hold checks its lease (see below). Returns how many.
async fn sweep_due_holds_once(shell: &Shell, budget: usize) -> usize {
    let until = super::host::now_ms();
    let mut after: Option<(u64, String)> = None;
    let mut activated = 0;
    loop {
        let (store, keys, cursor) = (shell.store().clone(), shell.keys().clone(), after.clone());
        let page = tokio::task::spawn_blocking(move || {
            exec::read_due_holds(&store, &keys, until, cursor, SWEEP_PAGE)
        })
        .await
        .expect("a due-holds read does not panic");
        let (rows, more) = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "hold sweep could not read the index");
                return activated;
            }
        };
        for ((at, hold), payer) in &rows {
            after = Some((*at, hold.as_str().to_owned()));
            // Activated, the payer arms the expiry at once.
            activated += usize::from(resume_owned(shell, payer, hold, activated < budget).await);
        }
        if !more || activated >= budget {
            return activated;
        }
    }
}

/// Activates the sender of every unsettled transfer that this node owns and whose actor is not
/// active; activation resumes its sagas. Returns how many senders were activated.
async fn sweep_transfers_once(shell: &Shell) -> usize {
    let mut after: Option<String> = None;
    let mut activated = 0;
    loop {
        let (store, keys, cursor) = (shell.store().clone(), shell.keys().clone(), after.clone());
        let page = tokio::task::spawn_blocking(move || {
            exec::read_pending(&store, &keys, cursor.as_deref(), SWEEP_PAGE)
        })
        .await
        .expect("pending read does not panic");
        let (rows, more) = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "pending sweep could not read the index");
                return activated;
            }
        };
        for (view, sender) in &rows {
            after = Some(view.id.as_str().to_owned());
            let may = activated < SWEEP_ACTIVATIONS_MAX;
            activated += usize::from(resume_owned(shell, sender, &view.id, may).await);
        }
        if !more || activated >= SWEEP_ACTIVATIONS_MAX {
            return activated;
        }
    }
}

/// Drains every active account that this node no longer owns (each commits what it has
/// queued first); the new owner activates it on its next message. Returns how many.
pub async fn passivate_moved(shell: &Shell) -> usize {
    shell.directory().drain_moved().await
}

/// Runs the sweeps until `stop` changes: pending sagas every `pending_every`, idle actors
/// every `idle_every`, and on every ring change: moved actors passivated, then pending sagas
/// swept at once (the ones whose sender this node now owns resume here).
pub async fn run(shell: Shell, pending_every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ring = shell.membership().watch();
    ring.mark_unchanged();
    let idle = Duration::from_millis(shell.config().idle_passivate_ms);
    let idle_every = (idle / 4).max(Duration::from_millis(25));
    // The node swept once before declaring itself ready: the first periodic sweep comes one
    // period later (an immediate second sweep would only race with the first requests).
    let mut pending_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + pending_every, pending_every);
    let mut idle_tick = tokio::time::interval(idle_every);
    loop {
        tokio::select! {
            _ = pending_tick.tick() => {
                let n = sweep_pending_once(&shell).await;
                if n > 0 {
                    tracing::info!(senders = n, "resumed unsettled transfers");
                }
            }
            _ = idle_tick.tick() => {
                shell.directory().idle_scan(idle);
            }
            changed = ring.changed() => {
                if changed.is_err() {
                    return;
                }
                let moved = passivate_moved(&shell).await;
                let n = sweep_pending_once(&shell).await;
                tracing::info!(passivated = moved, resumed = n, "ring changed: actors moved");
            }
            _ = stop.changed() => return,
        }
    }
}
