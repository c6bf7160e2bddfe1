//! `GET /v1/stream`: the WebSocket API, balance streams and commands.
//!
//! Each socket remembers, per subscribed account, the last sequence it delivered. A live update
//! is delivered only when it is the next one; an older one is a duplicate and skipped; a newer
//! one means updates were missed (the node-wide channel overflowed, or the subscription began
//! mid-flight), and the missing entries are read from the journal first. Entries are published
//! only after their commit, so the journal always holds what the channel announces. This makes
//! each stream gap-free and duplicate-free, and `from_seq` makes it resumable across
//! reconnects.
//!
//! Live updates are published on the node whose actor committed them. For an account that
//! another node owns, or that has no active actor here (another node's activation may have
//! committed to it before the ring gave it to this node), the socket reads the journal every
//! [`REMOTE_POLL_EVERY`] instead, so a stream follows its account across ownership moves with
//! the same no-gap, no-duplicate rule. An activation publishes the account's newest entry when
//! it loads, so what was committed before it is caught up through the same gap rule.
//! With `[auth]`, the upgrade needs a valid token (header or `?access_token=`), and every
//! subscription and command is checked against it: `read` and the account for a subscription
//! or `get`, `write` and the debited account (the credited one for a deposit) for a command.
//! A refusal is a `forbidden` error frame and the socket stays open. When the tokens are
//! reloaded, the socket looks its token up again before its next frame, update or poll: a
//! revoked token gets an `unauthorized` frame and the socket closes; subscriptions the token
//! no longer allows end with a `forbidden` frame.
//!
//! Left out: pushing updates between nodes (a remote account's updates arrive up to one poll
//! period late).

use super::auth::Caller;
use super::error::HttpError;
use super::AppState;
use crate::ledger::account::BalanceUpdate;
use crate::ledger::account::{Command, Reply};
use crate::ledger::exec;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cluster_config::Scope;
use protocol::api::{Entry, TRANSFER_WAIT_MS_DEFAULT};
use protocol::ids::SHARD_SEPARATOR;
use protocol::stream::{ClientFrame, CommandResult, ServerFrame};
use protocol::{AccountId, ApiError, ErrorCode};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What the description of `GET /v1/stream` says of its frames.
const STREAM_DOC: &str = "\
A GET that upgrades to a WebSocket (RFC 6455). With `[auth]` the upgrade needs a token \
(`Authorization: Bearer` or `?access_token=`) with the `read` or `write` scope; each \
subscription and command is then checked against it (a refusal is a `forbidden` error frame \
and the socket stays open). Past `limits.ws_connections_max` the upgrade is refused 503 \
`overloaded`.

Client to server, one JSON object per text frame (schema `ClientFrame`, tagged by `op`):
- `{\"op\":\"subscribe\",\"account\":\"alice\",\"from_seq\":12}`: replays every entry after \
`from_seq` (omit it for live updates only), then streams live; answered \
`{\"type\":\"subscribed\",\"account\",\"seq\"}`. A sharded account is streamed per shard \
(`\"shard\": J`, required there).
- `{\"op\":\"unsubscribe\",\"account\":\"alice\"}`, `{\"op\":\"ping\"}` (answered `pong`).
- Commands with a `req_id`: `transfer`, `deposit`, `withdraw` (with an optional \
`idempotency_key`) and `get`; answered `{\"type\":\"result\",\"req_id\",\"result\"}` or an \
error frame with the same `req_id`. Commands may be pipelined: up to 64 in flight on one \
socket, each answered by its `req_id`, in any order.

Server to client (schema `ServerFrame`, tagged by `type`):
- `{\"type\":\"balance\",\"account\",\"seq\",\"balance\",\"available\",\"held\",\"entry\"}` for \
every journal entry, in `seq` order, with no gap and no duplicate, across reconnects (resume \
with `from_seq`) and ownership moves.
- `{\"type\":\"error\",\"code\",\"message\",\"req_id\"?}`: a bad frame gets an error and the \
socket stays open.";

