//! The simulated network: one-way delays, reordering, loss, duplication and partitions.
//!
//! Every message between nodes and between a node and a client takes a delay drawn up to
//! `net_delay_max_ms`; a share is delayed far longer (reordering), lost, or (saga messages
//! only, the at-least-once channel the saga is built for) delivered twice. A blocked link
//! (a partition, one-way or both ways) loses what is sent on it. Messages inside one node are
//! never lost, but may overtake each other (the shell sends each saga message from its own
//! task). Requests and forwarded commands are never duplicated: a client's retry is a new
//! attempt with its idempotency key.

use super::*;

impl Sim {
    /// A one-way delay, or `None` when the message is lost.
    pub(super) fn link_delay(&mut self, from: Option<usize>, to: Option<usize>) -> Option<u64> {
        self.stats.messages += 1;
        if let (Some(a), Some(b)) = (from, to) {
            if a == b {
                // In-process: never lost, but the shell sends each saga message from its own
                // task, so one may overtake another.
                if self.rng_net.chance(self.opts.reorder_ppm) {
                    return Some(self.rng_net.range(1, REORDER_MAX_MS));
                }
                return Some(0);
            }
            if self.blocked.contains_key(&(a, b)) {
                self.stats.lost += 1;
                return None;
            }
        }
        if self.rng_net.chance(self.opts.loss_ppm) {
            self.stats.lost += 1;
            return None;
        }
        let mut d = self.rng_net.range(1, self.opts.net_delay_max_ms);
        if self.rng_net.chance(self.opts.reorder_ppm) {
            d += self.rng_net.range(1, REORDER_MAX_MS);
        }
        Some(d)
    }

    pub(super) fn send_node(&mut self, from: Option<usize>, to: usize, msg: NodeMsg) {
        let Some(d) = self.link_delay(from, Some(to)) else {
            trace!(self, "lost -> n{}: {}", to + 1, describe(&msg));
            return;
        };
        // Only saga messages are duplicated: they are the at-least-once channel the saga is
        // built for. A request is one HTTP exchange and a forwarded command one RPC; neither is
        // ever re-sent by the transport (a client's retry is a new attempt with its key).
        let dup = matches!(msg, NodeMsg::Saga { .. });
        if dup && self.rng_net.chance(self.opts.dup_ppm) {
            self.stats.duplicated += 1;
            let d2 = self
                .rng_net
                .range(1, self.opts.net_delay_max_ms + REORDER_MAX_MS);
            self.at(
                d2,
                Event::ToNode {
                    node: to,
                    msg: msg.clone(),
                },
            );
        }
        self.at(d, Event::ToNode { node: to, msg });
    }

    pub(super) fn send_client(
        &mut self,
        from: usize,
        client: usize,
        attempt: u64,
        result: ClientResult,
    ) {
        let Some(d) = self.link_delay(Some(from), None) else {
            trace!(self, "lost reply -> c{client} a{attempt}");
            return;
        };
        self.at(
            d,
            Event::ToClient {
                client,
                attempt,
                result,
            },
        );
    }
}
