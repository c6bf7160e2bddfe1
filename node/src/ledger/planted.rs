//! Known bugs that can be planted in the core, one at a time, to prove that the simulator's
//! checkers catch them (`cargo test -p simulation --features planted-bugs`).
//!
//! Without the `planted-bugs` feature, [`planted`] is a constant `false` and every planted
//! branch compiles away. The feature refuses to build with optimizations on, so it can never
//! reach a release binary. The bug in force is per thread, so parallel runs can each plant
//! their own.

use std::fmt;

#[cfg(all(feature = "planted-bugs", not(debug_assertions)))]
compile_error!("the planted-bugs feature is for debug test builds only");

/// A bug that can be planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// `commit_batch` ignores a moved lease: a fenced activation still commits.
    SkipEpochCheck,
    /// A sender whose credit timed out releases the hold at once instead of sending `Abort`.
    ReleaseOnTimeout,
    /// A receiver applies a repeated `Credit` again instead of answering its recorded decision.
    CreditTwice,
    /// After an unknown commit result, a retry takes the previous attempt's result as committed
    /// without checking the store (memory, and the reply, run ahead of storage).
    AckUnknownCommit,
    /// A new transfer is not added to the `pending` index.
    ForgetPending,
    /// A deposit's idempotency fingerprint leaves out the request's body (amount and text).
    KeyIgnoresBody,
    /// The driver treats a fenced batch like an unknown one: it reloads, taking the lease back
    /// from the rightful owner, instead of stepping aside.
    ReloadAfterFenced,
    /// After a reload, the driver does not publish what an unknown-but-landed commit (or
    /// another activation) wrote: streams stall until the next commit.
    ForgetLandedPublications,
    /// The driver calls an activation idle while it still has open sagas and waiting callers,
    /// so eviction and idle passivation strand them.
    EvictWithWaiter,
    /// The driver runs a batch again after its commit's result was unknown, as if nothing
    /// had committed, instead of reloading to find out.
    RetryUnknownCommit,
    /// A reload that fails stops the activation and answers its queued commands "outcome
    /// unknown", instead of keeping them and trying again.
    StopOnFailedReload,
    /// A group whose commit failed as a whole is retried with every batch's record of its
    /// earlier attempts forgotten: a batch whose unknown attempt landed runs again, as new.
    GroupForgetsAttempts,
    /// A batch fenced on a retry of its group is reported `Fenced` ("nothing ran") even
    /// when an earlier attempt whose result was unknown ran it and may have landed.
    FencedAfterUnknown,
    /// A receiver that tombstones an aborted transfer does not add it to its transfer list.
    ForgetListed,
    /// A capture of more than its hold's amount is not refused: the excess is taken from the
    /// payer's available money.
    CaptureMoreThanHeld,
    /// A receiver reserves a disbursement's leg whose cancel came first (its mark ignored).
    TryAfterCancel,
    /// A receiver credits a disbursement's leg again on a repeated `Confirm`.
    ConfirmTwice,
    /// A receiver answering a leg it already recorded leaves its reservations in memory as
    /// they were (a retry after an unknown commit that landed leaves memory behind storage).
    LegReplayKeepsMemory,
    /// A read of a sharded account counts a move between two shards at both ends once its
    /// destination applied it (its source still holds it).
    MoveCountedTwice,
    /// A move between two shards that settles leaves its marker (reads then take it out of
    /// `held` and, once applied, out of the balance, for ever).
    ForgetMoveMark,
    /// A debit its shard found short is refused `insufficient_funds` when the account as a
    /// whole has exactly the amount.
    ShortVerdictOffByOne,
    /// A transfer that failed gets no `transfer.settled` event in the outbox (only completed
    /// ones are told).
    OutboxForgetsFailures,
}

impl Bug {
    /// Every plantable bug.
    pub const ALL: [Bug; 22] = [
        Bug::SkipEpochCheck,
        Bug::ReleaseOnTimeout,
        Bug::CreditTwice,
        Bug::AckUnknownCommit,
        Bug::ForgetPending,
        Bug::KeyIgnoresBody,
        Bug::ReloadAfterFenced,
        Bug::ForgetLandedPublications,
        Bug::EvictWithWaiter,
        Bug::RetryUnknownCommit,
        Bug::StopOnFailedReload,
        Bug::GroupForgetsAttempts,
        Bug::FencedAfterUnknown,
        Bug::ForgetListed,
        Bug::CaptureMoreThanHeld,
        Bug::TryAfterCancel,
        Bug::ConfirmTwice,
        Bug::LegReplayKeepsMemory,
        Bug::MoveCountedTwice,
        Bug::ForgetMoveMark,
        Bug::ShortVerdictOffByOne,
        Bug::OutboxForgetsFailures,
    ];

    /// The bug's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::SkipEpochCheck => "skip-epoch-check",
            Bug::ReleaseOnTimeout => "release-on-timeout",
            Bug::CreditTwice => "credit-twice",
            Bug::AckUnknownCommit => "ack-unknown-commit",
            Bug::ForgetPending => "forget-pending",
            Bug::KeyIgnoresBody => "key-ignores-body",
            Bug::ReloadAfterFenced => "reload-after-fenced",
            Bug::ForgetLandedPublications => "forget-landed-publications",
            Bug::EvictWithWaiter => "evict-with-waiter",
            Bug::RetryUnknownCommit => "retry-unknown-commit",
            Bug::StopOnFailedReload => "stop-on-failed-reload",
            Bug::GroupForgetsAttempts => "group-forgets-attempts",
            Bug::FencedAfterUnknown => "fenced-after-unknown",
            Bug::ForgetListed => "forget-listed",
            Bug::CaptureMoreThanHeld => "capture-more-than-held",
            Bug::TryAfterCancel => "try-after-cancel",
            Bug::ConfirmTwice => "confirm-twice",
            Bug::LegReplayKeepsMemory => "leg-replay-keeps-memory",
            Bug::MoveCountedTwice => "move-counted-twice",
            Bug::ForgetMoveMark => "forget-move-mark",
            Bug::ShortVerdictOffByOne => "short-verdict-off-by-one",
            Bug::OutboxForgetsFailures => "outbox-forgets-failures",
        }
    }

    /// The bug of a name.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "planted-bugs")]
thread_local! {
    static PLANTED: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Plants `bug` (or none) for this thread.
#[cfg(feature = "planted-bugs")]
pub fn plant(bug: Option<Bug>) {
    PLANTED.with(|p| p.set(bug));
}

/// True when `bug` is planted on this thread (always false without the feature).
#[inline(always)]
pub fn planted(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        PLANTED.with(|p| p.get()) == Some(bug)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}
