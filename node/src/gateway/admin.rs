//! `/admin`: the operator API used by `walletctl`.

use super::error::{invalid, ApiQuery, HttpError};
use super::{blocking, parse_account, AppState};
use crate::cluster::placement::Member;
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::Json;
use protocol::admin::{
    AccountsPage, MemberStatus, NodeStatus, OwnerView, PendingPage, ADMIN_PAGE_MAX,
};
use protocol::AccountId;
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// Most pending transfers counted for status and metrics (the count is capped, not paged).
pub const PENDING_COUNT_MAX: usize = 100_000;

/// `GET /admin/status`.
pub async fn status(State(st): State<AppState>) -> Result<Json<NodeStatus>, HttpError> {
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let pending = blocking(move || exec::count_pending(&store, &keys, PENDING_COUNT_MAX)).await?;
    let members = st
        .ring
        .shares()
        .into_iter()
        .map(|(node_id, share)| MemberStatus {
            http: member(&st, &node_id)
                .map(|m| m.http.clone())
                .unwrap_or_default(),
            node_id,
            ring_share: share,
        })
        .collect();
    Ok(Json(NodeStatus {
        node_id: st.shell.config().node_id.clone(),
        backend: st.shell.store().backend_name().to_owned(),
        members,
        active_actors: st.shell.active_actors() as u64,
        pending_sagas: pending,
        commits: st.shell.store().stats().commits.load(Ordering::Relaxed),
        uptime_s: st.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

fn member<'a>(st: &'a AppState, node_id: &str) -> Option<&'a Member> {
    st.ring.members().iter().find(|m| m.node_id == node_id)
}

/// Query of `GET /admin/accounts`.
#[derive(Deserialize)]
pub struct AccountsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /admin/accounts?after=&limit=`: accounts as stored, in id order.
pub async fn accounts(
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
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<PendingQuery>,
) -> Result<Json<PendingPage>, HttpError> {
    let limit = page_limit(q.limit)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let (rows, truncated) =
        blocking(move || exec::read_pending(&store, &keys, None, limit)).await?;
    Ok(Json(PendingPage {
        transfers: rows.into_iter().map(|(v, _)| v).collect(),
        truncated,
    }))
}

/// `GET /admin/owner/{id}`.
pub async fn owner(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OwnerView>, HttpError> {
    let id = parse_account(id)?;
    let m = st.ring.owner(id.as_str()).clone();
    let local = m.node_id == st.shell.config().node_id;
    Ok(Json(OwnerView {
        active: local.then(|| st.shell.is_active(&id)),
        account: id,
        node_id: m.node_id,
        http: m.http,
    }))
}

fn page_limit(limit: Option<u32>) -> Result<usize, HttpError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > ADMIN_PAGE_MAX {
        return Err(invalid(format!("limit must be from 1 to {ADMIN_PAGE_MAX}")));
    }
    Ok(limit as usize)
}