/// Largest frame a client may send, in bytes.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;
/// Largest message the socket reads at all: a frame over [`FRAME_BYTES_MAX`] and up to this
/// is read and answered with an error, and the socket stays open; past this the socket closes
/// (memory per socket stays bounded).
pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// Most commands of one socket running at once.
pub const COMMANDS_IN_FLIGHT_MAX: usize = 64;
/// Journal entries read per page when back-filling a stream.
pub const BACKFILL_PAGE: usize = 500;
/// How often a socket reads the journal of its subscribed accounts that another node owns or
/// that have no active actor here.
pub const REMOTE_POLL_EVERY: Duration = Duration::from_millis(200);

/// Upgrades the connection.
#[utoipa::path(
    get,
    path = "/v1/stream",
    operation_id = "stream",
    tag = "stream",
    description = STREAM_DOC,
    params(
        ("access_token" = Option<String>, Query, nullable = false,
         description = "The bearer token, for clients that cannot set `Authorization` on a \
             WebSocket (this route only)."),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the connection is a WebSocket \
            carrying JSON text frames, `ClientFrame` from the client and `ServerFrame` from \
            the server."),
        (status = 400, description = "Not a WebSocket upgrade request (plain text).",
         content_type = "text/plain", body = String),
    )
)]
pub async fn upgrade(State(st): State<AppState>, caller: Caller, ws: WebSocketUpgrade) -> Response {
    // A socket serves reads and commands: a token with neither scope (a scraper's, an
    // operator's) may not hold one of the node's connection places.
    if caller.permits(Scope::Read, None).is_err() {
        if let Err(e) = caller.permits(Scope::Write, None) {
            // Counted with the other 403s by the gateway's middleware.
            return super::error::HttpError(ApiError::new(
                ErrorCode::Forbidden,
                format!("{}: the stream needs the read or write scope", e.message),
            ))
            .into_response();
        }
    }
    // The connection holds its place until it closes; past `limits.ws_connections_max` the
    // upgrade is refused before it happens.
    let Some(place) = st.admission.try_socket() else {
        st.shell.metrics().overloaded.inc();
        return super::admission::overloaded("WebSocket connections (limits.ws_connections_max)")
            .into_response();
    };
    ws.max_message_size(MESSAGE_BYTES_MAX)
        .on_upgrade(move |socket| async move {
            serve(st, caller, socket).await;
            drop(place);
        })
}

struct Connection {
    st: AppState,
    socket: WebSocket,
    /// Last delivered sequence per subscribed account.
    subs: BTreeMap<AccountId, u64>,
    results: mpsc::Sender<ServerFrame>,
    in_flight: usize,
    /// The token the socket was opened with.
    caller: Caller,
    /// The token set's generation `caller` was looked up in.
    auth_generation: u64,
}

/// The socket closed or failed: stop serving it.
struct Closed;

async fn serve(st: AppState, caller: Caller, socket: WebSocket) {
    st.shell.metrics().ws_connections.inc();
    let mut updates = st.shell.subscribe_updates();
    let mut shutdown = st.shutdown.clone();
    let (results, mut results_rx) = mpsc::channel(COMMANDS_IN_FLIGHT_MAX);
    let mut remote_poll = tokio::time::interval(REMOTE_POLL_EVERY);
    let mut c = Connection {
        st: st.clone(),
        socket,
        subs: BTreeMap::new(),
        results,
        in_flight: 0,
        caller,
        // No generation yet: the first frame, update or poll looks the token up again, so a
        // token revoked between the upgrade's check and now does not keep this socket.
        auth_generation: u64::MAX,
    };
    loop {
        let step = tokio::select! {
            msg = c.socket.recv() => match msg {
                Some(Ok(Message::Text(t))) => c.frame(t.as_str()).await,
                Some(Ok(Message::Binary(_))) => c.error(ErrorCode::InvalidRequest, "frames must be JSON text".into(), None).await,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(Closed),
            },
            u = updates.recv() => match u {
                Ok(u) => c.live(&u).await,
                Err(broadcast::error::RecvError::Lagged(_)) => c.catch_up_all().await,
                Err(broadcast::error::RecvError::Closed) => Err(Closed),
            },
            _ = remote_poll.tick() => c.catch_up_remote().await,
            Some(frame) = results_rx.recv() => {
                c.in_flight -= 1;
                c.send(&frame).await
            }
            _ = shutdown.changed() => {
                let _ = c.socket.send(Message::Close(None)).await;
                Err(Closed)
            }
        };
        if step.is_err() {
            break;
        }
    }
    st.shell.metrics().ws_connections.dec();
}

