//! `/v1/disbursements`: one payer, many receivers, all or nothing (Try-Confirm/Cancel between
//! the payer's account and each receiver's), and reading one.
//!
//! The payer's actor coordinates; the request waits for the outcome like a transfer (200
//! `completed`, 202 `pending`, 422 `failed` with the first refusal), its legs as recorded.

use super::auth::Caller;
use super::error::{invalid, ApiJson, HttpError};
use super::movements::{debit_request, wait_of};
use super::transfers::new_time_id;
use super::{blocking, sharded, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::api::{DisbursementRequest, DisbursementView, TransferStatus, DISBURSEMENT_LEGS_MAX};
use protocol::{ApiError, ErrorCode, TransferId};
use serde::Serialize;
use std::collections::BTreeSet;

/// The body of a failed disbursement: the error, and the disbursement.
#[derive(Serialize)]
struct FailedBody {
    error: ApiError,
    disbursement: DisbursementView,
}

/// `POST /v1/disbursements`: 200 completed within `wait_ms`, 202 pending, 422 failed.
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DisbursementRequest>,
) -> Result<Response, HttpError> {
    // Money moves out of `from`: that is the account the token must name.
    let idem_key = debit_request(&caller, &headers, &body.from, body.reference.as_deref())?;
    let wait = wait_of(body.wait_ms)?;
    if body.legs.is_empty() || body.legs.len() > DISBURSEMENT_LEGS_MAX {
        return Err(invalid(format!(
            "legs must hold 1 to {DISBURSEMENT_LEGS_MAX} items, got {}",
            body.legs.len()
        )));
    }
    if body.legs.iter().any(|l| l.to == body.from) {
        return Err(ApiError::new(
            ErrorCode::SameAccount,
            format!("a leg pays {}, the paying account", body.from),
        )
        .into());
    }
    let receivers: BTreeSet<_> = body.legs.iter().map(|l| &l.to).collect();
    if receivers.len() != body.legs.len() {
        return Err(invalid("each leg must pay a different account"));
    }
    let disbursement_id = new_time_id("d");
    let seed = sharded::seed(&idem_key, &disbursement_id);
    let total = body
        .legs
        .iter()
        .fold(0u64, |t, l| t.saturating_add(l.amount.get()));
    let mut legs = Vec::with_capacity(body.legs.len());
    for l in body.legs {
        let to = sharded::credit_target(&st, &l.to, &format!("{seed}:{}", l.to)).await?;
        legs.push((to, l.amount));
    }
    let cmd = Command::Disburse {
        disbursement_id,
        legs,
        reference: body.reference,
        idem_key,
    };
    // Settled, the reply carries every leg as recorded (`Reply::settled`).
    match sharded::debit(&st, &body.from, &seed, total, cmd, wait).await? {
        Reply::Disbursement(view) => Ok(response(*view)),
        other => panic!("a disbursement answered {other:?}"),
    }
}

/// The response for a disbursement in any state (shards' ids shown as their accounts').
fn response(view: DisbursementView) -> Response {
    let view = view.public();
    match view.status {
        TransferStatus::Completed => (StatusCode::OK, Json(view)).into_response(),
        TransferStatus::Pending => (StatusCode::ACCEPTED, Json(view)).into_response(),
        TransferStatus::Failed => {
            let code = view
                .reason
                .expect("a failed disbursement records its reason");
            let leg = view
                .legs
                .iter()
                .find(|l| l.reason.is_some())
                .map_or_else(String::new, |l| format!(" (the leg to {})", l.to));
            let error = ApiError::new(
                code,
                format!(
                    "disbursement {} failed{leg}: {}; no leg was credited",
                    view.id,
                    code.default_message()
                ),
            );
            let body = FailedBody {
                error,
                disbursement: view,
            };
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
    }
}

/// `GET /v1/disbursements/{id}`: a caller limited to accounts sees only disbursements that
/// name one of them; one that may not act on the payer sees only its own legs (not the
/// other receivers of a payroll).
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let mut view = read(&st, &id).await?.public();
    if !caller.may_access(&view.from) {
        view.legs.retain(|l| caller.may_access(&l.to));
        if view.legs.is_empty() {
            return Err(HttpError(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "the token may act on no account of disbursement {}",
                    view.id
                ),
            )));
        }
    }
    Ok((StatusCode::OK, Json(view)).into_response())
}

/// The disbursement `id` as stored, or `disbursement_not_found`.
async fn read(st: &AppState, id: &str) -> Result<DisbursementView, HttpError> {
    let id = TransferId::new(id).map_err(invalid)?;
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    blocking(move || exec::read_disbursement(&store, &keys, &id))
        .await?
        .ok_or_else(|| ErrorCode::DisbursementNotFound.into())
}
