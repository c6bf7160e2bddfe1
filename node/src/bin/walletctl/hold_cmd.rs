//! `hold create|show|capture|void`: authorize money now, move it (in full or in part) or
//! release it later.
//!
//! Every mutation is sent with an idempotency key (`--key`, or a generated one printed when
//! the outcome is unknown), so the client's retries never hold or capture twice. A capture
//! waits for its transfer like `transfer` does: exit 0 once captured, non-zero while it is
//! still under way (with the capture's transfer id) or when the receiver refused it.

use crate::client::{CliError, ATTEMPTS, REQUEST_TIMEOUT};
use crate::commands::{account_id, amount, key_or_random, reference, Ctx, Failure};
use crate::output;
use protocol::api::{
    CaptureRequest, HoldRequest, HoldStatus, HoldView, HOLD_EXPIRES_IN_MS_MAX,
    HOLD_EXPIRES_IN_MS_MIN, TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX,
};
use protocol::TransferId;
use std::time::Duration;

/// Time allowed past the node's own wait for a capture's answer to arrive.
const CAPTURE_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

/// Arguments of `hold create`, as typed.
pub struct CreateArgs<'a> {
    /// Payer.
    pub from: &'a str,
    /// Account a capture pays.
    pub to: &'a str,
    /// Amount, minor units.
    pub amount: &'a str,
    /// Life of the hold, ms.
    pub expires_in_ms: Option<u64>,
    /// Idempotency key.
    pub key: Option<&'a str>,
    /// Free text.
    pub reference: Option<String>,
}

/// `hold create FROM TO AMOUNT [--expires-in-ms MS] [--key K] [--reference R]`.
pub fn create(ctx: &Ctx, a: CreateArgs<'_>) -> Result<(), Failure> {
    let from = account_id("from account", a.from)?;
    let to = account_id("to account", a.to)?;
    if from == to {
        return Err(
            CliError::Usage(format!("a hold pays another account, got {from} twice")).into(),
        );
    }
    if let Some(ms) = a.expires_in_ms {
        if !(HOLD_EXPIRES_IN_MS_MIN..=HOLD_EXPIRES_IN_MS_MAX).contains(&ms) {
            return Err(CliError::Usage(format!(
                "--expires-in-ms {ms}: from {HOLD_EXPIRES_IN_MS_MIN} (1 second) to {HOLD_EXPIRES_IN_MS_MAX} (30 days)"
            ))
            .into());
        }
    }
    let body = HoldRequest {
        from,
        to,
        amount: amount(a.amount)?,
        expires_in_ms: a.expires_in_ms,
        reference: reference(a.reference)?,
    };
    let key = key_or_random(a.key)?;
    let view: HoldView = ctx
        .client
        .post_raw("/v1/holds", &body, &key, REQUEST_TIMEOUT, ATTEMPTS)
        .and_then(|raw| raw.into_result())
        .map_err(Failure::keyed(&key))?;
    show_view(ctx, &view)
}

/// `hold show ID`.
pub fn show(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let id = hold_id(id)?;
    let view: HoldView = ctx.client.get(&format!("/v1/holds/{id}"))?;
    show_view(ctx, &view)
}

/// `hold capture ID [--amount A] [--wait-ms MS] [--key K]`.
pub fn capture(
    ctx: &Ctx,
    id: &str,
    capture_amount: Option<&str>,
    wait_ms: Option<u64>,
    key: Option<&str>,
) -> Result<(), Failure> {
    let id = hold_id(id)?;
    if let Some(w) = wait_ms.filter(|w| *w > TRANSFER_WAIT_MS_MAX) {
        return Err(
            CliError::Usage(format!("--wait-ms {w}: at most {TRANSFER_WAIT_MS_MAX}")).into(),
        );
    }
    let body = CaptureRequest {
        amount: capture_amount.map(amount).transpose()?,
        wait_ms,
    };
    let key = key_or_random(key)?;
    let wait = Duration::from_millis(wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT));
    let path = format!("/v1/holds/{id}/capture");
    let view: HoldView = ctx
        .client
        .post_raw(&path, &body, &key, wait + CAPTURE_TIMEOUT_MARGIN, ATTEMPTS)
        .and_then(|raw| raw.into_result())
        .map_err(Failure::keyed(&key))?;
    show_view(ctx, &view)?;
    if view.status == HoldStatus::Capturing {
        let transfer = view
            .capture_id
            .as_ref()
            .map_or_else(String::new, TransferId::to_string);
        return Err(Failure {
            error: CliError::Pending {
                kind: "transfer",
                transfer_id: transfer,
                wait_ms: wait.as_millis() as u64,
            },
            key: Some(key),
        });
    }
    Ok(())
}

/// `hold void ID [--key K]`.
pub fn void(ctx: &Ctx, id: &str, key: Option<&str>) -> Result<(), Failure> {
    let id = hold_id(id)?;
    let key = key_or_random(key)?;
    let view: HoldView = ctx
        .client
        .post_empty(&format!("/v1/holds/{id}/void"), &key)
        .and_then(|raw| raw.into_result())
        .map_err(Failure::keyed(&key))?;
    show_view(ctx, &view)
}

fn hold_id(id: &str) -> Result<TransferId, CliError> {
    TransferId::new(id).map_err(|m| CliError::Usage(format!("hold {id:?}: {m}")))
}

fn show_view(ctx: &Ctx, view: &HoldView) -> Result<(), Failure> {
    if ctx.json {
        output::json(view)?;
    } else {
        output::line(output::hold(view))?;
    }
    Ok(())
}
