//! `/v1/transfers`: start a transfer saga and wait for it to settle, or read one.

use super::auth::Caller;
use super::error::{invalid, ApiJson, HttpError};
use super::movements::{debit_request, wait_of};
use super::openapi::IdempotencyKeyHeader;
use super::{blocking, sharded, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::api::{TransferRequest, TransferStatus, TransferView};
use protocol::error::ErrorBody;
use protocol::{ApiError, ErrorCode, TransferId};
use serde::Serialize;
use utoipa::ToSchema;

/// The 422 body of `POST /v1/transfers`: the error, and the transfer when it ran and failed.
#[derive(Serialize, ToSchema)]
pub struct TransferFailed {
    /// Why: the transfer's `reason`, or the refusal of a request that never ran.
    pub error: ApiError,
    /// The transfer, `failed`: present when it ran and failed (its `reason` is `error.code`);
    /// absent when it was refused before it ran (for example `insufficient_funds`), and then
    /// nothing was recorded.
    #[schema(required = false)]
    pub transfer: TransferView,
}

/// `POST /v1/transfers`: 200 completed within `wait_ms`, 202 pending, 422 failed.
#[utoipa::path(
    post,
    path = "/v1/transfers",
    operation_id = "create_transfer",
    tag = "transfers",
    description = "Starts a transfer saga and waits up to `wait_ms` (default 5000) for it to \
        settle. A `pending` transfer settles later: read it with `GET /v1/transfers/{id}`.",
    params(IdempotencyKeyHeader),
    request_body = TransferRequest,
    responses(
        (status = 200, description = "`completed`: debited once and credited once.", body = TransferView),
        (status = 202, description = "`pending`: not settled within `wait_ms`.", body = TransferView),
        (status = 404, description = "`account_not_found`.", body = ErrorBody),
        (status = 422, description = "`failed`, with the transfer: the receiver refused \
            (for example `account_frozen`, `currency_mismatch`, `balance_overflow`) or did not \
            decide in time (`transfer_aborted`); or refused before it ran, without a transfer \
            (for example `insufficient_funds`, `same_account`, `idempotency_key_reused`).",
            body = TransferFailed),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, HttpError> {
    // Money moves out of `from`: that is the account the token must name.
    let idem_key = debit_request(&caller, &headers, &body.from, body.reference.as_deref())?;
    let wait = wait_of(body.wait_ms)?;
    if body.from == body.to {
        return Err(ErrorCode::SameAccount.into());
    }
    let cmd = Command::Transfer {
        transfer_id: new_transfer_id(),
        to: body.to,
        amount: body.amount,
        reference: body.reference,
        idem_key,
    };
    let Reply::Transfer(view) = sharded::transfer(&st, &body.from, cmd, wait).await? else {
        panic!("a transfer command answered another reply");
    };
    Ok(transfer_response(view))
}

/// The response for a transfer in any state (shards' ids shown as their accounts').
pub fn transfer_response(view: TransferView) -> Response {
    let view = view.public();
    match view.status {
        TransferStatus::Completed => (StatusCode::OK, Json(view)).into_response(),
        TransferStatus::Pending => (StatusCode::ACCEPTED, Json(view)).into_response(),
        TransferStatus::Failed => {
            let code = view.reason.expect("a failed transfer records its reason");
            let error = ApiError::new(
                code,
                format!("transfer {} failed: {}", view.id, code.default_message()),
            );
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(TransferFailed {
                    error,
                    transfer: view,
                }),
            )
                .into_response()
        }
    }
}

/// `GET /v1/transfers/{id}`. A caller limited to accounts sees only transfers with one of
/// them on either side; any other answers 403 `forbidden`.
#[utoipa::path(
    get,
    path = "/v1/transfers/{id}",
    operation_id = "get_transfer",
    tag = "transfers",
    description = "A token limited to accounts reads only transfers with one of them on \
        either side (403 `forbidden` otherwise).",
    params(("id" = TransferId, Path, description = "The transfer's id.")),
    responses(
        (status = 200, description = "The transfer.", body = TransferView),
        (status = 404, description = "`transfer_not_found`.", body = ErrorBody),
    )
)]
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let id = TransferId::new(id).map_err(invalid)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    match blocking(move || exec::read_transfer(&store, &keys, &id))
        .await?
        .map(TransferView::public)
    {
        Some(view) if caller.may_access(&view.from) || caller.may_access(&view.to) => {
            Ok((StatusCode::OK, Json(view)).into_response())
        }
        // As API.md says for a token without the account. Ids carry 80 random bits, so the
        // difference from `transfer_not_found` tells nothing a guess could use.
        Some(view) => Err(HttpError(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "the token may act on neither {} nor {}, the accounts of this transfer",
                view.from, view.to
            ),
        ))),
        None => Err(ErrorCode::TransferNotFound.into()),
    }
}

/// A new transfer id: `t_`, the time in ms (12 hex digits) and 80 random bits, so ids never
/// collide across nodes and restarts, and ids made close in time sort close together: the
/// transfer summaries and the pending index (keyed by transfer id) then grow at their end,
/// and a group commit dirties a few pages there instead of one random page per transfer.
pub fn new_transfer_id() -> TransferId {
    new_time_id("t")
}

/// A new id of `{prefix}_`, the time in ms (12 hex digits) and 80 random bits: see
/// [`new_transfer_id`].
pub fn new_time_id(prefix: &str) -> TransferId {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut b = [0u8; 10];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    let rand: String = b.iter().map(|x| format!("{x:02x}")).collect();
    TransferId::new(format!("{prefix}_{:012x}{rand}", ms & 0xffff_ffff_ffff))
        .expect("generated ids are valid")
}

/// `{prefix}_` followed by 128 random bits in hex.
pub fn random_hex_id(prefix: &str) -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_ids_are_unique_and_sort_by_creation_time() {
        // Proves ids made later sort after earlier ones (so the summaries' and the pending
        // index's inserts go to the end of their key range) and never repeat.
        let first = new_transfer_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let ids: Vec<TransferId> = (0..1_000).map(|_| new_transfer_id()).collect();
        assert!(ids.iter().all(|id| id.as_str() > first.as_str()));
        let distinct: std::collections::BTreeSet<&str> = ids.iter().map(|i| i.as_str()).collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(first.as_str().starts_with("t_") && first.as_str().len() == 2 + 12 + 20);
    }
}
