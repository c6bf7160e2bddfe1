//! Bearer tokens (API.md "Authentication"): who is calling, and what it may do.
//!
//! The config holds the SHA-256 of each token; a presented token is hashed and its digest
//! compared with every configured digest in constant time ([`Auth::authenticate`]), so
//! neither the config nor the timing of a refusal reveals a secret. The token set sits behind
//! a lock and is replaced whole by [`Auth::reload`] (walletd does it on SIGHUP); a
//! [`generation`](Auth::generation) counter lets long-lived WebSockets notice the change and
//! look their token up again, so a revoked token stops working without a restart.
//!
//! Checks happen in two places. The gateway's middleware ([`authorize`]) authenticates every
//! request (401 `unauthorized`) and checks the route's scope (403 `forbidden`) before
//! admission control, so an unauthenticated flood takes no place among the requests in
//! progress; it leaves the [`Caller`] in the request. Handlers then check the accounts the
//! body or path names with [`Caller::permits`], since only they have decoded it.
//!
//! Left out: token expiry and rotation dates (revoke by removing the entry and sending
//! SIGHUP), rate limits per token, and per-route audit logs beyond the debug-level refusals.

use super::error::HttpError;
use super::routes::{self, Access};
use super::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use cluster_config::{AuthConfig, Scope};
use protocol::{AccountId, ApiError, ErrorCode};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// A SHA-256 digest.
pub type TokenDigest = [u8; 32];

/// The SHA-256 of a token, as the config holds it.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// The lower-case hex of a digest (or of any 32 bytes).
pub fn digest_hex(d: &TokenDigest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accounts a token may act on: an exact id, or every id with a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(p: &str) -> Pattern {
        match p.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(p.to_owned()),
        }
    }

    fn matches(&self, account: &str) -> bool {
        match self {
            Pattern::Exact(id) => id == account,
            Pattern::Prefix(prefix) => account.starts_with(prefix.as_str()),
        }
    }
}

/// One accepted token: its id, digest, scopes and accounts.
#[derive(Debug)]
pub struct Token {
    /// The id shown in logs and messages (never the secret).
    pub id: String,
    digest: TokenDigest,
    scopes: Vec<Scope>,
    /// `None`: every account.
    accounts: Option<Vec<Pattern>>,
}

impl Token {
    fn from_config(t: &cluster_config::TokenConfig) -> Token {
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&t.sha256[2 * i..2 * i + 2], 16)
                .expect("a validated config holds 64 hex digits");
        }
        Token {
            id: t.id.clone(),
            digest,
            scopes: t.scopes.clone(),
            accounts: t
                .accounts
                .as_ref()
                .map(|ps| ps.iter().map(|p| Pattern::parse(p)).collect()),
        }
    }

    /// The token's digest (to look it up again after a reload; not a secret).
    pub fn digest(&self) -> TokenDigest {
        self.digest
    }

    /// Whether the token has a scope.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the token may act on an account.
    pub fn may_access(&self, account: &str) -> bool {
        match &self.accounts {
            None => true,
            Some(ps) => ps.iter().any(|p| p.matches(account)),
        }
    }
}

/// The tokens a node accepts, replaced whole on reload.
pub struct Auth {
    tokens: RwLock<Arc<Vec<Arc<Token>>>>,
    generation: AtomicU64,
}

impl Auth {
    /// The tokens of a validated `[auth]`.
    pub fn new(config: &AuthConfig) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(Self::tokens_of(config))),
            generation: AtomicU64::new(0),
        }
    }

    fn tokens_of(config: &AuthConfig) -> Vec<Arc<Token>> {
        config
            .tokens
            .iter()
            .map(|t| Arc::new(Token::from_config(t)))
            .collect()
    }

    /// Replaces every token by those of a validated `[auth]`; returns their ids.
    pub fn reload(&self, config: &AuthConfig) -> Vec<String> {
        let tokens = Arc::new(Self::tokens_of(config));
        let ids = tokens.iter().map(|t| t.id.clone()).collect();
        *self.tokens.write().expect("token lock") = tokens;
        self.generation.fetch_add(1, Ordering::Release);
        ids
    }

    /// Counts reloads: a holder of a [`Token`] looks it up again when this changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The token whose digest this is, if it is accepted now; every digest is compared, in
    /// constant time each.
    pub fn lookup(&self, digest: &TokenDigest) -> Option<Arc<Token>> {
        let tokens = self.tokens.read().expect("token lock").clone();
        let mut found = None;
        for t in tokens.iter() {
            if bool::from(t.digest.ct_eq(digest)) {
                found = Some(t.clone());
            }
        }
        found
    }

    /// The accepted token a client presented, if it is one.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Token>> {
        self.lookup(&digest(presented))
    }
}

