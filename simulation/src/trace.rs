//! The event log of a run and its hash.
//!
//! Every event the simulator handles is written as one line; the hash (64-bit FNV-1a over the
//! lines) is always computed, the lines are kept only when asked (`--trace`). Two runs of one
//! seed give byte-identical lines and the same hash: that is the determinism contract.

use std::fmt::Write as _;

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    lines: Option<Vec<String>>,
    /// Most lines kept in memory; past it only the hash grows (bounded memory on long runs).
    keep_max: usize,
    events: u64,
    line: String,
}

/// Most trace lines kept for printing.
pub const TRACE_LINES_MAX: usize = 2_000_000;

impl Trace {
    /// A trace that keeps its lines (`keep`) or only hashes them.
    pub fn new(keep: bool) -> Self {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: keep.then(Vec::new),
            keep_max: TRACE_LINES_MAX,
            events: 0,
            line: String::with_capacity(256),
        }
    }

    /// Records one event at simulated time `now_ms`.
    pub fn event(&mut self, now_ms: u64, args: std::fmt::Arguments<'_>) {
        self.line.clear();
        let _ = write!(self.line, "{now_ms:>9} {args}");
        for b in self.line.as_bytes().iter().chain(b"\n") {
            self.hash ^= *b as u64;
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.events += 1;
        if let Some(lines) = &mut self.lines {
            if lines.len() < self.keep_max {
                lines.push(self.line.clone());
            }
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Number of events recorded.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The kept lines, if kept.
    pub fn take_lines(&mut self) -> Option<Vec<String>> {
        self.lines.take()
    }
}
