//! Requests on sharded (hot) accounts (API.md "Sharded (hot) accounts"): which shard a
//! request runs on, and reads of the account as a whole. The rules are pure functions of
//! [`crate::ledger::shards`]; this module only carries them out.
//!
//! - **Layouts.** Whether an account is sharded, and in how many shards, is asked of its
//!   actor (its record's view names the shards; the actor's load rides out a brief storage
//!   outage like any command) and kept in a bounded map ([`LAYOUTS_MAX`]): it never changes
//!   once the account is opened. An account not opened yet is not kept (it may be opened
//!   later).
//! - **Client ids.** A shard's id (`X~3`) is internal: a request naming one is refused.
//! - **Debits** run on the shard their seed picks; one refused there for want of money is
//!   decided by a read of the whole account: `insufficient_funds`, or the same shard again
//!   after a short backoff (its siblings are moving money to it), for up to
//!   [`GATHER_WAIT_MAX`]; past it the caller gets `unavailable` (nothing ran; retry with the
//!   same key).
//!
//! Left out: the map is cleared when full rather than evicting one entry (a cleared map
//! costs one storage read per account seen again).

use super::error::{invalid, HttpError};
use super::{blocking, AppState};
use crate::cluster::unavailable;
use crate::ledger::account::{Command, Reply};
use crate::ledger::shard_reads;
use crate::ledger::shards::{after_short, shard_for, Short};
use protocol::api::AccountView;
use protocol::{AccountId, ErrorCode, TransferId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Most account layouts one node keeps.
pub const LAYOUTS_MAX: usize = 100_000;
/// Longest a debit waits for money its shard gathers from its siblings.
pub const GATHER_WAIT_MAX: Duration = Duration::from_secs(2);
/// First wait before a debit tries its shard again.
const GATHER_BACKOFF_INITIAL: Duration = Duration::from_millis(2);
/// Longest wait between two tries.
const GATHER_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// The shard counts of the opened accounts seen, by id (`None`: an account of one).
#[derive(Default)]
pub struct Layouts {
    known: Mutex<HashMap<AccountId, Option<u16>>>,
}

/// Refuses a shard's internal id from a client.
pub fn client_id(id: &AccountId) -> Result<(), HttpError> {
    if id.is_shard() {
        return Err(invalid(format!(
            "account id may contain only A-Z a-z 0-9 _ - . : (found '~' in {id})"
        )));
    }
    Ok(())
}

/// The shard count of `id` when it is sharded (`None` for an account of one, and for one
/// never opened, which is not kept: it may be opened later).
pub async fn shards_of(st: &AppState, id: &AccountId) -> Result<Option<u16>, HttpError> {
    client_id(id)?;
    if let Some(k) = st.layouts.known.lock().expect("layouts lock").get(id) {
        return Ok(*k);
    }
    let shards = match st.shell.execute(id, Command::Get, Duration::ZERO).await {
        Ok(Reply::Account { view, .. }) => view.shards,
        Ok(other) => panic!("a read answered {other:?}"),
        Err(e) if e.code == ErrorCode::AccountNotFound => return Ok(None),
        Err(e) => return Err(HttpError(e)),
    };
    let mut known = st.layouts.known.lock().expect("layouts lock");
    if known.len() >= LAYOUTS_MAX {
        known.clear();
    }
    known.insert(id.clone(), shards);
    Ok(shards)
}

/// Where a credit of `id` runs: the shard `seed` picks, or the account itself.
pub async fn credit_target(
    st: &AppState,
    id: &AccountId,
    seed: &str,
) -> Result<AccountId, HttpError> {
    Ok(match shards_of(st, id).await? {
        Some(k) => id.shard(shard_for(k, seed)),
        None => id.clone(),
    })
}

/// Runs a debit of `amount` out of `from` (its command `cmd`), on the shard `seed` picks when
/// `from` is sharded (see the module's text).
pub async fn debit(
    st: &AppState,
    from: &AccountId,
    seed: &str,
    amount: u64,
    cmd: Command,
    wait: Duration,
) -> Result<Reply, HttpError> {
    let Some(k) = shards_of(st, from).await? else {
        return Ok(st.shell.execute(from, cmd, wait).await?);
    };
    let shard = from.shard(shard_for(k, seed));
    let deadline = tokio::time::Instant::now() + GATHER_WAIT_MAX;
    let mut backoff = GATHER_BACKOFF_INITIAL;
    loop {
        let refusal = match st.shell.execute(&shard, cmd.clone(), wait).await {
            Err(e) if e.code == ErrorCode::InsufficientFunds => e,
            other => return Ok(other?),
        };
        let whole = whole(st, from).await?;
        match after_short(&whole, amount) {
            Short::Refuse(code) if code == refusal.code => return Err(HttpError(refusal)),
            Short::Refuse(code) => return Err(code.into()),
            Short::Retry => {}
        }
        if tokio::time::Instant::now() + backoff > deadline {
            return Err(HttpError(unavailable(
                "the account's money is moving between its shards; retry with the same key",
            )));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(GATHER_BACKOFF_MAX);
    }
}

/// A sharded account as a whole, from one storage snapshot (strongly consistent: it sees
/// every acknowledged write).
pub async fn whole(st: &AppState, id: &AccountId) -> Result<AccountView, HttpError> {
    let (store, keys, key) = (
        st.shell.store().clone(),
        st.shell.keys().clone(),
        id.clone(),
    );
    blocking(move || shard_reads::read_whole(&store, &keys, &key))
        .await?
        .ok_or_else(|| ErrorCode::AccountNotFound.into())
}

/// Runs a read, deposit, withdrawal or transfer on `account`, routed over its shards when it
/// is sharded (the HTTP deposit and withdrawal routes and the WebSocket's commands).
pub async fn run(
    st: &AppState,
    account: &AccountId,
    cmd: Command,
    wait: Duration,
) -> Result<Reply, HttpError> {
    match cmd {
        Command::Get => match shards_of(st, account).await? {
            Some(_) => Ok(Reply::Account {
                view: whole(st, account).await?,
                created: false,
            }),
            None => Ok(st.shell.execute(account, Command::Get, wait).await?),
        },
        Command::Deposit { ref idem_key, .. } | Command::Withdraw { ref idem_key, .. } => {
            // A movement has no id of its own: without a key, any shard.
            let seed = idem_key
                .clone()
                .unwrap_or_else(|| super::transfers::random_hex_id("m"));
            match cmd {
                Command::Withdraw { amount, .. } => {
                    debit(st, account, &seed, amount.get(), cmd, wait).await
                }
                _ => {
                    let target = credit_target(st, account, &seed).await?;
                    Ok(st.shell.execute(&target, cmd, wait).await?)
                }
            }
        }
        cmd @ Command::Transfer { .. } => transfer(st, account, cmd, wait).await,
        other => unreachable!("no route runs {other:?} here"),
    }
}

/// The seed that routes a request with this key and id: the key when there is one (a repeat
/// must reach the shard that holds its record), else the id.
pub fn seed(idem_key: &Option<String>, id: &TransferId) -> String {
    idem_key.clone().unwrap_or_else(|| id.to_string())
}

/// Runs a transfer command out of `from`: its receiver resolved to the shard that takes the
/// credit, its debit routed (both by the same seed).
pub async fn transfer(
    st: &AppState,
    from: &AccountId,
    cmd: Command,
    wait: Duration,
) -> Result<Reply, HttpError> {
    let Command::Transfer {
        transfer_id,
        to,
        amount,
        reference,
        idem_key,
    } = cmd
    else {
        panic!("a transfer command expected, got {cmd:?}");
    };
    let seed = seed(&idem_key, &transfer_id);
    let cmd = Command::Transfer {
        transfer_id,
        to: credit_target(st, &to, &seed).await?,
        amount,
        reference,
        idem_key,
    };
    debit(st, from, &seed, amount.get(), cmd, wait).await
}