/// Who made a request, as the middleware found it.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No `[auth]`: everything is allowed.
    Anyone,
    /// The request's token.
    Token(Arc<Token>),
}

impl Caller {
    /// Whether the caller may act on an account.
    pub fn may_access(&self, account: &AccountId) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::Token(t) => t.may_access(account.as_str()),
        }
    }

    /// `Ok` when the caller has `scope` and may act on `account` (if one is named), else a
    /// `forbidden` error naming the token and what it lacks.
    pub fn permits(&self, scope: Scope, account: Option<&AccountId>) -> Result<(), ApiError> {
        let Caller::Token(t) = self else {
            return Ok(());
        };
        let why = if !t.has(scope) {
            format!("the token {:?} lacks the {scope} scope", t.id)
        } else if let Some(a) = account.filter(|a| !t.may_access(a.as_str())) {
            format!("the token {:?} may not act on account {a}", t.id)
        } else {
            return Ok(());
        };
        tracing::debug!(token = %t.id, %why, "forbidden");
        Err(ApiError::new(ErrorCode::Forbidden, why))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = HttpError;

    /// The caller [`authorize`] left; a request it did not see is refused (fail closed).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        checked(parts).cloned()
    }
}

/// A request whose caller has the `admin` scope: the admin handlers take it, so that they
/// refuse a request the middleware did not check (fail closed), not only through the route
/// table.
pub struct AdminScope;

impl<S: Send + Sync> FromRequestParts<S> for AdminScope {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        require(parts, Scope::Admin).map(|()| AdminScope)
    }
}

/// A request whose caller has the `metrics` scope (as [`AdminScope`], for `/metrics`).
pub struct MetricsScope;

impl<S: Send + Sync> FromRequestParts<S> for MetricsScope {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        require(parts, Scope::Metrics).map(|()| MetricsScope)
    }
}

/// The caller [`authorize`] left in the request; a request it did not see is refused.
fn checked(parts: &Parts) -> Result<&Caller, HttpError> {
    parts
        .extensions
        .get::<Caller>()
        .ok_or_else(|| unauthorized("no token was checked for this route"))
}

/// `Ok` when the middleware checked the request and its caller has `scope`.
fn require(parts: &Parts, scope: Scope) -> Result<(), HttpError> {
    Ok(checked(parts)?.permits(scope, None)?)
}

/// An `unauthorized` error with a sentence (the response carries `WWW-Authenticate: Bearer`).
pub fn unauthorized(message: impl Into<String>) -> HttpError {
    HttpError(ApiError::new(ErrorCode::Unauthorized, message))
}

/// The token a request presents: `Authorization: Bearer <token>`, or for the WebSocket
/// `?access_token=`.
fn presented(req: &Request, route: Option<&str>) -> Option<String> {
    if let Some(v) = req.headers().get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    if route != Some("/v1/stream") {
        return None;
    }
    let q =
        axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(req.uri())
            .ok()?;
    q.0.get("access_token").cloned()
}

