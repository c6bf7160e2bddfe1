//! `/admin`: the operator API used by `walletctl`.

use super::auth::AdminScope;
use super::error::{invalid, ApiQuery, HttpError};
use super::{blocking, AppState};
use crate::ledger::audit::Auditor;
use crate::ledger::audit_scan::{self, ScanEnd, ScanLimits, AUDIT_ACCOUNTS_MAX};
use crate::ledger::exec;
use crate::ledger::shard_reads;
use crate::storage::RANGE_LIMIT_MAX;
use axum::extract::{Path, State};
use axum::Json;
use protocol::admin::{
    AccountsPage, AuditReport, DrainStatus, HoldsPage, MemberStatus, NodeStatus, OwnerView,
    PendingPage, ShardView, ADMIN_PAGE_MAX, AUDIT_WAIT_SECS_MAX,
};
use protocol::cluster::{PeerReply, PeerRequest};
use protocol::AccountId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Most pending transfers counted for status and metrics (the count is capped, not paged).
pub const PENDING_COUNT_MAX: usize = 100_000;

/// Longest wait for a peer's statistics in `GET /admin/status`.
pub const PEER_STATS_TIMEOUT: Duration = Duration::from_secs(2);
/// Most pending transfers read to attribute them to their owners in `GET /admin/status`.
pub const PENDING_ATTRIBUTED_MAX: usize = 10_000;
/// Longest a `POST /admin/drain` waits for the node's actors to stop before answering.
pub const DRAIN_WAIT: Duration = Duration::from_secs(20);

