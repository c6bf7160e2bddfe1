//! `/v1/accounts`: open, read, freeze, unfreeze, history.

use super::auth::Caller;
use super::error::{invalid, ApiJson, ApiQuery, HttpError};
use super::openapi::IdempotentAnyway;
use super::{blocking, parse_account, sharded, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cluster_config::Scope;
use protocol::api::{
    AccountView, EntriesPage, EntriesQuery, OpenAccount, TransfersPage, TransfersQuery,
    ENTRIES_PAGE_DEFAULT, ENTRIES_PAGE_MAX, TRANSFERS_PAGE_DEFAULT, TRANSFERS_PAGE_MAX,
};
use protocol::error::ErrorBody;
use protocol::ids::SHARDS_MAX;
use protocol::{AccountId, ErrorCode};
use std::time::Duration;

/// `POST /v1/accounts`: 201 when created, 200 when it existed with the same settings.
#[utoipa::path(
    post,
    path = "/v1/accounts",
    operation_id = "open_account",
    tag = "accounts",
    params(IdempotentAnyway),
    request_body = OpenAccount,
    responses(
        (status = 201, description = "Opened.", body = AccountView),
        (status = 200, description = "It already existed with the same settings.", body = AccountView),
        (status = 409, description = "`account_exists`: the id is used with another currency or shard count.", body = ErrorBody),
    )
)]
pub async fn open(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OpenAccount>,
) -> Result<Response, HttpError> {
    caller.permits(Scope::Write, Some(&body.id))?;
    sharded::client_id(&body.id)?;
    let k = body.shards.unwrap_or(1);
    if !(1..=SHARDS_MAX).contains(&k) {
        return Err(invalid(format!("shards must be from 1 to {SHARDS_MAX}")));
    }
    let shards = (k > 1).then_some(k);
    let open = Command::Open {
        currency: body.currency,
        shards,
    };
    // The account's own record first: its actor decides, once, which settings win (a
    // concurrent open with another currency or shard count gets `account_exists` and touches
    // no shard). Then its shards, in those settings; an open cut short part way is completed
    // by a retry (the record answers 200, the missing shards are opened). Until then a
    // request routed to a missing shard answers `account_not_found`.
    let reply = st
        .shell
        .execute(&body.id, open.clone(), Duration::ZERO)
        .await?;
    let Some(k) = shards else {
        return account_response(reply);
    };
    let Reply::Account { created, .. } = reply else {
        panic!("an open answered {reply:?}");
    };
    for j in 0..k {
        st.shell
            .execute(&body.id.shard(j), open.clone(), Duration::ZERO)
            .await?;
    }
    let view = sharded::whole(&st, &body.id).await?;
    account_response(Reply::Account { view, created })
}

/// `GET /v1/accounts/{id}`: strongly consistent, served by the account's actor.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}",
    operation_id = "get_account",
    tag = "accounts",
    description = "Strongly consistent: sees every acknowledged write. A sharded account shows \
        the sums of its shards and `shards`, and no `seq`.",
    params(("id" = AccountId, Path, description = "The account.")),
    responses(
        (status = 200, description = "The account.", body = AccountView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    on_account(st, caller, Scope::Read, id, Command::Get).await
}

/// `POST /v1/accounts/{id}/freeze`.
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/freeze",
    operation_id = "freeze_account",
    tag = "accounts",
    description = "A frozen account refuses every movement until unfrozen.",
    params(("id" = AccountId, Path, description = "The account."), IdempotentAnyway),
    responses(
        (status = 200, description = "The account, `frozen`.", body = AccountView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`account_closed`.", body = ErrorBody),
    )
)]
pub async fn freeze(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    on_account(st, caller, Scope::Write, id, Command::Freeze).await
}

/// `POST /v1/accounts/{id}/unfreeze`.
#[utoipa::path(
    post,
    path = "/v1/accounts/{id}/unfreeze",
    operation_id = "unfreeze_account",
    tag = "accounts",
    params(("id" = AccountId, Path, description = "The account."), IdempotentAnyway),
    responses(
        (status = 200, description = "The account, `active`.", body = AccountView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`account_closed`.", body = ErrorBody),
    )
)]
pub async fn unfreeze(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    on_account(st, caller, Scope::Write, id, Command::Unfreeze).await
}

/// Runs an account command named by a path id (get, freeze, unfreeze) on the account's owner,
/// if the caller has `scope` on it.
async fn on_account(
    st: AppState,
    caller: Caller,
    scope: Scope,
    id: String,
    cmd: Command,
) -> Result<Response, HttpError> {
    let id = parse_account(id)?;
    caller.permits(scope, Some(&id))?;
    let Some(k) = sharded::shards_of(&st, &id).await? else {
        let reply = st.shell.execute(&id, cmd, Duration::ZERO).await?;
        return account_response(reply);
    };
    if cmd != Command::Get {
        // Freeze or unfreeze every shard, then the account's own record (whose status the
        // account shows); a retry after a failure part way does the rest.
        for j in 0..k {
            st.shell
                .execute(&id.shard(j), cmd.clone(), Duration::ZERO)
                .await?;
        }
        st.shell.execute(&id, cmd, Duration::ZERO).await?;
    }
    let view = sharded::whole(&st, &id).await?;
    account_response(Reply::Account {
        view,
        created: false,
    })
}

