//! `/v1/holds`: hold money for a later payment, then capture it (in full or in part), void it,
//! or let it expire.
//!
//! Capture and void go to the payer's actor, found by reading the hold (a hold's id does not
//! name its payer); the actor decides, so the first of capture, void and expiry it commits
//! wins. A capture answers like a transfer: 200 when its transfer completed within
//! `wait_ms`, 202 while it is under way, 422 with the receiver's refusal (the hold is `held`
//! again). Its body is the hold, read again after the capture settled.

use super::auth::Caller;
use super::error::{idempotency_key, invalid, ApiJson, HttpError};
use super::movements::{debit_request, wait_of};
use super::openapi::IdempotencyKeyHeader;
use super::transfers::{new_time_id, new_transfer_id};
use super::{blocking, sharded, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cluster_config::Scope;
use protocol::api::{
    CaptureRequest, HoldRequest, HoldView, TransferStatus, TransferView,
    HOLD_EXPIRES_IN_MS_DEFAULT, HOLD_EXPIRES_IN_MS_MAX, HOLD_EXPIRES_IN_MS_MIN,
};
use protocol::error::ErrorBody;
use protocol::{ApiError, ErrorCode, TransferId};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The 422 body of a capture: the error, and the hold when the receiver refused the capture.
#[derive(Serialize, ToSchema)]
pub struct CaptureRefused {
    /// Why: the receiver's refusal, or the refusal of a capture that never ran.
    pub error: ApiError,
    /// The hold, `held` again and capturable later: present when the receiver refused the
    /// capture (`account_frozen`, `account_closed`, `currency_mismatch`, `balance_overflow`,
    /// `transfer_aborted`); absent when the capture was refused before it ran
    /// (`hold_not_active`, `capture_exceeds_hold`, `account_frozen` of the payer,
    /// `idempotency_key_reused`).
    #[schema(required = false)]
    pub hold: HoldView,
}

/// `POST /v1/holds`: 201 and the hold.
#[utoipa::path(
    post,
    path = "/v1/holds",
    operation_id = "create_hold",
    tag = "holds",
    description = "Reserves `amount` on `from` for a later payment to `to`: it leaves `from`'s \
        `available` (journal entry `hold`), with the same checks as a transfer's debit. It \
        expires after `expires_in_ms` (default 7 days) unless captured or voided.",
    params(IdempotencyKeyHeader),
    request_body = HoldRequest,
    responses(
        (status = 201, description = "The hold, `held`.", body = HoldView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`insufficient_funds`, `same_account`, `account_frozen`, \
            `account_closed` or `idempotency_key_reused`.", body = ErrorBody),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<Response, HttpError> {
    let idem_key = debit_request(&caller, &headers, &body.from, body.reference.as_deref())?;
    let expires_in_ms = body.expires_in_ms.unwrap_or(HOLD_EXPIRES_IN_MS_DEFAULT);
    if !(HOLD_EXPIRES_IN_MS_MIN..=HOLD_EXPIRES_IN_MS_MAX).contains(&expires_in_ms) {
        return Err(invalid(format!(
            "expires_in_ms must be from {HOLD_EXPIRES_IN_MS_MIN} (1 second) to {HOLD_EXPIRES_IN_MS_MAX} (30 days)"
        )));
    }
    if body.from == body.to {
        return Err(ErrorCode::SameAccount.into());
    }
    let hold_id = new_time_id("h");
    let seed = sharded::seed(&idem_key, &hold_id);
    let cmd = Command::Hold {
        hold_id,
        to: sharded::credit_target(&st, &body.to, &seed).await?,
        amount: body.amount,
        expires_in_ms,
        reference: body.reference,
        idem_key,
    };
    let amount = body.amount.get();
    match sharded::debit(&st, &body.from, &seed, amount, cmd, Duration::ZERO).await? {
        Reply::Hold(view) => Ok((StatusCode::CREATED, Json(view.public())).into_response()),
        other => panic!("a hold command answered {other:?}"),
    }
}

/// `GET /v1/holds/{id}`: a caller limited to accounts sees only holds with one of them on
/// either side.
#[utoipa::path(
    get,
    path = "/v1/holds/{id}",
    operation_id = "get_hold",
    tag = "holds",
    params(("id" = TransferId, Path, description = "The hold's id (`h_...`).")),
    responses(
        (status = 200, description = "The hold.", body = HoldView),
        (status = 404, description = "`hold_not_found`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let view = read(&st, &id).await?.public();
    if !caller.may_access(&view.from) && !caller.may_access(&view.to) {
        return Err(HttpError(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the token may act on neither {} nor {}, the accounts of this hold",
                view.from, view.to
            ),
        )));
    }
    Ok((StatusCode::OK, Json(view)).into_response())
}

/// `POST /v1/holds/{id}/capture` (the body may be empty: capture everything).
#[utoipa::path(
    post,
    path = "/v1/holds/{id}/capture",
    operation_id = "capture_hold",
    tag = "holds",
    description = "Moves `amount` (default: all that is held) to `to` as a transfer (named \
        `capture_id` in the hold) and releases the rest; one capture per hold. Waits like a \
        transfer (`wait_ms`, default 5000). The body may be empty.",
    params(("id" = TransferId, Path, description = "The hold's id (`h_...`)."), IdempotencyKeyHeader),
    request_body(content = Option<CaptureRequest>,
        description = "May be empty: captures all that is held, waiting up to 5000 ms."),
    responses(
        (status = 200, description = "The hold, `captured`.", body = HoldView),
        (status = 202, description = "The hold, `capturing`: the receiver has not answered \
            within `wait_ms`.", body = HoldView),
        (status = 404, description = "`hold_not_found`.", body = ErrorBody),
        (status = 422, description = "The receiver refused (the hold is `held` again), or the \
            capture was refused before it ran (`hold_not_active`, `capture_exceeds_hold`).",
            body = CaptureRefused),
    )
)]
pub async fn capture(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, HttpError> {
    let body: CaptureRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CaptureRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| invalid(format!("malformed request body: {e}")))?
    };
    let wait = wait_of(body.wait_ms)?;
    let idem_key = idempotency_key(&headers)?.map(String::from);
    let hold = read(&st, &id).await?;
    // Money moves out of the payer: that is the account the token must name.
    caller.permits(Scope::Write, Some(&hold.from.public()))?;
    let cmd = Command::Capture {
        hold_id: hold.id.clone(),
        capture_id: new_transfer_id(),
        amount: body.amount,
        idem_key,
    };
    let (hold, transfer) = match st.shell.execute(&hold.from, cmd, wait).await? {
        Reply::Capture { hold, transfer } => (hold, transfer),
        other => panic!("a capture answered {other:?}"),
    };
    capture_response(&st, *hold, transfer).await
}

