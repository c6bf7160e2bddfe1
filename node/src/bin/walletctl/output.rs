//! What the commands print: human lines and tables, or JSON, on standard output.
//!
//! Writing goes through [`fn@line`] and [`json`], which return errors instead of panicking as
//! `println!` does when the reader of a pipe has gone (`walletctl account history x --all | head`).

use crate::client::CliError;
use protocol::admin::AuditReport;
use protocol::admin::{NodeStatus, OwnerView, ShardView};
use protocol::api::{
    AccountView, DisbursementView, Entry, HoldView, MovementView, TransferStatus, TransferView,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;

/// Writes `text` and a newline to standard output.
pub fn line(text: impl AsRef<str>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(CliError::Output)
}

/// Writes `value` as one line of compact JSON to standard output.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text =
        serde_json::to_string(value).map_err(|e| CliError::Output(std::io::Error::other(e)))?;
    line(text)
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (H. Hinnant's algorithm, days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A duration in seconds as `1h02m03s`, `2m05s` or `7s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Renders rows under headers, columns padded; `right[i]` right-aligns column `i` (numbers).
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                text.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                let _ = write!(text, "{cell:>w$}");
            } else {
                let _ = write!(text, "{cell:<w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    push_row(&mut headers.iter().copied());
    for row in rows {
        push_row(&mut row.iter().map(String::as_str));
    }
    out.pop();
    out
}

/// An account as aligned `key  value` lines.
pub fn account(v: &AccountView) -> String {
    let status = serde_plain(&v.status);
    let last = match v.shards {
        Some(k) => format!("shards     {k}"),
        None => format!("seq        {}", v.seq),
    };
    format!(
        "account    {}\ncurrency   {}\nstatus     {status}\nbalance    {}\navailable  {}\nheld       {}\n{last}",
        v.id, v.currency, v.balance, v.available, v.held
    )
}

/// A table of a sharded account's shards: each one's node and balances.
pub fn shards(s: &[ShardView]) -> String {
    let mut out = format!(
        "{:>5}  {:<12} {:>16} {:>16} {:>16} {:>10}",
        "shard", "node", "balance", "available", "held", "seq"
    );
    for v in s {
        out.push_str(&format!(
            "\n{:>5}  {:<12} {:>16} {:>16} {:>16} {:>10}",
            v.shard, v.node_id, v.balance, v.available, v.held, v.seq
        ));
    }
    out
}

/// One line for a deposit or withdrawal result.
pub fn movement(verb: &str, v: &MovementView) -> String {
    format!(
        "{verb} {} on {}: balance {}, seq {} (id {})",
        v.amount, v.account, v.balance, v.seq, v.id
    )
}

/// One line for a transfer's state.
pub fn transfer(v: &TransferView) -> String {
    let mut s = format!(
        "transfer {} {}: {} from {} to {}",
        v.id,
        serde_plain(&v.status),
        v.amount,
        v.from,
        v.to
    );
    if let Some(reason) = v.reason {
        let _ = write!(s, " (reason: {reason}: {})", reason.default_message());
    }
    if v.status == TransferStatus::Pending {
        s.push_str("; the saga settles it later, keep the key to ask again");
    }
    s
}

/// A disbursement: a summary line, then its legs as a table.
pub fn disbursement(v: &DisbursementView) -> String {
    let mut s = format!(
        "disbursement {} {}: {} from {} in {} legs",
        v.id,
        serde_plain(&v.status),
        v.total,
        v.from,
        v.legs.len()
    );
    if let Some(reason) = v.reason {
        let _ = write!(s, " (reason: {reason}: {})", reason.default_message());
    }
    let rows: Vec<Vec<String>> = v
        .legs
        .iter()
        .map(|l| {
            vec![
                l.to.to_string(),
                l.amount.to_string(),
                serde_plain(&l.status),
                l.reason.map_or_else(String::new, |r| r.to_string()),
            ]
        })
        .collect();
    s.push('\n');
    s.push_str(&table(
        &["TO", "AMOUNT", "STATUS", "REASON"],
        &[false, true, false, false],
        &rows,
    ));
    s
}

/// A hold as aligned `key  value` lines.
pub fn hold(v: &HoldView) -> String {
    let mut s = format!(
        "hold       {}\nstatus     {}\nfrom       {}\nto         {}\namount     {}\ncaptured   {}\nexpires    {}",
        v.id,
        v.status.as_str(),
        v.from,
        v.to,
        v.amount,
        v.captured,
        utc(v.expires_at)
    );
    if let Some(c) = &v.capture_id {
        let _ = write!(s, "\ncapture    {c} (its transfer)");
    }
    if let Some(r) = &v.reference {
        let _ = write!(s, "\nreference  {r}");
    }
    s
}

/// A node's status: its own facts, then the members as a table.
pub fn status(v: &NodeStatus) -> String {
    let mut s = format!(
        "node       {} (walletd {}, up {})\nbackend    {}\nactors     {} active\npending    {} transfers (cluster-wide)\ncommits    {}\nmembers    {}\n\n",
        v.node_id,
        v.version,
        duration(v.uptime_s),
        v.backend,
        v.active_actors,
        v.pending_sagas,
        v.commits,
        v.members.len()
    );
    let rows: Vec<Vec<String>> = v
        .members
        .iter()
        .map(|m| {
            vec![
                m.node_id.clone(),
                m.http.clone(),
                format!("{:.1}%", m.ring_share * 100.0),
                m.active_actors
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "?".into()),
                m.pending_sagas.to_string(),
                if m.leaving {
                    "leaving"
                } else if m.dropped {
                    "dropped (silent)"
                } else {
                    "up"
                }
                .to_owned(),
            ]
        })
        .collect();
    s.push_str(&table(
        &["NODE", "HTTP", "RING", "ACTORS", "PENDING", "STATE"],
        &[false, false, true, true, true, false],
        &rows,
    ));
    s
}

/// One line naming an account's owner.
pub fn owner(v: &OwnerView) -> String {
    let active = match v.active {
        Some(true) => "active",
        Some(false) => "not active",
        None => "activity unknown (ask the owner)",
    };
    format!(
        "account {} is owned by node {} at {} ({active})",
        v.account, v.node_id, v.http
    )
}

/// Header of the journal table, aligned with [`entry_row`].
pub fn entry_header() -> String {
    format!(
        "{:>8}  {:<12}  {:>16}  {:>16}  {:>16}  {:<24}  TRANSFER",
        "SEQ", "KIND", "AMOUNT", "BALANCE", "AVAILABLE", "AT"
    )
}

/// The header of [`transfer_row`]s.
pub fn transfer_header() -> String {
    format!(
        "{:<34}  {:<9}  {:<20}  {:<20}  {:>16}  {:<24}  REASON",
        "TRANSFER", "STATUS", "FROM", "TO", "AMOUNT", "CREATED"
    )
}

/// One transfer as a fixed-width row (pages are printed as they arrive).
pub fn transfer_row(v: &TransferView) -> String {
    format!(
        "{:<34}  {:<9}  {:<20}  {:<20}  {:>16}  {:<24}  {}",
        v.id,
        serde_plain(&v.status),
        v.from,
        v.to,
        v.amount,
        utc(v.created_at),
        v.reason.map_or("-".to_owned(), |r| r.to_string()),
    )
}

/// One journal entry as a fixed-width row (fixed so that pages can be printed as they arrive).
pub fn entry_row(e: &Entry) -> String {
    let mut s = format!(
        "{:>8}  {:<12}  {:>16}  {:>16}  {:>16}  {:<24}  {}",
        e.seq,
        e.kind.as_str(),
        e.amount,
        e.balance,
        e.available,
        utc(e.at),
        e.transfer_id.as_ref().map_or("-", |t| t.as_str()),
    );
    if let Some(r) = &e.reference {
        let _ = write!(s, "  {r:?}");
    }
    s.trim_end().to_owned()
}

/// The audit report for humans: counts, each check PASS/FAIL, then the listed violations.
pub fn audit_report(r: &AuditReport) -> String {
    let mut s = format!(
        "audited {} accounts, {} journal entries, {} transfers\n\n",
        r.accounts, r.entries, r.transfers
    );
    for c in &r.checks {
        let _ = writeln!(
            s,
            "{}  {:<17} {}{}",
            c.status.as_str(),
            c.check.as_str(),
            c.check.describe(),
            if c.violations > 0 {
                format!(
                    " ({} violation{})",
                    c.violations,
                    if c.violations == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        );
    }
    if !r.violations.is_empty() {
        s.push_str("\nviolations:\n");
        for v in &r.violations {
            let mut place = String::new();
            if let Some(a) = &v.account {
                let _ = write!(place, " account {a}");
            }
            if let Some(t) = &v.transfer_id {
                let _ = write!(place, " transfer {t}");
            }
            let _ = writeln!(s, "  [{}]{place}: {}", v.check.as_str(), v.message);
        }
        if r.violations_not_listed > 0 {
            let _ = writeln!(s, "  ... and {} more not listed", r.violations_not_listed);
        }
    }
    let _ = write!(s, "\nresult: {}", if r.ok { "PASS" } else { "FAIL" });
    s
}

/// A serde enum's wire name (`active`, `pending`).
fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_epoch_millis() {
        // Proves the hand-written calendar conversion on known instants, leap day included.
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(1_767_225_599_999), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn table_aligns_columns() {
        // Proves columns are padded to the widest cell and numbers right-aligned.
        let t = table(
            &["ID", "N"],
            &[false, true],
            &[
                vec!["a".into(), "1".into()],
                vec!["bbb".into(), "100".into()],
            ],
        );
        assert_eq!(t, "ID     N\na      1\nbbb  100");
    }

    #[test]
    fn durations_read_naturally() {
        // Proves uptime formatting at each unit boundary.
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(125), "2m05s");
        assert_eq!(duration(3723), "1h02m03s");
    }
}
