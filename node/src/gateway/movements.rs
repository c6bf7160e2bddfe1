//! `/v1/deposits` and `/v1/withdrawals`.

use super::auth::Caller;
use super::error::{idempotency_key, invalid, ApiJson, HttpError};
use super::openapi::IdempotencyKeyHeader;
use super::{sharded, AppState};
use crate::ledger::account::{Command, Reply};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cluster_config::Scope;
use protocol::api::{Movement, MovementView, TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX};
use protocol::error::ErrorBody;
use protocol::ids::REFERENCE_LEN_MAX;
use protocol::AccountId;
use std::time::Duration;

/// `POST /v1/deposits`.
#[utoipa::path(
    post,
    path = "/v1/deposits",
    operation_id = "deposit",
    tag = "movements",
    description = "Money in from outside. On a sharded account the credit goes to the shard \
        the idempotency key picks: the answer names it, and its `balance` and `seq` are that \
        shard's.",
    params(IdempotencyKeyHeader),
    request_body = Movement,
    responses(
        (status = 201, description = "Deposited.", body = MovementView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`account_frozen`, `account_closed`, `balance_overflow` or \
            `idempotency_key_reused`.", body = ErrorBody),
    )
)]
pub async fn deposit(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Movement>,
) -> Result<Response, HttpError> {
    caller.permits(Scope::Write, Some(&body.account))?;
    movement(st, headers, body, true).await
}

/// `POST /v1/withdrawals`.
#[utoipa::path(
    post,
    path = "/v1/withdrawals",
    operation_id = "withdraw",
    tag = "movements",
    description = "Money out to outside.",
    params(IdempotencyKeyHeader),
    request_body = Movement,
    responses(
        (status = 201, description = "Withdrawn.", body = MovementView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`insufficient_funds`, `account_frozen`, `account_closed` \
            or `idempotency_key_reused`.", body = ErrorBody),
    )
)]
pub async fn withdraw(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Movement>,
) -> Result<Response, HttpError> {
    caller.permits(Scope::Write, Some(&body.account))?;
    movement(st, headers, body, false).await
}

async fn movement(
    st: AppState,
    headers: HeaderMap,
    body: Movement,
    deposit: bool,
) -> Result<Response, HttpError> {
    let idem_key = idempotency_key(&headers)?.map(String::from);
    check_reference(body.reference.as_deref())?;
    let cmd = if deposit {
        Command::Deposit {
            amount: body.amount,
            reference: body.reference,
            idem_key,
        }
    } else {
        Command::Withdraw {
            amount: body.amount,
            reference: body.reference,
            idem_key,
        }
    };
    // On a sharded account, the shard the key picks (so a repeat finds its record).
    match sharded::run(&st, &body.account, cmd, Duration::ZERO).await? {
        Reply::Movement(view) => Ok((StatusCode::CREATED, Json(view.public())).into_response()),
        other => panic!("movement answered {other:?}"),
    }
}

/// Refuses a reference longer than the limit.
pub fn check_reference(reference: Option<&str>) -> Result<(), HttpError> {
    match reference {
        Some(r) if r.len() > REFERENCE_LEN_MAX => Err(invalid(format!(
            "reference must be at most {REFERENCE_LEN_MAX} bytes"
        ))),
        _ => Ok(()),
    }
}

/// How long a request may wait for its saga to settle: `wait_ms` (default
/// [`TRANSFER_WAIT_MS_DEFAULT`], at most [`TRANSFER_WAIT_MS_MAX`]).
pub fn wait_of(wait_ms: Option<u64>) -> Result<Duration, HttpError> {
    let wait_ms = wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT);
    if wait_ms > TRANSFER_WAIT_MS_MAX {
        return Err(invalid(format!(
            "wait_ms must be at most {TRANSFER_WAIT_MS_MAX}"
        )));
    }
    Ok(Duration::from_millis(wait_ms))
}

/// The first checks of a request that moves money out of `from`: the token may act on it, and
/// the idempotency key and the reference are valid. Returns the key.
pub fn debit_request(
    caller: &Caller,
    headers: &HeaderMap,
    from: &AccountId,
    reference: Option<&str>,
) -> Result<Option<String>, HttpError> {
    caller.permits(Scope::Write, Some(from))?;
    let idem_key = idempotency_key(headers)?.map(String::from);
    check_reference(reference)?;
    Ok(idem_key)
}