/// `GET /admin/status`: this node, and every member with its ring share, active actors and
/// the unsettled transfers whose sender it owns.
pub async fn status(
    _: AdminScope,
    State(st): State<AppState>,
) -> Result<Json<NodeStatus>, HttpError> {
    let shell = &st.shell;
    let (store, keys) = (shell.store().clone(), shell.keys().clone());
    let (pending, rows) = blocking(move || {
        let total = exec::count_pending(&store, &keys, PENDING_COUNT_MAX, RANGE_LIMIT_MAX)?;
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        while rows.len() < PENDING_ATTRIBUTED_MAX {
            let (page, more) =
                exec::read_pending(&store, &keys, after.as_deref(), ADMIN_PAGE_MAX as usize)?;
            after = page.last().map(|(v, _)| v.id.as_str().to_owned());
            rows.extend(page);
            if !more {
                break;
            }
        }
        Ok((total, rows))
    })
    .await?;
    let ring = shell.membership().ring();
    let mut per_owner: BTreeMap<String, u64> = BTreeMap::new();
    for (_, sender) in &rows {
        *per_owner
            .entry(ring.owner(sender.as_str()).node_id.clone())
            .or_default() += 1;
    }
    // Every member's own figures, asked concurrently.
    let me = shell.stats();
    let peers = shell.membership().peers();
    let asks: Vec<_> = peers
        .iter()
        .map(|p| {
            let shell = shell.clone();
            let node = p.hello.node_id.clone();
            tokio::spawn(async move {
                match shell
                    .call_peer(&node, &PeerRequest::Stats, PEER_STATS_TIMEOUT)
                    .await
                {
                    Ok(PeerReply::Stats(s)) => Some(s),
                    _ => None,
                }
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(asks.len());
    for ask in asks {
        answers.push(ask.await.ok().flatten());
    }
    let shares: BTreeMap<String, f64> = ring.shares().into_iter().collect();
    let mut members = vec![MemberStatus {
        node_id: me.node_id.clone(),
        http: shell.membership().me().http.clone(),
        ring_share: shares.get(&me.node_id).copied().unwrap_or(0.0),
        active_actors: Some(me.active_actors),
        pending_sagas: per_owner.get(&me.node_id).copied().unwrap_or(0),
        leaving: me.leaving,
        dropped: false,
    }];
    for (p, stats) in peers.iter().zip(answers) {
        members.push(MemberStatus {
            node_id: p.hello.node_id.clone(),
            http: p.hello.http.clone(),
            ring_share: shares.get(&p.hello.node_id).copied().unwrap_or(0.0),
            active_actors: stats.as_ref().map(|s| s.active_actors),
            pending_sagas: per_owner.get(&p.hello.node_id).copied().unwrap_or(0),
            leaving: stats.map(|s| s.leaving).unwrap_or(p.hello.leaving),
            dropped: p.dropped,
        });
    }
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    Ok(Json(NodeStatus {
        node_id: me.node_id,
        backend: shell.store().backend_name().to_owned(),
        members,
        active_actors: me.active_actors,
        pending_sagas: pending,
        commits: shell.store().stats().commits.load(Ordering::Relaxed),
        uptime_s: st.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

/// `POST /admin/drain`: this node leaves the ring (its accounts go to the other members, and
/// requests that still reach it are forwarded), its actors stop after their queued inputs, and
/// once none is left the node shuts down. Repeatable: each call reports progress, waiting up to
/// [`DRAIN_WAIT`] for the actors to stop.
pub async fn drain(_: AdminScope, State(st): State<AppState>) -> Json<DrainStatus> {
    let shell = &st.shell;
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    let acked = shell.leave_cluster().await;
    loop {
        // Actors re-activated by a message that raced the ring change are moved again.
        crate::cluster::sweeper::passivate_moved(shell).await;
        let left_ring = !shell
            .membership()
            .ring()
            .members()
            .iter()
            .any(|m| m.node_id == shell.config().node_id);
        let active = shell.active_actors() as u64;
        let mut drained = acked && left_ring && active == 0;
        if drained {
            // Requests that peers sent while the actors stopped are answered before the stop.
            drained = shell.leave_cluster().await && shell.active_actors() == 0;
        }
        if drained || tokio::time::Instant::now() >= deadline {
            if drained {
                tracing::info!("drained: every account moved off this node; stopping");
                let _ = st.drained.send(true);
            }
            return Json(DrainStatus {
                node_id: shell.config().node_id.clone(),
                left_ring,
                active_actors: shell.active_actors() as u64,
                drained,
            });
        }
        tokio::time::sleep(DRAIN_POLL_EVERY).await;
    }
}

/// How often a drain checks whether the node's actors have stopped.
const DRAIN_POLL_EVERY: Duration = Duration::from_millis(50);

/// Query of `GET /admin/accounts`.
#[derive(Deserialize)]
pub struct AccountsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/accounts?after=&limit=`: accounts as stored, in id order.
pub async fn accounts(
    _: AdminScope,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AccountsQuery>,
) -> Result<Json<AccountsPage>, HttpError> {
    let limit = page_limit(q.limit)?;
    let after = q.after.map(AccountId::new).transpose().map_err(invalid)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let (accounts, next_after) =
        blocking(move || exec::read_accounts(&store, &keys, after.as_ref(), limit)).await?;
    Ok(Json(AccountsPage {
        accounts,
        next_after,
    }))
}

/// Query of `GET /admin/pending`.
#[derive(Deserialize)]
pub struct PendingQuery {
    limit: Option<u32>,
}

/// `GET /admin/pending?limit=`: unsettled transfers.
pub async fn pending(
    _: AdminScope,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PendingQuery>,
) -> Result<Json<PendingPage>, HttpError> {
    let limit = page_limit(q.limit)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let (rows, disbursements, truncated) = blocking(move || {
        let (rows, more) = exec::read_pending(&store, &keys, None, limit)?;
        let (disbursements, more_d) = exec::read_disbursing(&store, &keys, None, limit)?;
        Ok((rows, disbursements, more || more_d))
    })
    .await?;
    Ok(Json(PendingPage {
        transfers: rows.into_iter().map(|(v, _)| v).collect(),
        truncated,
        disbursements,
    }))
}

/// `GET /admin/holds?after=&limit=` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/holds?after=&limit=`: open holds, the soonest to expire first, with an opaque
/// cursor (`walletctl audit` names them pending).
pub async fn holds(
    _: AdminScope,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<HoldsQuery>,
) -> Result<Json<HoldsPage>, HttpError> {
    let limit = page_limit(q.limit)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            exec::decode_list_cursor(c)
                .ok_or_else(|| invalid("after is not a cursor this route gave"))?,
        ),
    };
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let (holds, next_after) = blocking(move || {
        let (rows, more) = exec::read_due_holds(&store, &keys, exec::EXPIRY_MAX, after, limit)?;
        let next = rows
            .last()
            .filter(|_| more)
            .map(|((at, h), _)| exec::encode_list_cursor(*at, h.as_str()));
        let ids: Vec<_> = rows.into_iter().map(|((_, h), _)| h).collect();
        Ok((exec::read_holds(&store, &keys, &ids)?, next))
    })
    .await?;
    Ok(Json(HoldsPage { holds, next_after }))
}

/// `GET /admin/accounts/{id}/entries?after_seq=&limit=`: a page of an account's journal, as
/// `/v1/accounts/{id}/entries` answers it, for the audit (`walletctl audit` reads every
/// account through the admin routes, so an `admin` token on the admin listener suffices).
pub async fn entries(
    _: AdminScope,
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<protocol::api::EntriesQuery>,
) -> Result<axum::response::Response, HttpError> {
    // Any journal, a shard's included, exactly as stored (the audit reads every one).
    let id = AccountId::new(id).map_err(invalid)?;
    let shard = id.shard_index();
    super::accounts::entries_page(&st, id, shard, q).await
}

/// `GET /admin/accounts/{id}/shards`: each shard of a sharded account, where the ring puts
/// it and what it holds, from one storage snapshot (404 for an account that is not sharded).
pub async fn shards(
    _: AdminScope,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ShardView>>, HttpError> {
    let id = super::parse_account(id)?;
    let Some(k) = super::sharded::shards_of(&st, &id).await? else {
        return Err(HttpError(protocol::ApiError::new(
            protocol::ErrorCode::AccountNotFound,
            format!("no sharded account {id}"),
        )));
    };
    let (store, keys, key) = (
        st.shell.store().clone(),
        st.shell.keys().clone(),
        id.clone(),
    );
    let records = blocking(move || shard_reads::read_shards(&store, &keys, &key, k)).await?;
    let ring = st.shell.membership().ring();
    let views = records
        .into_iter()
        .zip(0..k)
        .map(|(r, j)| {
            let account = id.shard(j);
            // A shard not opened (an opening that failed part way) holds nothing.
            let (balance, held, seq) = r.map_or((0, 0, 0), |r| (r.balance, r.held, r.seq));
            ShardView {
                shard: j,
                node_id: ring.owner(account.as_str()).node_id.clone(),
                account,
                balance,
                available: balance - held,
                held,
                seq,
            }
        })
        .collect();
    Ok(Json(views))
}

/// `GET /admin/owner/{id}`.
pub async fn owner(
    _: AdminScope,
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OwnerView>, HttpError> {
    // A shard's id too: `walletctl account show` says where each shard lives.
    let id = AccountId::new(id).map_err(invalid)?;
    let m = st.shell.membership().ring().owner(id.as_str()).clone();
    let local = m.node_id == st.shell.config().node_id;
    Ok(Json(OwnerView {
        active: local.then(|| st.shell.is_active(&id)),
        account: id,
        node_id: m.node_id,
        http: m.http,
    }))
}

/// Most pending transfers `GET /admin/audit` reads, to name them and excuse their partial legs.
pub const AUDIT_PENDING_READ_MAX: usize = 100_000;

/// How often `GET /admin/audit` looks at the pending index while it waits for it to drain.
pub const AUDIT_PENDING_POLL: Duration = Duration::from_millis(250);

/// Query of `GET /admin/audit`.
#[derive(Deserialize)]
pub struct AuditQuery {
    wait_secs: Option<u64>,
}

/// `GET /admin/audit?wait_secs=`: the ledger audit ([`crate::ledger::audit`]) over the whole
/// store, read in pages. It first waits up to `wait_secs` (default 0, at most
/// [`AUDIT_WAIT_SECS_MAX`]) for the pending index to drain; transfers still pending then are a
/// `settled` violation, and their partial legs are not reported again. The report is 200
/// whether or not the checks pass (`ok`); a storage failure is `unavailable` (the audit's
/// outcome is unknown), never a failed check.
pub async fn audit(
    _: AdminScope,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditReport>, HttpError> {
    let wait_secs = q.wait_secs.unwrap_or(0);
    if wait_secs > AUDIT_WAIT_SECS_MAX {
        return Err(invalid(format!(
            "wait_secs must be from 0 to {AUDIT_WAIT_SECS_MAX}"
        )));
    }
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let wait = Duration::from_secs(wait_secs);
    let deadline = tokio::time::Instant::now() + wait;
    // One look per poll period until the deadline, and one at it.
    let polls_max = wait.as_millis() / AUDIT_PENDING_POLL.as_millis() + 1;
    for _ in 0..polls_max {
        let (store, keys) = (store.clone(), keys.clone());
        let pending = blocking(move || {
            let transfers = exec::count_pending(&store, &keys, 1, RANGE_LIMIT_MAX)?;
            let (disbursements, _) = exec::read_disbursing(&store, &keys, None, 1)?;
            Ok(transfers + disbursements.len() as u64)
        })
        .await?;
        let now = tokio::time::Instant::now();
        if pending == 0 || now >= deadline {
            break;
        }
        tokio::time::sleep(AUDIT_PENDING_POLL.min(deadline - now)).await;
    }
    let when = if wait_secs == 0 {
        "when the audit started (wait_secs=0)".to_owned()
    } else {
        format!("after {wait_secs}s")
    };
    let (report, end) = blocking(move || {
        let mut auditor = Auditor::new();
        let limits = ScanLimits::default();
        let (mut ids, more) =
            audit_scan::pending_ids(&store, &keys, &limits, AUDIT_PENDING_READ_MAX)?;
        let (disbursing, more_d) =
            audit_scan::open_disbursement_ids(&store, &keys, &limits, AUDIT_PENDING_READ_MAX)?;
        ids.extend(disbursing.iter().cloned());
        auditor.still_pending(ids, more || more_d, &when);
        auditor.set_disbursements(disbursing);
        let (holds, more) =
            audit_scan::open_hold_ids(&store, &keys, &limits, AUDIT_PENDING_READ_MAX)?;
        if more {
            return Ok((None, ScanEnd::Complete));
        }
        auditor.set_pending(holds);
        let end = audit_scan::scan(&store, &keys, &limits, &mut auditor)?;
        // Holds opened while the scan ran are open too (holds never all settle).
        let (holds, more) =
            audit_scan::open_hold_ids(&store, &keys, &limits, AUDIT_PENDING_READ_MAX)?;
        if more {
            return Ok((None, ScanEnd::Complete));
        }
        auditor.set_pending(holds);
        Ok((Some(auditor.finish()), end))
    })
    .await?;
    let Some(report) = report else {
        return Err(invalid(format!(
            "the ledger has more than {AUDIT_PENDING_READ_MAX} open holds, more than one request audits; run walletctl audit, which streams them"
        )));
    };
    match end {
        ScanEnd::Complete => Ok(Json(report)),
        ScanEnd::AccountsMaxReached => Err(invalid(format!(
            "the ledger has more than {AUDIT_ACCOUNTS_MAX} accounts, more than one request audits; run walletctl audit, which streams the ledger"
        ))),
    }
}

fn page_limit(limit: Option<u32>) -> Result<usize, HttpError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > ADMIN_PAGE_MAX {
        return Err(invalid(format!("limit must be from 1 to {ADMIN_PAGE_MAX}")));
    }
    Ok(limit as usize)
}
