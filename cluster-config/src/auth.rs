//! `[auth]`: the bearer tokens a node accepts (API.md "Authentication").
//!
//! The config holds only the SHA-256 of each token, never the token itself, so a leaked config
//! file does not leak a credential. Whether `[auth]` is present at all decides whether the
//! node checks tokens: absent, every route is open; present (even with no token), every route
//! but `/healthz` and `/readyz` needs one. Validation here is pure; the node hashes presented
//! tokens and compares digests.

use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Longest account pattern, in characters (an account id, plus a trailing `*`).
pub const ACCOUNT_PATTERN_LEN_MAX: usize = 65;

/// `[auth]` section: the accepted tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `[[auth.tokens]]`: every accepted token (default none: only health routes answer).
    pub tokens: Vec<TokenConfig>,
}

/// What a token may do: one of `read`, `write`, `admin`, `metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET routes and stream subscriptions.
    Read,
    /// Mutating `/v1` routes and WebSocket commands that move money.
    Write,
    /// `/admin/*`.
    Admin,
    /// `/metrics`.
    Metrics,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Metrics];

    /// The name used in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }

    /// Parses a scope name (exact, lower case).
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[auth.tokens]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name shown in logs (never the secret): the rules of a node id (1 to 64 of
    /// `A-Z a-z 0-9 _ - .`), unique.
    pub id: String,
    /// Hex SHA-256 of the token (64 hex digits), unique.
    pub sha256: String,
    /// What the token may do; at least one.
    pub scopes: Vec<Scope>,
    /// Accounts the token may act on: exact ids, or prefixes ending in `*`; absent = every
    /// account. Not allowed with the `admin` scope, which acts on the whole node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
}

impl AuthConfig {
    /// Checks every token and that ids and digests are unique; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut ids = BTreeSet::new();
        let mut digests = BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let field = |name: &str| format!("auth.tokens[{i}].{name}");
            t.validate()
                .map_err(|(name, m)| ConfigError::invalid(field(name), m))?;
            if !ids.insert(t.id.as_str()) {
                return Err(ConfigError::invalid(
                    field("id"),
                    format!("{:?} is used by an earlier token; ids must be unique", t.id),
                ));
            }
            if !digests.insert(t.sha256.to_ascii_lowercase()) {
                return Err(ConfigError::invalid(
                    field("sha256"),
                    "is the digest of an earlier token; each token needs its own secret",
                ));
            }
        }
        Ok(())
    }
}

impl TokenConfig {
    /// Checks this entry alone; `Err` holds the field's name and the sentence.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::check_node_id(&self.id).map_err(|m| ("id", m))?;
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err((
                "sha256",
                format!(
                    "must be 64 hex digits (the SHA-256 of the token, as `walletctl token new` prints it), got {} characters",
                    self.sha256.len()
                ),
            ));
        }
        if self.scopes.is_empty() {
            return Err((
                "scopes",
                "must name at least one of read, write, admin, metrics".into(),
            ));
        }
        let Some(patterns) = &self.accounts else {
            return Ok(());
        };
        if patterns.is_empty() {
            return Err((
                "accounts",
                "must name at least one pattern; omit it for every account".into(),
            ));
        }
        if self.scopes.contains(&Scope::Admin) {
            return Err((
                "accounts",
                "cannot limit a token with the admin scope: admin routes act on the whole node"
                    .into(),
            ));
        }
        for p in patterns {
            check_pattern(p).map_err(|m| ("accounts", m))?;
        }
        Ok(())
    }

    /// This entry as a `[[auth.tokens]]` TOML table, ready to paste into a config.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct Wrap<'a> {
            auth: WrapAuth<'a>,
        }
        #[derive(Serialize)]
        struct WrapAuth<'a> {
            tokens: [&'a TokenConfig; 1],
        }
        toml::to_string(&Wrap {
            auth: WrapAuth { tokens: [self] },
        })
        .expect("a token entry serializes")
    }
}

/// Whether `account` matches a pattern of the config: the same id, or, for a pattern ending
/// in `*`, any id starting with what precedes it.
pub fn account_matches(pattern: &str, account: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => account.starts_with(prefix),
        None => pattern == account,
    }
}

/// Checks an account pattern: account-id characters, with at most one `*`, at the end.
pub(crate) fn check_pattern(p: &str) -> Result<(), String> {
    let body = p.strip_suffix('*').unwrap_or(p);
    if p.is_empty() || p.len() > ACCOUNT_PATTERN_LEN_MAX || (body.len() == p.len() && p.len() > 64)
    {
        return Err(format!(
            "{p:?}: a pattern is an account id (1 to 64 characters) or a prefix ending in `*`"
        ));
    }
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(format!(
            "{p:?}: found {c:?}; a pattern holds A-Z a-z 0-9 _ - . : and may end in one `*`"
        ));
    }
    Ok(())
}
