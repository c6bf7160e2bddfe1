//! `/v1/transfers`: start a transfer saga and wait for it to settle, or read one.

use super::error::{idempotency_key, invalid, ApiJson, HttpError};
use super::movements::check_reference;
use super::{blocking, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::api::{
    TransferRequest, TransferStatus, TransferView, TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX,
};
use protocol::{ApiError, ErrorCode, TransferId};
use serde::Serialize;
use std::time::Duration;

/// The body of a failed transfer: the error, and the transfer it refers to.
#[derive(Serialize)]
struct FailedBody {
    error: ApiError,
    transfer: TransferView,
}

/// `POST /v1/transfers`: 200 completed within `wait_ms`, 202 pending, 422 failed.
pub async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, HttpError> {
    let idem_key = idempotency_key(&headers)?.map(String::from);
    check_reference(body.reference.as_deref())?;
    let wait_ms = body.wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT);
    if wait_ms > TRANSFER_WAIT_MS_MAX {
        return Err(invalid(format!(
            "wait_ms must be at most {TRANSFER_WAIT_MS_MAX}"
        )));
    }
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
    let wait = Duration::from_millis(wait_ms);
    let Reply::Transfer(view) = st.shell.execute(&body.from, cmd, wait).await? else {
        panic!("a transfer command answered another reply");
    };
    Ok(transfer_response(view))
}

/// The response for a transfer in any state.
pub fn transfer_response(view: TransferView) -> Response {
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
                Json(FailedBody {
                    error,
                    transfer: view,
                }),
            )
                .into_response()
        }
    }
}

/// `GET /v1/transfers/{id}`.
pub async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let id = TransferId::new(id).map_err(invalid)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    match blocking(move || exec::read_transfer(&store, &keys, &id)).await? {
        Some(view) => Ok((StatusCode::OK, Json(view)).into_response()),
        None => Err(ErrorCode::TransferNotFound.into()),
    }
}

/// A new transfer id: 128 random bits, so ids never collide across nodes and restarts.
pub fn new_transfer_id() -> TransferId {
    TransferId::new(random_hex_id("t")).expect("generated ids are valid")
}

/// `{prefix}_` followed by 128 random bits in hex.
pub fn random_hex_id(prefix: &str) -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS provides randomness");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{prefix}_{hex}")
}
