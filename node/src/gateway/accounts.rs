//! `/v1/accounts`: open, read, freeze, unfreeze, history.

use super::auth::Caller;
use super::error::{invalid, ApiJson, ApiQuery, HttpError};
use super::{blocking, parse_account, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cluster_config::Scope;
use protocol::api::{
    EntriesQuery, OpenAccount, TransfersQuery, ENTRIES_PAGE_DEFAULT, ENTRIES_PAGE_MAX,
    TRANSFERS_PAGE_DEFAULT, TRANSFERS_PAGE_MAX,
};
use protocol::{AccountId, ErrorCode};
use std::time::Duration;

/// `POST /v1/accounts`: 201 when created, 200 when it existed with the same settings.
pub async fn open(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OpenAccount>,
) -> Result<Response, HttpError> {
    caller.permits(Scope::Write, Some(&body.id))?;
    let open = Command::Open {
        currency: body.currency,
    };
    let reply = st.shell.execute(&body.id, open, Duration::ZERO).await?;
    account_response(reply)
}

/// `GET /v1/accounts/{id}`: strongly consistent, served by the account's actor.
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    on_account(st, caller, Scope::Read, id, Command::Get).await
}

/// `POST /v1/accounts/{id}/freeze`.
pub async fn freeze(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    on_account(st, caller, Scope::Write, id, Command::Freeze).await
}

/// `POST /v1/accounts/{id}/unfreeze`.
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
    let reply = st.shell.execute(&id, cmd, Duration::ZERO).await?;
    account_response(reply)
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
pub async fn entries(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Response, HttpError> {
    let id = parse_account(id)?;
    caller.permits(Scope::Read, Some(&id))?;
    entries_page(&st, id, q).await
}

/// `GET /v1/accounts/{id}/transfers?status=&after=&limit=`: the account's transfers (either
/// side), newest first, read from its transfer list (written in the transaction that first
/// recorded each transfer), so the list is exact. Reads storage only: a never-opened account
/// answers `account_not_found` and activates nothing.
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
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ErrorCode::AccountNotFound.into()),
    }
}

/// A page of an account's journal (the `/v1` route, and the admin one the audit reads).
pub(super) async fn entries_page(
    st: &AppState,
    id: AccountId,
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
    let page =
        blocking(move || exec::read_entries(&store, &keys, &id, after, limit as usize)).await?;
    match page {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ErrorCode::AccountNotFound.into()),
    }
}