impl Connection {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Closed> {
        let text = serde_json::to_string(frame).expect("frames serialize");
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| Closed)
    }

    async fn error(
        &mut self,
        code: ErrorCode,
        message: String,
        req_id: Option<String>,
    ) -> Result<(), Closed> {
        self.send(&ServerFrame::Error {
            code,
            message,
            req_id,
        })
        .await
    }

    /// Looks the socket's token up again if the tokens were reloaded since: a revoked token
    /// closes the socket; subscriptions the token no longer allows end.
    async fn recheck_token(&mut self) -> Result<(), Closed> {
        let Some(auth) = self.st.auth.clone() else {
            return Ok(());
        };
        let generation = auth.generation();
        if generation == self.auth_generation {
            return Ok(());
        }
        self.auth_generation = generation;
        let Caller::Token(old) = &self.caller else {
            return Ok(());
        };
        let Some(token) = auth.lookup(&old.digest()) else {
            tracing::debug!(token = %old.id, "WebSocket closed: its token was revoked");
            self.st
                .shell
                .metrics()
                .auth_refused(ErrorCode::Unauthorized);
            let msg = format!("the token {:?} was revoked; the socket closes", old.id);
            let _ = self.error(ErrorCode::Unauthorized, msg, None).await;
            let _ = self.socket.send(Message::Close(None)).await;
            return Err(Closed);
        };
        self.caller = Caller::Token(token);
        let accounts: Vec<AccountId> = self.subs.keys().cloned().collect();
        for a in accounts {
            if let Err(e) = self.caller.permits(Scope::Read, Some(&a.public())) {
                self.subs.remove(&a);
                self.st.shell.metrics().auth_refused(ErrorCode::Forbidden);
                let msg = format!("subscription to {a} ended: {}", e.message);
                self.error(ErrorCode::Forbidden, msg, None).await?;
            }
        }
        Ok(())
    }

    /// Sends a `forbidden` frame unless the socket's token has `scope` on `account`; `Ok(true)`
    /// when allowed.
    async fn permitted(
        &mut self,
        scope: Scope,
        account: &AccountId,
        req_id: Option<&String>,
    ) -> Result<bool, Closed> {
        match self.caller.permits(scope, Some(account)) {
            Ok(()) => Ok(true),
            Err(e) => {
                self.st.shell.metrics().auth_refused(ErrorCode::Forbidden);
                self.error(e.code, e.message, req_id.cloned()).await?;
                Ok(false)
            }
        }
    }

    async fn frame(&mut self, text: &str) -> Result<(), Closed> {
        self.recheck_token().await?;
        if text.len() > FRAME_BYTES_MAX {
            let msg = format!(
                "bad frame: {} bytes, at most {FRAME_BYTES_MAX}; nothing ran",
                text.len()
            );
            return self.error(ErrorCode::InvalidRequest, msg, None).await;
        }
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                return self
                    .error(ErrorCode::InvalidRequest, format!("bad frame: {e}"), None)
                    .await
            }
        };
        match frame {
            ClientFrame::Ping => self.send(&ServerFrame::Pong).await,
            ClientFrame::Subscribe {
                account,
                from_seq,
                shard,
            } => self.subscribe(account, shard, from_seq).await,
            ClientFrame::Unsubscribe { account, shard } => {
                // The subscription's key: the account's id, or its shard's (validated like any
                // id: a shard number past the largest is no subscription).
                let key = match shard {
                    None => Ok(account.clone()),
                    Some(j) => AccountId::new(format!("{}{SHARD_SEPARATOR}{j}", account.public())),
                };
                if let Ok(key) = key {
                    self.subs.remove(&key);
                }
                self.send(&ServerFrame::Unsubscribed { account, shard })
                    .await
            }
            ClientFrame::Get { req_id, account } => {
                self.command(req_id, Scope::Read, account, Command::Get)
                    .await
            }
            ClientFrame::Deposit {
                req_id,
                account,
                amount,
                idempotency_key,
            } => {
                let cmd = Command::Deposit {
                    amount,
                    reference: None,
                    idem_key: idempotency_key.map(String::from),
                };
                self.command(req_id, Scope::Write, account, cmd).await
            }
            ClientFrame::Withdraw {
                req_id,
                account,
                amount,
                idempotency_key,
            } => {
                let cmd = Command::Withdraw {
                    amount,
                    reference: None,
                    idem_key: idempotency_key.map(String::from),
                };
                self.command(req_id, Scope::Write, account, cmd).await
            }
            ClientFrame::Transfer {
                req_id,
                from,
                to,
                amount,
                idempotency_key,
            } => {
                if from == to {
                    return self
                        .error(
                            ErrorCode::SameAccount,
                            ErrorCode::SameAccount.default_message().into(),
                            Some(req_id),
                        )
                        .await;
                }
                let cmd = Command::Transfer {
                    transfer_id: super::transfers::new_transfer_id(),
                    to,
                    amount,
                    reference: None,
                    idem_key: idempotency_key.map(String::from),
                };
                self.command(req_id, Scope::Write, from, cmd).await
            }
        }
    }

    /// Subscribes to an account's journal, or to one shard's of a sharded account (the
    /// subscription is then kept under the shard's id, which its updates carry).
    async fn subscribe(
        &mut self,
        account: AccountId,
        shard: Option<u16>,
        from_seq: Option<u64>,
    ) -> Result<(), Closed> {
        if !self.permitted(Scope::Read, &account, None).await? {
            return Ok(());
        }
        let shard = match super::accounts::shard_param(&self.st, &account, shard).await {
            Ok(s) => s,
            Err(HttpError(e)) => return self.error(e.code, e.message, None).await,
        };
        let journal = shard.map_or_else(|| account.clone(), |j| account.shard(j));
        let max = self.st.admission.subscriptions_max;
        if !self.subs.contains_key(&journal) && self.subs.len() >= max {
            self.st.shell.metrics().overloaded.inc();
            let msg = format!("at most {max} subscriptions per socket (limits.ws_subscriptions_max); nothing was subscribed");
            return self.error(ErrorCode::Overloaded, msg, None).await;
        }
        // The actor's answer is the account's committed sequence now.
        let seq = match self
            .st
            .shell
            .execute(&journal, Command::Get, Duration::ZERO)
            .await
        {
            Ok(Reply::Account { view, .. }) => view.seq,
            Ok(other) => panic!("get answered {other:?}"),
            Err(e) => return self.error(e.code, e.message, None).await,
        };
        self.subs.insert(journal.clone(), from_seq.unwrap_or(seq));
        self.send(&ServerFrame::Subscribed {
            account,
            shard,
            seq,
        })
        .await?;
        self.catch_up(&journal, None).await
    }

    /// Runs a command on `account` if the token has `scope` on it (money moves out of it, or
    /// into it for a deposit).
    async fn command(
        &mut self,
        req_id: String,
        scope: Scope,
        account: AccountId,
        cmd: Command,
    ) -> Result<(), Closed> {
        if !self.permitted(scope, &account, Some(&req_id)).await? {
            return Ok(());
        }
        if self.in_flight >= COMMANDS_IN_FLIGHT_MAX {
            self.st.shell.metrics().overloaded.inc();
            let msg = format!("at most {COMMANDS_IN_FLIGHT_MAX} commands in flight per socket; nothing ran: retry with the same idempotency key");
            return self.error(ErrorCode::Overloaded, msg, Some(req_id)).await;
        }
        self.in_flight += 1;
        let (st, results) = (self.st.clone(), self.results.clone());
        tokio::spawn(async move {
            let wait = Duration::from_millis(TRANSFER_WAIT_MS_DEFAULT);
            let frame = match super::sharded::run(&st, &account, cmd, wait).await {
                Ok(reply) => {
                    let result = match reply {
                        Reply::Account { view, .. } => CommandResult::Account(view),
                        Reply::Movement(m) => CommandResult::Movement(m.public()),
                        Reply::Transfer(view) => CommandResult::Transfer(view.public()),
                        Reply::Hold(_) | Reply::Capture { .. } | Reply::Disbursement(_) => {
                            unreachable!("the socket sends no hold or disbursement command")
                        }
                    };
                    ServerFrame::Result { req_id, result }
                }
                Err(HttpError(ApiError { code, message })) => ServerFrame::Error {
                    code,
                    message,
                    req_id: Some(req_id),
                },
            };
            let _ = results.send(frame).await;
        });
        Ok(())
    }

    async fn live(&mut self, u: &BalanceUpdate) -> Result<(), Closed> {
        self.recheck_token().await?;
        let Some(&last) = self.subs.get(&u.account) else {
            return Ok(());
        };
        let seq = u.entry.seq;
        if seq <= last {
            return Ok(()); // already delivered (from the journal)
        }
        if seq > last + 1 {
            self.catch_up(&u.account, Some(seq - 1)).await?;
        }
        if self.subs.get(&u.account) == Some(&(seq - 1)) {
            self.deliver(&u.account, &u.entry, u.held).await?;
        }
        Ok(())
    }

    /// Catches up the subscribed accounts that another node owns or that have no active actor
    /// here (their updates are not published here).
    async fn catch_up_remote(&mut self) -> Result<(), Closed> {
        self.recheck_token().await?;
        let membership = self.st.shell.membership().clone();
        let shell = self.st.shell.clone();
        let remote: Vec<AccountId> = self
            .subs
            .keys()
            .filter(|a| !membership.owns(a.as_str()) || !shell.is_active(a))
            .cloned()
            .collect();
        for a in remote {
            self.catch_up(&a, None).await?;
        }
        Ok(())
    }

    async fn catch_up_all(&mut self) -> Result<(), Closed> {
        self.recheck_token().await?;
        let accounts: Vec<AccountId> = self.subs.keys().cloned().collect();
        for a in accounts {
            self.catch_up(&a, None).await?;
        }
        Ok(())
    }

    /// Sends the journal entries after the last delivered one, up to `upto` (or the end).
    async fn catch_up(&mut self, account: &AccountId, upto: Option<u64>) -> Result<(), Closed> {
        loop {
            let Some(&last) = self.subs.get(account) else {
                return Ok(());
            };
            if upto.is_some_and(|u| last >= u) {
                return Ok(());
            }
            let (store, keys, id) = (
                self.st.shell.store().clone(),
                self.st.shell.keys().clone(),
                account.clone(),
            );
            let page = tokio::task::spawn_blocking(move || {
                exec::read_entries(&store, &keys, &id, last, BACKFILL_PAGE)
            })
            .await
            .expect("journal read does not panic");
            let page = match page {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let msg = format!(
                        "stream of {account} interrupted: {e}; resubscribe with from_seq={last}"
                    );
                    self.subs.remove(account);
                    return self.error(ErrorCode::Unavailable, msg, None).await;
                }
            };
            for e in &page.entries {
                if upto.is_some_and(|u| e.seq > u) {
                    return Ok(());
                }
                let held = e.balance - e.available;
                self.deliver(account, e, held).await?;
            }
            if page.next_after_seq.is_none() {
                return Ok(());
            }
        }
    }

    async fn deliver(
        &mut self,
        account: &AccountId,
        entry: &Entry,
        held: u64,
    ) -> Result<(), Closed> {
        let last = self
            .subs
            .get_mut(account)
            .expect("delivering to a subscription");
        assert_eq!(
            entry.seq,
            *last + 1,
            "stream of {account} would skip or repeat"
        );
        *last = entry.seq;
        // A shard's subscription is shown as its account's, with the shard named.
        let shard = account.shard_index();
        let frame = ServerFrame::Balance {
            account: account.public(),
            shard,
            seq: entry.seq,
            balance: entry.balance,
            available: entry.available,
            held,
            entry: Entry {
                shard,
                ..entry.clone()
            },
        };
        self.send(&frame).await
    }
}