/// The response to a capture whose transfer is `transfer`; a settled one is shown with the
/// hold as it is now.
async fn capture_response(
    st: &AppState,
    hold: HoldView,
    transfer: TransferView,
) -> Result<Response, HttpError> {
    let hold = match transfer.status {
        TransferStatus::Pending => hold,
        _ => read(st, hold.id.as_str()).await?,
    }
    .public();
    Ok(match transfer.status {
        TransferStatus::Completed => (StatusCode::OK, Json(hold)).into_response(),
        TransferStatus::Pending => (StatusCode::ACCEPTED, Json(hold)).into_response(),
        TransferStatus::Failed => {
            let code = transfer
                .reason
                .expect("a failed transfer records its reason");
            let error = ApiError::new(
                code,
                format!(
                    "the capture of hold {} was refused: {}; the hold is {}",
                    hold.id,
                    code.default_message(),
                    hold.status.as_str()
                ),
            );
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(CaptureRefused { error, hold }),
            )
                .into_response()
        }
    })
}

/// `POST /v1/holds/{id}/void`: 200 and the hold, `voided`.
#[utoipa::path(
    post,
    path = "/v1/holds/{id}/void",
    operation_id = "void_hold",
    tag = "holds",
    description = "Releases everything (journal entry `release`).",
    params(("id" = TransferId, Path, description = "The hold's id (`h_...`)."), IdempotencyKeyHeader),
    responses(
        (status = 200, description = "The hold, `voided`.", body = HoldView),
        (status = 404, description = "`hold_not_found`.", body = ErrorBody),
        (status = 422, description = "`hold_not_active` (the message names the hold's status) \
            or `idempotency_key_reused`.", body = ErrorBody),
    )
)]
pub async fn void(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let idem_key = idempotency_key(&headers)?.map(String::from);
    let hold = read(&st, &id).await?;
    caller.permits(Scope::Write, Some(&hold.from.public()))?;
    let cmd = Command::Void {
        hold_id: hold.id.clone(),
        idem_key,
    };
    match st.shell.execute(&hold.from, cmd, Duration::ZERO).await? {
        Reply::Hold(view) => Ok((StatusCode::OK, Json(view.public())).into_response()),
        other => panic!("a void answered {other:?}"),
    }
}

/// The hold `id` as stored (shards' ids as they are), or `hold_not_found`.
async fn read(st: &AppState, id: &str) -> Result<HoldView, HttpError> {
    let id = TransferId::new(id).map_err(invalid)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    blocking(move || exec::read_hold(&store, &keys, &id))
        .await?
        .ok_or_else(|| ErrorCode::HoldNotFound.into())
}
