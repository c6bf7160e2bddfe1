//! `walletctl`: the wallet cluster's operations CLI (API.md "Operations").
//!
//! This file holds the command line (clap) and the dispatch; each command lives in its module:
//! [`commands`] (single requests), [`audit_cmd`] (the ledger audit: it streams the ledger over
//! HTTP through the library's `node::ledger::audit::Auditor`, the rules `GET /admin/audit` and the
//! simulator run too), [`mod@bench`] (load generator), [`client`] (HTTP and error mapping),
//! [`output`] (tables and JSON), [`token_cmd`] (new bearer tokens), [`list_cmd`] (an
//! account's transfers), [`hold_cmd`] (holds), [`disburse_cmd`] (disbursements), [`watch_cmd`]
//! (live balance updates, over the WebSocket of [`stream_client`]). It talks to a node over
//! HTTP and that WebSocket only; of the node's library it uses only pure functions: the audit,
//! token digests and transfer-list cursors.
//!
//! Failures print `error: <code>: <sentence>` on stderr; when a mutation's outcome is unknown a
//! second line gives the idempotency key to retry with.

mod audit_cmd;
mod bench;
mod client;
mod commands;
mod disburse_cmd;
mod drain_cmd;
mod hold_cmd;
mod list_cmd;
mod output;
mod rng;
mod stream_client;
mod token_cmd;
mod watch_cmd;

use clap::{Parser, Subcommand};
use client::{CliError, Client};
use commands::{Ctx, Failure};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Amounts are integers in minor units (cents). Mutations carry an idempotency key: --key K, or a
generated one, printed on stderr when the outcome is unknown so the command can be retried safely.

