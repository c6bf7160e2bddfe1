//! Storage reads of sharded accounts: the account as a whole from one consistent snapshot (see [`super::shards`] for how the sum counts money in motion).

use super::exec::{get, get_saga};
use super::records::{AccountRecord, SagaRecord};
use super::shards::{sum, MoveInFlight, ShardState};
use crate::storage::keys::Keys;
use crate::storage::{StorageError, Store, Txn};
use protocol::api::AccountView;
use protocol::saga::CreditOutcome;
use protocol::AccountId;

/// A sharded account as a whole, from one snapshot: `None` when it was never opened, the
/// record's own view when it is not sharded.
pub fn read_whole(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
) -> Result<Option<AccountView>, StorageError> {
    store.read(|txn| {
        let Some(r) = get::<AccountRecord>(txn, &keys.state(id.as_str()))? else {
            return Ok(None);
        };
        let Some(k) = r.shards else {
            return Ok(Some(r.view(id)));
        };
        let shards = (0..k)
            .map(|j| shard_state(txn, keys, &id.shard(j)))
            .collect::<Result<Vec<_>, _>>()?;
        sum(id, &r, &shards)
            .map(Some)
            .map_err(StorageError::Corrupt)
    })
}

/// Every shard of a sharded account as one snapshot found it, with its record (for
/// operators: `walletctl account show`).
pub fn read_shards(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
    k: u16,
) -> Result<Vec<Option<AccountRecord>>, StorageError> {
    store.read(|txn| {
        (0..k)
            .map(|j| get(txn, &keys.state(id.shard(j).as_str())))
            .collect()
    })
}

/// A shard's record and its moves in flight, each with whether its destination applied it.
fn shard_state(
    txn: &mut dyn Txn,
    keys: &Keys,
    shard: &AccountId,
) -> Result<ShardState, StorageError> {
    let record = get(txn, &keys.state(shard.as_str()))?;
    let (begin, end) = keys.moving_range(shard.as_str());
    // A shard has at most MOVES_OUT_MAX moves out; more markers would be a bug, and a read
    // that stopped short of them would lie, so it fails instead.
    let limit = super::account::MOVES_OUT_MAX;
    let marks = txn.get_range(&begin, &end, limit + 1)?;
    if marks.len() > limit {
        return Err(StorageError::Corrupt(format!(
            "{shard} has more than {limit} moves in flight"
        )));
    }
    let mut moves_out = Vec::with_capacity(marks.len());
    for (key, _) in marks {
        let tid = keys
            .moving_transfer_id(shard.as_str(), &key)
            .ok_or_else(|| StorageError::Corrupt(format!("move marker of {shard}")))?;
        let Some(SagaRecord::Sender { to, amount, .. }) =
            get_saga(txn, keys, shard.as_str(), &tid)?
        else {
            return Err(StorageError::Corrupt(format!(
                "move {tid} of {shard} has no sender record"
            )));
        };
        let applied = matches!(
            get_saga(txn, keys, to.as_str(), &tid)?,
            Some(SagaRecord::Receiver {
                outcome: CreditOutcome::Applied,
                ..
            })
        );
        moves_out.push(MoveInFlight { amount, applied });
    }
    Ok(ShardState { record, moves_out })
}
