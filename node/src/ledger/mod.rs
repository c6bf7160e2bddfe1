//! The ledger core: accounts and transfer sagas as synchronous, deterministic state machines.
//!
//! [`account::AccountCore`] is one account: its stored record ([`records::AccountRecord`]) and
//! its unsettled sender sagas. An [`account::Input`] (a client command, a saga message from
//! another account, a timer) goes in through `step`, together with the stored records it
//! depends on (named by `needs`); the core changes and returns a [`account::Step`]: typed writes
//! for the step's storage transaction and effects (reply, send, publish, set a timer, settled)
//! for after the commit. No `.await`, no clock (time comes in as `now_ms`), no randomness (ids
//! come in with the command), and only ordered maps, so the same inputs give the same outputs.
//!
//! [`driver`] is the account driver around one activation: it queues inputs, decides when to
//! commit, what each storage outcome means, when timers fire and when the activation stops,
//! and emits what its runtime (the actor shell, the simulator) must do. It is sans-IO too.
//!
//! [`committer`] forms a node's groups: it takes the batches of every driver and commits many
//! in one storage transaction (`exec::commit_group`), so a busy node pays one `fsync` for many
//! accounts. Sans-IO as well; the actor shell and the simulator each run one per node.
//!
//! [`audit`] holds the ledger audit (conservation, no overdraft, atomic transfers, replay),
//! pure and shared by `walletctl`, `GET /admin/audit` and the simulator; [`audit_scan`] feeds it
//! from the store for the route.
//!
//! [`exec`] holds the storage transaction bodies every runtime runs: activation (load the state,
//! bump the lease epoch) and batched commits (check the epoch, step each input, write). The
//! actor shell (`crate::cluster`) and the simulator run these same bodies. [`records`] are the
//! stored records, [`stored`] their compact binary forms (value version 2; the JSON of
//! releases before 0.2 still decodes).
//!
//! The transfer saga is DESIGN.md section 5, sender-orchestrated:
//! hold (sender) → `Credit` → applied or rejected once per transfer id (receiver) → `Outcome`
//! → capture or release (sender). A timer sends `Abort` when no outcome came; the receiver
//! tombstones the transfer unless it already decided, and answers its decision. The sender
//! releases only on a definitive `rejected` or `aborted`, and keeps re-sending `Abort` with
//! backoff until it has one.
//!
//! A hold (`account/holds.rs`) keeps money of its payer held under the hold's id until it is
//! captured, voided or expires; a capture is an ordinary transfer saga with an id of its own,
//! into which the captured part moves, so the saga's rules and the audit's apply to it
//! unchanged. The payer decides capture, void and expiry in order: the first it commits wins.
//!
//! A disbursement (`account/disbursements.rs`) pays several receivers all or nothing as a
//! Try-Confirm/Cancel between the payer's account, which coordinates and stores the phase
//! and which legs answered it, and each receiver's, which reserves its leg (room under
//! 2^53-1, not money) and decides once per disbursement, like a credit.
//!
//! [`outbox`] turns a batch's entries and settlements into webhook events, written in the
//! batch's own transaction; the node's publisher (`crate::webhooks`) delivers them.
//!
//! A sharded (hot) account keeps its money in K shard accounts, each an ordinary account
//! core with a few more rules (`account/shards.rs`); [`shards`] routes requests to them and
//! sums them in reads, counting money moving between two shards once.
//!
//! Left out on purpose: closing accounts (no API yet), overdraft limits (no account setting
//! yet; available never goes below zero), expiry of idempotency records (kept forever, which
//! satisfies "at least 24 hours"), and currency conversion.

pub mod account;
pub mod audit;
pub mod audit_scan;
pub mod committer;
pub mod driver;
pub mod exec;
pub mod outbox;
pub mod planted;
pub mod records;
pub mod shard_reads;
pub mod shards;
pub mod stored;

#[cfg(test)]
mod disbursement_tests;
#[cfg(test)]
mod group_reads_tests;
#[cfg(test)]
mod hold_tests;
#[cfg(test)]
mod legacy_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