Exit status: 0 success; 1 failure (the error's code and sentence on stderr); 2 bad arguments;
3 outcome unknown or transfer not settled yet (retry with the same --key).";

/// Operations CLI of the wallet ledger cluster.
#[derive(Parser, Debug)]
#[command(name = "walletctl", version, after_help = AFTER_HELP)]
struct Cli {
    /// Base URL of a node's HTTP API (http://HOST:PORT, or https://HOST:PORT).
    #[arg(
        long,
        global = true,
        env = "WALLETCTL_NODE",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    node: String,
    /// Print JSON on stdout (one object per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Bearer token sent with every request (for a node with [auth]).
    #[arg(
        long,
        global = true,
        env = "WALLET_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// PEM certificates to trust for an https:// node (a private CA, or the node's own).
    #[arg(long, global = true, env = "WALLET_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the node's status and the cluster's members.
    Status,
    /// Show which node owns an account.
    Owner {
        /// Account id.
        id: String,
    },
    /// Move every account off a node (it leaves the ring), then let it stop.
    Drain {
        /// The node's id, as `status` lists it.
        #[arg(value_name = "NODE")]
        node_id: String,
    },
    /// Open, show, freeze or unfreeze an account, or list its journal.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Deposit money into an account.
    Deposit(MovementArgs),
    /// Withdraw money from an account.
    Withdraw(MovementArgs),
    /// Transfer money between two accounts of the same currency.
    Transfer(TransferArgs),
    /// Pay several accounts from one, all or nothing: disburse FROM TO:AMOUNT...
    Disburse {
        /// Debited account.
        from: String,
        /// Legs as TO:AMOUNT (minor units), 1 to 256, each to a different account.
        #[arg(required = true, value_name = "TO:AMOUNT")]
        legs: Vec<String>,
        #[command(flatten)]
        saga: SagaOptions,
    },
    /// Hold money for a later payment, then capture it (in full or in part) or void it.
    #[command(subcommand)]
    Hold(HoldCommand),
    /// Print every balance update of some accounts as it commits, until Ctrl-C.
    Watch(watch_cmd::WatchArgs),
    /// Check the ledger's invariants; exit 0 only when every check passes.
    Audit {
        /// Seconds to wait for pending transfers to settle before auditing.
        #[arg(long, default_value_t = 30, value_name = "N")]
        wait_secs: u64,
    },
    /// Open accounts and measure random transfers.
    Bench(bench::BenchArgs),
    /// Make bearer tokens for a node's [auth] config.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
enum HoldCommand {
    /// Hold AMOUNT of FROM for a later payment to TO (it expires by itself).
    Create {
        /// Account whose money is held.
        from: String,
        /// Account a capture pays.
        to: String,
        /// Amount in minor units (integer).
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// Life of the hold in ms, 1000 to 2592000000 (node default: 7 days).
        #[arg(long, value_name = "MS")]
        expires_in_ms: Option<u64>,
        /// Idempotency key (generated when absent).
        #[arg(long, value_name = "K")]
        key: Option<String>,
        /// Free text kept with the hold and its entries.
        #[arg(long, value_name = "R")]
        reference: Option<String>,
    },
    /// Show a hold.
    Show {
        /// Hold id.
        id: String,
    },
    /// Move the held money (all, or --amount of it) to the receiver; the rest is released.
    Capture {
        /// Hold id.
        id: String,
        /// Amount to move, in minor units (default: all that is held).
        #[arg(long, allow_hyphen_values = true, value_name = "A")]
        amount: Option<String>,
        /// How long the node waits for the receiver, in ms (node default 5000, max 60000).
        #[arg(long, value_name = "MS")]
        wait_ms: Option<u64>,
        /// Idempotency key (generated when absent).
        #[arg(long, value_name = "K")]
        key: Option<String>,
    },
    /// Release a hold entirely.
    Void {
        /// Hold id.
        id: String,
        /// Idempotency key (generated when absent).
        #[arg(long, value_name = "K")]
        key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Print a fresh random token, and its [[auth.tokens]] entry (with only its SHA-256).
    New(token_cmd::NewArgs),
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Open an account (succeeds again if it exists with the same currency).
    Open {
        /// Account id: 1 to 64 of A-Z a-z 0-9 _ - . :
        id: String,
        /// Currency: three upper-case letters.
        #[arg(long, value_name = "CUR")]
        currency: String,
        /// Keep the money in K shards (1 to 64), for a very busy account; fixed at opening.
        #[arg(long, value_name = "K", default_value_t = 1)]
        shards: u16,
    },
    /// Show an account's balances (strongly consistent); a sharded account's shards too,
    /// with the node each lives on.
    Show {
        /// Account id.
        id: String,
    },
    /// List an account's journal entries.
    History {
        /// Account id.
        id: String,
        /// Start after this sequence number.
        #[arg(long, value_name = "S")]
        after_seq: Option<u64>,
        /// Entries per page, 1 to 1000.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
        /// The shard whose journal to list, for a sharded account.
        #[arg(long, value_name = "J")]
        shard: Option<u16>,
    },
    /// List an account's transfers (either side), newest first.
    Transfers {
        /// Account id.
        id: String,
        /// Only transfers with this status: pending, completed or failed.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Start after this cursor (a page's `next_after`).
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
        /// Transfers per page, 1 to 1000.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Follow every page to the end.
        #[arg(long)]
        all: bool,
    },
    /// Freeze an account: it refuses every movement until unfrozen.
    Freeze {
        /// Account id.
        id: String,
    },
    /// Unfreeze a frozen account.
    Unfreeze {
        /// Account id.
        id: String,
    },
}

#[derive(clap::Args, Debug)]
struct MovementArgs {
    /// Account id.
    id: String,
    /// Amount in minor units (integer).
    #[arg(allow_hyphen_values = true)]
    amount: String,
    /// Idempotency key (generated when absent).
    #[arg(long, value_name = "K")]
    key: Option<String>,
    /// Free text kept with the entry.
    #[arg(long, value_name = "R")]
    reference: Option<String>,
}

#[derive(clap::Args, Debug)]
struct TransferArgs {
    /// Debited account.
    from: String,
    /// Credited account.
    to: String,
    /// Amount in minor units (integer).
    #[arg(allow_hyphen_values = true)]
    amount: String,
    #[command(flatten)]
    saga: SagaOptions,
}

/// The options of a request that starts a saga (a transfer, a disbursement).
#[derive(clap::Args, Debug)]
struct SagaOptions {
    /// Idempotency key (generated when absent).
    #[arg(long, value_name = "K")]
    key: Option<String>,
    /// Free text kept with the entries.
    #[arg(long, value_name = "R")]
    reference: Option<String>,
    /// How long the node waits for it to settle, in ms (node default 5000, max 60000).
    #[arg(long, value_name = "MS")]
    wait_ms: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(&f),
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    if let Command::Token(TokenCommand::New(args)) = &cli.command {
        // Needs no node.
        return token_cmd::new(args, cli.json);
    }
    let ctx = Ctx {
        client: Client::new(&cli.node, cli.token.as_deref(), cli.ca_cert.as_deref())?,
        json: cli.json,
    };
    match cli.command {
        Command::Status => commands::status(&ctx),
        Command::Owner { id } => commands::owner(&ctx, &id),
        Command::Drain { node_id } => drain_cmd::run(&ctx, &node_id),
        Command::Account(a) => match a {
            AccountCommand::Open {
                id,
                currency,
                shards,
            } => commands::open(&ctx, &id, &currency, shards),
            AccountCommand::Show { id } => commands::show(&ctx, &id),
            AccountCommand::History {
                id,
                after_seq,
                limit,
                all,
                shard,
            } => commands::history(&ctx, &id, after_seq, limit, all, shard),
            AccountCommand::Transfers {
                id,
                status,
                after,
                limit,
                all,
            } => list_cmd::transfers(&ctx, &id, status.as_deref(), after, limit, all),
            AccountCommand::Freeze { id } => commands::freeze(&ctx, &id, true),
            AccountCommand::Unfreeze { id } => commands::freeze(&ctx, &id, false),
        },
        Command::Deposit(m) => {
            commands::movement(&ctx, true, &m.id, &m.amount, m.key.as_deref(), m.reference)
        }
        Command::Withdraw(m) => {
            commands::movement(&ctx, false, &m.id, &m.amount, m.key.as_deref(), m.reference)
        }
        Command::Transfer(t) => commands::transfer(
            &ctx,
            commands::TransferArgs {
                from: &t.from,
                to: &t.to,
                amount: &t.amount,
                key: t.saga.key.as_deref(),
                reference: t.saga.reference,
                wait_ms: t.saga.wait_ms,
            },
        ),
        Command::Hold(h) => match h {
            HoldCommand::Create {
                from,
                to,
                amount,
                expires_in_ms,
                key,
                reference,
            } => hold_cmd::create(
                &ctx,
                hold_cmd::CreateArgs {
                    from: &from,
                    to: &to,
                    amount: &amount,
                    expires_in_ms,
                    key: key.as_deref(),
                    reference,
                },
            ),
            HoldCommand::Show { id } => hold_cmd::show(&ctx, &id),
            HoldCommand::Capture {
                id,
                amount,
                wait_ms,
                key,
            } => hold_cmd::capture(&ctx, &id, amount.as_deref(), wait_ms, key.as_deref()),
            HoldCommand::Void { id, key } => hold_cmd::void(&ctx, &id, key.as_deref()),
        },
        Command::Disburse { from, legs, saga } => disburse_cmd::run(
            &ctx,
            &from,
            &legs,
            saga.key.as_deref(),
            saga.reference,
            saga.wait_ms,
        ),
        Command::Watch(w) => watch_cmd::run(&ctx, &w),
        Command::Audit { wait_secs } => audit_cmd::run(&ctx, wait_secs),
        Command::Bench(b) => bench::run(&ctx, &b),
        Command::Token(TokenCommand::New(_)) => unreachable!("handled above"),
    }
}

/// Prints a failure on stderr and chooses the exit status.
fn report(f: &Failure) -> ExitCode {
    if let CliError::Output(e) = &f.error {
        // The reader of our output went away (`| head`): nothing more to say.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("error: {}: {}", f.error.code(), f.error);
    if f.error.outcome_unknown() {
        match (&f.error, &f.key) {
            (CliError::Pending { .. }, Some(k)) => eprintln!(
                "the transfer is accepted but not settled; repeating the command with --key {k} is safe and does not transfer twice"
            ),
            (_, Some(k)) => eprintln!(
                "the outcome is unknown: it may or may not have been applied; retry with the same key: --key {k}"
            ),
            (_, None) => {}
        }
    }
    ExitCode::from(f.error.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        // Proves clap accepts the command definition (no conflicting names or flags).
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses_the_documented_surface() {
        // Proves each documented command line parses, negative amounts reach our own validation,
        // and --node/--json are global.
        let ok = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("walletctl").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        ok(&["status"]);
        ok(&["owner", "alice"]);
        ok(&["account", "open", "alice", "--currency", "EUR"]);
        ok(&[
            "account",
            "history",
            "alice",
            "--after-seq",
            "5",
            "--limit",
            "10",
            "--all",
        ]);
        ok(&["account", "freeze", "alice", "--json"]);
        let c = ok(&["deposit", "alice", "-5", "--key", "k1", "--reference", "r"]);
        assert!(
            matches!(c.command, Command::Deposit(MovementArgs { ref amount, .. }) if amount == "-5")
        );
        ok(&["withdraw", "alice", "10"]);
        ok(&[
            "--node",
            "http://10.0.0.1:8080",
            "transfer",
            "a",
            "b",
            "7",
            "--wait-ms",
            "100",
        ]);
        ok(&["audit", "--wait-secs", "5"]);
        let c = ok(&["watch", "a", "b", "--from-seq", "3", "--json"]);
        assert!(
            matches!(c.command, Command::Watch(ref w) if w.ids == ["a", "b"] && w.from_seq == Some(3))
        );
        assert!(Cli::try_parse_from(["walletctl", "watch"]).is_err());
        let c = ok(&[
            "bench",
            "--accounts",
            "10",
            "--duration",
            "3",
            "--concurrency",
            "2",
            "--count",
            "50",
            "--seed",
            "7",
        ]);
        assert!(matches!(c.command, Command::Bench(ref b) if b.count == Some(50)));
        assert!(Cli::try_parse_from(["walletctl", "account", "open", "alice"]).is_err());
        let c = ok(&["--token", "wlt_x", "status"]);
        assert_eq!(c.token.as_deref(), Some("wlt_x"));
        ok(&[
            "token",
            "new",
            "--scopes",
            "read,write",
            "--accounts",
            "shop-*",
            "--id",
            "shop",
        ]);
        assert!(Cli::try_parse_from(["walletctl", "token", "new"]).is_err());
    }
}
