//! `POST /v1/transfers/batch`: many transfers in one request.
//!
//! Each item is its own transfer, exactly as `POST /v1/transfers` (same validation, same saga,
//! same durability); items are not atomic with each other. The gateway decodes and validates
//! every item on its own (a bad item gets its own `invalid_request`, only a malformed envelope
//! fails the request), groups the valid ones by sender, and hands each sender's items to its
//! account in one message ([`crate::cluster::Shell::execute_many`]), so they queue together,
//! in the order given, and commit in as few batches as the account's batch cap allows; the
//! senders run concurrently. Results come back in the items' order, after waiting up to
//! `wait_ms` in all for the sagas to settle.
//!
//! A token limited to accounts must name the sender of every item it could decode; if one is
//! not allowed, the whole request is refused `forbidden` and nothing runs (a client that sends
//! such an item is misconfigured, and a partial run would be harder to reason about).
//!
//! Left out: items of a sender another node owns are forwarded one by one (in order), not in
//! one message.

use super::auth::Caller;
use super::error::{invalid, ApiJson, HttpError};
use super::movements::check_reference;
use super::transfers::new_transfer_id;
use super::{sharded, AppState};
use crate::ledger::account::{Command, Reply};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cluster_config::Scope;
use protocol::api::{
    BatchResult, BatchTransferItem, BatchTransfersRequest, BatchTransfersResponse,
    BATCH_TRANSFERS_MAX,
};
use protocol::{AccountId, ApiError, ErrorCode};
use std::collections::BTreeMap;
use tokio::task::JoinSet;

/// Largest body of a batch request (8,190 items of the largest size fit).
pub const BATCH_BODY_BYTES_MAX: usize = 6 * 1024 * 1024;

/// `POST /v1/transfers/batch`: 200 with one result per item, in order.
#[utoipa::path(
    post,
    path = "/v1/transfers/batch",
    operation_id = "create_transfer_batch",
    tag = "transfers",
    description = "1 to 8,190 transfers, each exactly as `POST /v1/transfers` (same \
        validation, saga and durability); items are not atomic with each other, and the items \
        of one sender are applied in the order given. Each item carries its own \
        `idempotency_key` (what the header means for one transfer): the route takes no \
        `Idempotency-Key` header. `wait_ms` bounds the whole request's wait. The body may be \
        up to 6 MiB.",
    request_body = BatchTransfersRequest,
    responses(
        (status = 200, description = "One result per item, in order: the transfer \
            (`completed`, `pending`, or `failed` with `reason`), or the error that refused the \
            item before it ran (`unavailable`: its outcome is unknown, retry with its key).",
            body = BatchTransfersResponse),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BatchTransfersRequest>,
) -> Result<Response, HttpError> {
    let n = body.transfers.len();
    if n == 0 || n > BATCH_TRANSFERS_MAX {
        return Err(invalid(format!(
            "transfers must hold 1 to {BATCH_TRANSFERS_MAX} items, not {n}"
        )));
    }
    let wait = super::movements::wait_of(body.wait_ms)?;
    let items: Vec<_> = body.transfers.into_iter().map(item_command).collect();
    for (from, _) in items.iter().flatten() {
        caller.permits(Scope::Write, Some(from))?;
    }
    let mut results: Vec<Option<BatchResult>> = vec![None; n];
    // Each sender's items, in the order given, with their places in the request.
    let mut by_sender: BTreeMap<AccountId, Vec<(usize, Command)>> = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        match sharded_item(&st, item).await {
            Ok((from, cmd)) => by_sender.entry(from).or_default().push((i, cmd)),
            Err(error) => results[i] = Some(BatchResult::Error { error }),
        }
    }
    let mut senders = JoinSet::new();
    let deadline = tokio::time::Instant::now() + wait;
    for (from, items) in by_sender {
        let st = st.clone();
        senders.spawn(async move {
            let (places, cmds): (Vec<usize>, Vec<Command>) = items.into_iter().unzip();
            let replies = match sharded::shards_of(&st, &from).await {
                Ok(None) => st.shell.execute_many(&from, cmds, wait).await,
                // A sharded sender's items run one after another (in order), each on the
                // shard its key picks, all of them within the request's one `wait_ms`.
                Ok(Some(_)) => {
                    let mut replies = Vec::with_capacity(cmds.len());
                    for cmd in cmds {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        replies.push(sharded_debit(&st, &from, cmd, left).await);
                    }
                    replies
                }
                Err(HttpError(e)) => cmds.iter().map(|_| Err(e.clone())).collect(),
            };
            places.into_iter().zip(replies).collect::<Vec<_>>()
        });
    }
    while let Some(done) = senders.join_next().await {
        for (i, reply) in done.expect("a sender's items do not panic") {
            results[i] = Some(match reply {
                Ok(Reply::Transfer(view)) => BatchResult::Transfer(view.public()),
                Ok(_) => panic!("a transfer command answered another reply"),
                Err(error) => BatchResult::Error { error },
            });
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.expect("every item has a result"))
        .collect();
    Ok((StatusCode::OK, Json(BatchTransfersResponse { results })).into_response())
}

/// An item with its receiver resolved to the shard that takes its credit, if sharded.
async fn sharded_item(
    st: &AppState,
    item: Result<(AccountId, Command), ApiError>,
) -> Result<(AccountId, Command), ApiError> {
    let (from, mut cmd) = item?;
    sharded::client_id(&from).map_err(|HttpError(e)| e)?;
    if let Command::Transfer {
        transfer_id,
        to,
        idem_key,
        ..
    } = &mut cmd
    {
        let seed = sharded::seed(idem_key, transfer_id);
        *to = sharded::credit_target(st, to, &seed)
            .await
            .map_err(|HttpError(e)| e)?;
    }
    Ok((from, cmd))
}

/// One transfer of a sharded sender, on the shard its key (or id) picks.
async fn sharded_debit(
    st: &AppState,
    from: &AccountId,
    cmd: Command,
    wait: std::time::Duration,
) -> Result<Reply, ApiError> {
    let Command::Transfer {
        transfer_id,
        amount,
        idem_key,
        ..
    } = &cmd
    else {
        unreachable!("batch items are transfers");
    };
    let seed = sharded::seed(idem_key, transfer_id);
    let amount = amount.get();
    sharded::debit(st, from, &seed, amount, cmd, wait)
        .await
        .map_err(|HttpError(e)| e)
}

/// Decodes and validates one item as `POST /v1/transfers` validates its body: its sender
/// and the transfer command, or the error that refuses it.
fn item_command(raw: serde_json::Value) -> Result<(AccountId, Command), ApiError> {
    let item: BatchTransferItem = serde_json::from_value(raw)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("malformed item: {e}")))?;
    check_reference(item.reference.as_deref()).map_err(|HttpError(e)| e)?;
    if item.from == item.to {
        return Err(ErrorCode::SameAccount.into());
    }
    let cmd = Command::Transfer {
        transfer_id: new_transfer_id(),
        to: item.to,
        amount: item.amount,
        reference: item.reference,
        idem_key: item.idempotency_key.map(|k| k.as_str().to_owned()),
    };
    Ok((item.from, cmd))
}
