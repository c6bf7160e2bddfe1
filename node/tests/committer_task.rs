//! The node's committer task (`cluster::committer`): batches in, results out, and a panic in
//! one group does not stop the node's commits.

use node::cluster::committer::CommitterHandle;
use node::ledger::account::{Command, Input, SagaTiming};
use node::ledger::committer::GroupLimits;
use node::ledger::driver::Batch;
use node::ledger::exec::activate;
use node::metrics::Metrics;
use node::storage::keys::Keys;
use node::storage::memory::MemoryBackend;
use node::storage::{Backend, Body, StorageError, Store};
use protocol::{AccountId, Amount, Currency};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// A memory backend whose first read-write attempt panics (a bug in a body, say).
struct PanicsOnce {
    mem: Arc<MemoryBackend>,
    attempts: AtomicU32,
}

impl Backend for PanicsOnce {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("a planted panic in the first group's transaction");
        }
        self.mem.attempt(body)
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.mem.attempt_read(body)
    }
}

fn open_batch(store: &Store, name: &str) -> Batch {
    let id = AccountId::new(name).unwrap();
    let act = activate(store, &Keys::default(), "n1", &id, SagaTiming::default(), 1).unwrap();
    let open = Command::Open {
        shards: None,
        currency: Currency::new("EUR").unwrap(),
    };
    let deposit = Command::Deposit {
        amount: Amount::new(5).unwrap(),
        reference: None,
        idem_key: None,
    };
    Batch {
        act,
        inputs: vec![Input::Command(1, open), Input::Command(2, deposit)],
    }
}

#[test]
fn committer_task_answers_a_panicked_group_unknown_and_goes_on() {
    // Proves a panic inside a group's transaction answers that group's batches "outcome
    // unknown" (their drivers reload) and the next batch still commits: one bug does not stop
    // every write of the node.
    let mem = Arc::new(MemoryBackend::new());
    let plain = Store::new(mem.clone());
    let panicky = Store::new(Arc::new(PanicsOnce {
        mem: mem.clone(),
        attempts: AtomicU32::new(0),
    }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let committer = CommitterHandle::start(
            panicky,
            Keys::default(),
            "n1".into(),
            GroupLimits::default(),
            Arc::new(Metrics::default()),
        );
        let (_, first) = committer
            .commit(open_batch(&plain, "a"))
            .await
            .expect("answered");
        assert_eq!(first.unwrap_err(), StorageError::CommitUnknown);
        let (_, second) = committer
            .commit(open_batch(&plain, "b"))
            .await
            .expect("answered");
        let (act, _) = second.expect("the committer still commits");
        assert_eq!(act.core.record().unwrap().balance, 5);
    });
}