fn account_response(reply: Reply) -> Result<Response, HttpError> {
    match reply {
        Reply::Account { view, created } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(view)).into_response())
        }
        other => panic!("account command answered {other:?}"),
    }
}

/// `GET /v1/accounts/{id}/entries?after_seq=&limit=`: a page of the journal.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/entries",
    operation_id = "list_entries",
    tag = "accounts",
    description = "A page of the account's journal, in `seq` order. A sharded account's \
        journal is per shard: `shard` is required there.",
    params(("id" = AccountId, Path, description = "The account."), EntriesQuery),
    responses(
        (status = 200, description = "A page of entries.", body = EntriesPage),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
    )
)]
pub async fn entries(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Response, HttpError> {
    let id = parse_account(id)?;
    caller.permits(Scope::Read, Some(&id))?;
    let shard = shard_param(&st, &id, q.shard).await?;
    let journal = shard.map_or_else(|| id.clone(), |j| id.shard(j));
    entries_page(&st, journal, shard, q).await
}

/// `GET /v1/accounts/{id}/transfers?status=&after=&limit=`: the account's transfers (either
/// side), newest first, read from its transfer list (written in the transaction that first
/// recorded each transfer), so the list is exact. Reads storage only: a never-opened account
/// answers `account_not_found` and activates nothing.
#[utoipa::path(
    get,
    path = "/v1/accounts/{id}/transfers",
    operation_id = "list_account_transfers",
    tag = "accounts",
    description = "The transfers that name the account on either side, newest first. With \
        `status`, one request reads a bounded number of rows, so a page may hold fewer than \
        `limit` transfers and still have a `next_after`.",
    params(("id" = AccountId, Path, description = "The account."), TransfersQuery),
    responses(
        (status = 200, description = "A page of transfers.", body = TransfersPage),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
    )
)]
pub async fn transfers(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TransfersQuery>,
) -> Result<Response, HttpError> {
    let id = parse_account(id)?;
    caller.permits(Scope::Read, Some(&id))?;
    let limit = q.limit.unwrap_or(TRANSFERS_PAGE_DEFAULT);
    if limit == 0 || limit > TRANSFERS_PAGE_MAX {
        return Err(invalid(format!(
            "limit must be from 1 to {TRANSFERS_PAGE_MAX}"
        )));
    }
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(exec::decode_list_cursor(c).ok_or_else(|| {
            invalid("after must be the next_after of an earlier page of this list")
        })?),
    };
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let page = blocking(move || {
        let limit = limit as usize;
        exec::list_transfers(
            &store,
            &keys,
            &id,
            q.status,
            after,
            limit,
            exec::LISTED_SCAN_MAX,
        )
    })
    .await?;
    match page {
        Some(mut p) => {
            // A sharded account's list holds every shard's transfers, shown as its own.
            p.transfers = p.transfers.into_iter().map(|t| t.public()).collect();
            Ok(Json(p).into_response())
        }
        None => Err(ErrorCode::AccountNotFound.into()),
    }
}

/// A page of the journal of `journal` (an account's, or a shard's, then tagged `shard`): the
/// `/v1` route, and the admin one the audit reads.
pub(super) async fn entries_page(
    st: &AppState,
    journal: AccountId,
    shard: Option<u16>,
    q: EntriesQuery,
) -> Result<Response, HttpError> {
    let limit = q.limit.unwrap_or(ENTRIES_PAGE_DEFAULT);
    if limit == 0 || limit > ENTRIES_PAGE_MAX {
        return Err(invalid(format!(
            "limit must be from 1 to {ENTRIES_PAGE_MAX}"
        )));
    }
    let after = q.after_seq.unwrap_or(0);
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let page = blocking(move || exec::read_entries(&store, &keys, &journal, after, limit as usize))
        .await?;
    match page {
        Some(mut p) => {
            for e in &mut p.entries {
                e.shard = shard;
            }
            Ok(Json(p).into_response())
        }
        None => Err(ErrorCode::AccountNotFound.into()),
    }
}

/// Checks a `shard` parameter against the account: required and in range for a sharded
/// account (each shard has its own journal and `seq`), absent for any other.
pub(super) async fn shard_param(
    st: &AppState,
    id: &AccountId,
    shard: Option<u16>,
) -> Result<Option<u16>, HttpError> {
    match (sharded::shards_of(st, id).await?, shard) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(format!("account {id} is not sharded: omit shard"))),
        (Some(k), None) => Err(invalid(format!(
            "account {id} has {k} shards, each with its own journal and seq: add shard (0 to {})",
            k - 1
        ))),
        (Some(k), Some(j)) if j >= k => Err(invalid(format!(
            "shard must be from 0 to {} for account {id}",
            k - 1
        ))),
        (Some(_), Some(j)) => Ok(Some(j)),
    }
}
