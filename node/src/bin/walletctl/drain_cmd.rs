//! `walletctl drain NODE`: moves every account off a node, then lets it stop.
//!
//! The node is found among the members that `--node` reports. `POST /admin/drain` on it takes
//! it out of the ring (its accounts go to the other members, which resume its unsettled
//! transfers) and stops its actors after their queued inputs; each call reports progress and
//! the command repeats it until the node says it is drained. The node then shuts down by
//! itself, and the command waits until it no longer answers.

use crate::client::CliError;
use crate::commands::{Ctx, Failure};
use crate::output;
use indicatif::{ProgressBar, ProgressStyle};
use protocol::admin::{DrainStatus, NodeStatus};
use std::time::{Duration, Instant};

/// Most drain calls before giving up (each waits up to 20 s on the node).
const DRAIN_CALLS_MAX: u32 = 30;
/// Longest wait for the drained node to stop answering.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// Pause between two checks that the node stopped.
const STOP_POLL: Duration = Duration::from_millis(200);
/// Spinner redraw period.
const TICK: Duration = Duration::from_millis(120);

/// `drain NODE`.
pub fn run(ctx: &Ctx, node: &str) -> Result<(), Failure> {
    let status: NodeStatus = ctx.client.get("/admin/status")?;
    let Some(member) = status.members.iter().find(|m| m.node_id == node) else {
        let names: Vec<&str> = status.members.iter().map(|m| m.node_id.as_str()).collect();
        return Err(CliError::Usage(format!(
            "node {node} is not a member of the cluster that {} knows (members: {})",
            ctx.client.base(),
            names.join(", ")
        ))
        .into());
    };
    // The node --node names is asked directly (its admin routes may be on node.admin_listen,
    // which members do not advertise); another member at the address it advertises.
    let target = if status.node_id == node {
        ctx.client.clone()
    } else {
        ctx.client.for_node(&member.http)?
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    spinner.enable_steady_tick(TICK);
    spinner.set_message(format!("draining {node}: leaving the ring"));
    let started = Instant::now();
    let mut last = None;
    for _ in 0..DRAIN_CALLS_MAX {
        let s: DrainStatus = target.post_empty("/admin/drain", "drain")?.into_result()?;
        spinner.set_message(format!(
            "draining {node}: {} actors still active ({}s)",
            s.active_actors,
            started.elapsed().as_secs()
        ));
        let drained = s.drained;
        last = Some(s);
        if drained {
            break;
        }
    }
    let s = last.expect("at least one drain call ran");
    if !s.drained {
        spinner.finish_and_clear();
        return Err(CliError::Usage(format!(
            "node {node} did not finish draining: {} actors still active after {}s; run drain again",
            s.active_actors,
            started.elapsed().as_secs()
        ))
        .into());
    }
    spinner.set_message(format!("{node} drained; waiting for it to stop"));
    let deadline = Instant::now() + STOP_WAIT;
    let stopped = loop {
        if target.get_once("/healthz").is_err() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(STOP_POLL);
    };
    spinner.finish_and_clear();
    if ctx.json {
        output::json(&s)?;
    } else if stopped {
        output::line(format!(
            "node {node} drained in {:.1}s: its accounts moved to the other members, and it stopped",
            started.elapsed().as_secs_f64()
        ))?;
    } else {
        output::line(format!(
            "node {node} drained: its accounts moved to the other members, but it still answers after {}s",
            STOP_WAIT.as_secs()
        ))?;
    }
    Ok(())
}