/// Authenticates a request and checks its route's scope, leaving the [`Caller`] in it (part
/// of the gateway's one middleware, before admission control). Without `[auth]` every
/// request passes as [`Caller::Anyone`]. A path that names no route needs a valid token
/// (then answers 404), so routes are not probed without one.
pub fn authorize(st: &AppState, req: &mut Request) -> Result<(), HttpError> {
    let Some(auth) = &st.auth else {
        req.extensions_mut().insert(Caller::Anyone);
        return Ok(());
    };
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let method = req.method().as_str();
    let access = route
        .and_then(|path| routes::find(method, path))
        .map_or(Access::Authenticated, |r| r.access);
    if access == Access::Open {
        return Ok(());
    }
    let Some(token) = presented(req, route) else {
        tracing::debug!(path = req.uri().path(), "unauthorized: no bearer token");
        return Err(unauthorized(
            "this route needs a token: send Authorization: Bearer <token>",
        ));
    };
    let Some(token) = auth.authenticate(&token) else {
        tracing::debug!(path = req.uri().path(), "unauthorized: unknown token");
        return Err(unauthorized("the token is not valid (unknown or revoked)"));
    };
    let caller = Caller::Token(token);
    if let Access::Scope(scope) = access {
        caller.permits(scope, None)?;
    }
    req.extensions_mut().insert(caller);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_config::TokenConfig;

    /// A token of a test config: id, secret, scopes, account patterns.
    type Entry<'a> = (&'a str, &'a str, &'a [Scope], Option<&'a [&'a str]>);

    fn config(tokens: &[Entry]) -> AuthConfig {
        AuthConfig {
            tokens: tokens
                .iter()
                .map(|(id, secret, scopes, accounts)| TokenConfig {
                    id: (*id).into(),
                    sha256: digest_hex(&digest(secret)),
                    scopes: scopes.to_vec(),
                    accounts: accounts.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
                })
                .collect(),
        }
    }

    #[test]
    fn auth_digest_is_sha256_in_lower_hex() {
        // Proves the digest is SHA-256 as the config holds it: API.md's example entry
        // `9f86d0...` is the SHA-256 of "test" (known answer, not just self-agreement).
        assert_eq!(
            digest_hex(&digest("test")),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }

    #[test]
    fn auth_admin_and_metrics_handlers_fail_closed() {
        // Proves the admin and metrics handlers' own check: a request no middleware checked
        // is refused 401, a token without the scope 403, and a token with it (or a node
        // without [auth]) passes.
        let auth = Auth::new(&config(&[
            ("ops", "ops", &[Scope::Admin], None),
            ("app", "app", &[Scope::Read, Scope::Metrics], None),
        ]));
        let parts = |caller: Option<Caller>| {
            let (mut parts, ()) = axum::http::Request::new(()).into_parts();
            if let Some(c) = caller {
                parts.extensions.insert(c);
            }
            parts
        };
        let token = |secret: &str| Some(Caller::Token(auth.authenticate(secret).unwrap()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let admin = |caller| {
            rt.block_on(AdminScope::from_request_parts(&mut parts(caller), &()))
                .err()
                .map(|e| e.0.code)
        };
        assert_eq!(admin(None), Some(ErrorCode::Unauthorized));
        assert_eq!(admin(token("app")), Some(ErrorCode::Forbidden));
        assert_eq!(admin(token("ops")), None);
        assert_eq!(admin(Some(Caller::Anyone)), None);
        let metrics = |caller| {
            rt.block_on(MetricsScope::from_request_parts(&mut parts(caller), &()))
                .err()
                .map(|e| e.0.code)
        };
        assert_eq!(metrics(None), Some(ErrorCode::Unauthorized));
        assert_eq!(metrics(token("ops")), Some(ErrorCode::Forbidden));
        assert_eq!(metrics(token("app")), None);
    }

    #[test]
    fn auth_tokens_match_by_digest_and_patterns_by_prefix() {
        // Proves a token is found by its secret only, and that exact and prefix patterns
        // admit exactly the accounts they name.
        let auth = Auth::new(&config(&[(
            "shop",
            "s3cret",
            &[Scope::Read],
            Some(&["shop-*", "bank"]),
        )]));
        assert!(auth.authenticate("s3cre").is_none());
        assert!(auth.authenticate("").is_none());
        let t = auth.authenticate("s3cret").expect("accepted");
        assert_eq!(t.id, "shop");
        for (account, ok) in [
            ("shop-1", true),
            ("shop-", true),
            ("shop", false),
            ("bank", true),
            ("bank2", false),
            ("alice", false),
        ] {
            assert_eq!(t.may_access(account), ok, "{account}");
        }
        let caller = Caller::Token(t);
        let bank = AccountId::new("bank").unwrap();
        assert!(caller.permits(Scope::Read, Some(&bank)).is_ok());
        let e = caller.permits(Scope::Write, Some(&bank)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.message.contains("write"), "{}", e.message);
    }

    #[test]
    fn auth_reload_replaces_tokens_and_counts_generations() {
        // Proves a reload revokes a removed token and admits a new one, and bumps the
        // generation that open WebSockets watch.
        let auth = Auth::new(&config(&[("a", "alpha", &[Scope::Read], None)]));
        let before = auth.generation();
        let ids = auth.reload(&config(&[("b", "beta", &[Scope::Read], None)]));
        assert_eq!(ids, vec!["b".to_owned()]);
        assert!(auth.generation() > before);
        assert!(auth.authenticate("alpha").is_none());
        assert!(auth.authenticate("beta").is_some());
    }
}
