//! `disburse FROM TO:AMOUNT...`: one payer, many receivers, all or nothing.
//!
//! Sent with an idempotency key (`--key`, or a generated one printed when the outcome is
//! unknown). Exit 0 once completed; non-zero while still pending (with its id) or when it
//! failed (the failing leg's code), after printing the disbursement and its legs.

use crate::client::{CliError, ATTEMPTS};
use crate::commands::{account_id, amount, key_or_random, reference, Ctx, Failure};
use crate::output;
use protocol::api::{
    DisbursementLegRequest, DisbursementRequest, DisbursementView, TransferStatus,
    DISBURSEMENT_LEGS_MAX, TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX,
};
use protocol::ApiError;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// Time allowed past the node's own wait for the answer to arrive.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

/// A failed disbursement's 422 body.
#[derive(Deserialize)]
struct FailedBody {
    error: ApiError,
    disbursement: DisbursementView,
}

/// `disburse FROM TO:AMOUNT... [--key K] [--reference R] [--wait-ms MS]`.
pub fn run(
    ctx: &Ctx,
    from: &str,
    legs: &[String],
    key: Option<&str>,
    reference_text: Option<String>,
    wait_ms: Option<u64>,
) -> Result<(), Failure> {
    let from = account_id("from account", from)?;
    if legs.is_empty() || legs.len() > DISBURSEMENT_LEGS_MAX {
        return Err(CliError::Usage(format!(
            "give 1 to {DISBURSEMENT_LEGS_MAX} legs as TO:AMOUNT, got {}",
            legs.len()
        ))
        .into());
    }
    let mut parsed = Vec::with_capacity(legs.len());
    let mut seen = BTreeSet::new();
    for leg in legs {
        let (to, a) = leg.split_once(':').ok_or_else(|| {
            CliError::Usage(format!(
                "leg {leg:?}: write it TO:AMOUNT (for example bob:2500)"
            ))
        })?;
        let to = account_id("leg account", to)?;
        if to == from || !seen.insert(to.clone()) {
            return Err(CliError::Usage(format!(
                "leg {leg:?}: each leg pays a different account, not {from}"
            ))
            .into());
        }
        parsed.push(DisbursementLegRequest {
            to,
            amount: amount(a)?,
        });
    }
    if let Some(w) = wait_ms.filter(|w| *w > TRANSFER_WAIT_MS_MAX) {
        return Err(
            CliError::Usage(format!("--wait-ms {w}: at most {TRANSFER_WAIT_MS_MAX}")).into(),
        );
    }
    let body = DisbursementRequest {
        from,
        legs: parsed,
        reference: reference(reference_text)?,
        wait_ms,
    };
    let key = key_or_random(key)?;
    let wait = Duration::from_millis(wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT));
    let raw = ctx
        .client
        .post_raw(
            "/v1/disbursements",
            &body,
            &key,
            wait + TIMEOUT_MARGIN,
            ATTEMPTS,
        )
        .map_err(Failure::keyed(&key))?;
    let view: DisbursementView = if raw.is_success() {
        raw.json().map_err(Failure::keyed(&key))?
    } else if let Ok(failed) = serde_json::from_slice::<FailedBody>(&raw.body) {
        show(ctx, &failed.disbursement)?;
        return Err(Failure {
            error: CliError::Api {
                error: failed.error,
            },
            key: None,
        });
    } else {
        return Err(Failure::keyed(&key)(raw.error()));
    };
    show(ctx, &view)?;
    match view.status {
        TransferStatus::Pending => Err(Failure {
            error: CliError::Pending {
                kind: "disbursement",
                transfer_id: view.id.to_string(),
                wait_ms: wait.as_millis() as u64,
            },
            key: Some(key),
        }),
        _ => Ok(()),
    }
}

fn show(ctx: &Ctx, view: &DisbursementView) -> Result<(), CliError> {
    if ctx.json {
        output::json(view)
    } else {
        output::line(output::disbursement(view))
    }
}
