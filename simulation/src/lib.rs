//! The deterministic simulator of a wallet cluster.
//!
//! It will drive the node crate's own ledger core (`node::ledger`) and storage transaction
//! bodies (`node::ledger::exec`) for a whole simulated cluster on one thread, from one seed,
//! with injected faults, and check the invariants of DESIGN.md section 6.
//!
//! Left out for now: everything. This crate exists so the workspace has its final shape; the
//! core it will drive is already sans-IO and its storage is already behind the `Store` trait,
//! whose `memory` backend takes injected faults.
