//! `token new`: a fresh bearer token and its config entry.
//!
//! The token is 32 bytes from the operating system's random source, in hex after a `wlt_`
//! prefix (so it is easy to recognise in a leaked file). Only its SHA-256 goes into the
//! config; the token itself is printed once, for the client, and not kept anywhere.

use crate::client::CliError;
use crate::commands::Failure;
use crate::output;
use cluster_config::{AuthConfig, Scope, TokenConfig};
use node::gateway::auth::{digest, digest_hex};

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;

/// Arguments of `token new`.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// What the token may do, comma-separated: read, write, admin, metrics.
    #[arg(long, value_delimiter = ',', required = true, value_name = "SCOPES")]
    scopes: Vec<String>,
    /// Accounts it may act on, comma-separated: ids, or prefixes ending in `*` (default: all).
    #[arg(long, value_delimiter = ',', value_name = "PATTERNS")]
    accounts: Option<Vec<String>>,
    /// Its name in logs (default: `token-` and the first digits of its digest).
    #[arg(long, value_name = "NAME")]
    id: Option<String>,
}

/// `token new`: prints the token on the first line, then a blank line and its config entry
/// (or, with `--json`, one object with both).
pub fn new(args: &NewArgs, json: bool) -> Result<(), Failure> {
    let scopes = args
        .scopes
        .iter()
        .map(|s| {
            Scope::parse(s.trim()).ok_or_else(|| {
                CliError::Usage(format!(
                    "--scopes: {s:?} is not a scope; use read, write, admin, metrics"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut secret = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut secret)
        .map_err(|e| CliError::Usage(format!("the OS gave no random bytes: {e}")))?;
    let token = format!("wlt_{}", digest_hex(&secret));
    let sha256 = digest_hex(&digest(&token));
    let entry = TokenConfig {
        id: args
            .id
            .clone()
            .unwrap_or_else(|| format!("token-{}", &sha256[..8])),
        sha256,
        scopes,
        accounts: args.accounts.clone(),
    };
    // The same rules the node applies to its config, so the entry is accepted as printed.
    AuthConfig {
        tokens: vec![entry.clone()],
    }
    .validate()
    .map_err(|e| CliError::Usage(e.to_string().replace("auth.tokens[0].", "--")))?;
    if json {
        output::json(&serde_json::json!({
            "id": entry.id,
            "token": token,
            "sha256": entry.sha256,
            "scopes": entry.scopes,
            "accounts": entry.accounts,
            "config": entry.to_toml(),
        }))?;
    } else {
        output::line(format!(
            "{token}\n\n# The token above is shown once: give it to its client (--token or WALLET_TOKEN).\n# Add this entry to the node's config and send the node SIGHUP:\n{}",
            entry.to_toml().trim_end()
        ))?;
    }
    Ok(())
}
