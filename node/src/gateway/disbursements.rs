//! `/v1/disbursements`: one payer, many receivers, all or nothing (Try-Confirm/Cancel between
//! the payer's account and each receiver's), and reading one.
//!
//! The payer's actor coordinates; the request waits for the outcome like a transfer (200
//! `completed`, 202 `pending`, 422 `failed` with the first refusal), its legs as recorded.

use super::auth::Caller;
use super::error::{invalid, ApiJson, HttpError};
use super::movements::{debit_request, wait_of};
use super::openapi::IdempotencyKeyHeader;
use super::transfers::new_time_id;
use super::{blocking, sharded, AppState};
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use protocol::api::{DisbursementRequest, DisbursementView, TransferStatus, DISBURSEMENT_LEGS_MAX};
use protocol::error::ErrorBody;
use protocol::{ApiError, ErrorCode, TransferId};
use serde::Serialize;
use std::collections::BTreeSet;
use utoipa::ToSchema;

/// The 422 body of `POST /v1/disbursements`: the error, and the disbursement when it ran and
/// failed.
#[derive(Serialize, ToSchema)]
pub struct DisbursementFailed {
    /// Why: the first refusal (the failing leg's), or the refusal of a request that never ran.
    pub error: ApiError,
    /// The disbursement, `failed`, its failing leg marked: present when it ran and failed;
    /// absent when it was refused before it ran (for example `insufficient_funds`,
    /// `same_account`), and then nothing was recorded.
    #[schema(required = false)]
    pub disbursement: DisbursementView,
}

/// `POST /v1/disbursements`: 200 completed within `wait_ms`, 202 pending, 422 failed.
#[utoipa::path(
    post,
    path = "/v1/disbursements",
    operation_id = "create_disbursement",
    tag = "disbursements",
    description = "One debit, 1 to 256 credits (distinct receivers, none the payer, all in its \
        currency), all or nothing: every leg is credited or none. Waits like a transfer \
        (`wait_ms`, default 5000).",
    params(IdempotencyKeyHeader),
    request_body = DisbursementRequest,
    responses(
        (status = 200, description = "`completed`: every leg credited.", body = DisbursementView),
        (status = 202, description = "`pending`: not settled within `wait_ms`.", body = DisbursementView),
        (status = 404, description = "`account_not_found` (the payer).", body = ErrorBody),
        (status = 422, description = "`failed`, with the disbursement (a receiver refused or \
            never answered: no leg credited), or refused before it ran, without it (for example \
            `insufficient_funds`, `same_account`, `idempotency_key_reused`).",
            body = DisbursementFailed),
    )
)]
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
            let body = DisbursementFailed {
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
#[utoipa::path(
    get,
    path = "/v1/disbursements/{id}",
    operation_id = "get_disbursement",
    tag = "disbursements",
    description = "A token limited to accounts reads a disbursement that names one of them; \
        one that may not act on the payer sees only its own legs.",
    params(("id" = TransferId, Path, description = "The disbursement's id (`d_...`).")),
    responses(
        (status = 200, description = "The disbursement.", body = DisbursementView),
        (status = 404, description = "`disbursement_not_found`.", body = ErrorBody),
    )
)]
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
