//! `walletctl watch ID...`: prints every balance update of some accounts as it commits.
//!
//! It reads each account first (`GET /v1/accounts/{id}`: an unknown account or a refused token
//! fails there, clearly), then subscribes on the node's WebSocket to every account, and to
//! every shard of a sharded one. It remembers the last `seq` it printed per subscription: after
//! a dropped connection it reconnects, with a backoff from [`BACKOFF_FIRST`] doubling up to
//! [`BACKOFF_MAX`], and resubscribes with `from_seq` at that `seq`, so nothing is printed twice
//! or skipped (the node streams without gap; an update at or below the last printed one is
//! dropped, and a gap is an error). It gives up when no connection has worked for
//! [`RECONNECTING_MAX`]. Ctrl-C closes the socket with a close frame and exits 0.

use crate::client::CliError;
use crate::commands::{account_id, Ctx, Failure};
use crate::output;
use crate::stream_client::{self, OpenError, Socket};
use protocol::api::AccountView;
use protocol::stream::{ClientFrame, ServerFrame};
use protocol::{AccountId, ApiError, ErrorCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How often a waiting read wakes up to check for Ctrl-C.
const POLL: Duration = Duration::from_millis(100);
/// Pause before the first reconnect after a dropped connection.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
/// Longest pause between two reconnect attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long reconnecting may fail before `watch` gives up.
const RECONNECTING_MAX: Duration = Duration::from_secs(600);
/// Silence after which `watch` pings the node.
const PING_AFTER: Duration = Duration::from_secs(15);
/// Silence after which the connection counts as dropped (a ping went unanswered).
const SILENCE_MAX: Duration = Duration::from_secs(40);
/// How long Ctrl-C waits for the node to answer the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Arguments of `watch`.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Accounts to watch.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Start with the entries after this sequence (each shard's, for a sharded account)
    /// instead of only new ones: 0 replays the whole journal.
    #[arg(long, value_name = "N")]
    pub from_seq: Option<u64>,
}

/// One stream: an account, or one shard of a sharded account.
#[derive(Debug)]
struct Sub {
    account: AccountId,
    shard: Option<u16>,
    /// The last `seq` printed, or asked for (`--from-seq`, or the `seq` when subscribed).
    last: Option<u64>,
    /// Subscribed on the current connection.
    live: bool,
    /// Where the current connection's subscription started: the `seq` after which it streams.
    start: Option<u64>,
}

impl Sub {
    fn name(&self) -> String {
        match self.shard {
            Some(j) => format!("{} shard {j}", self.account),
            None => self.account.to_string(),
        }
    }
}

/// How a connection ended, when `watch` goes on.
enum Ended {
    /// Ctrl-C: the socket was closed.
    Stopped,
    /// The connection dropped (why); subscriptions were live on it when `true`.
    Lost(String, bool),
}

/// Runs `watch`: until Ctrl-C (`Ok`), a refusal, or reconnecting fails for too long.
pub fn run(ctx: &Ctx, args: &WatchArgs) -> Result<(), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| {
        CliError::Failed {
            code: "watch_failed",
            message: format!("cannot handle Ctrl-C: {e}"),
        }
    })?;
    let mut subs = subscriptions(ctx, args)?;
    let mut backoff = BACKOFF_FIRST;
    let mut failing_since: Option<Instant> = None;
    let mut connections = 0u64;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let why = match stream_client::open(&ctx.client, POLL) {
            Err(OpenError::Refused(e)) => return Err(e.into()),
            Err(OpenError::Failed(why)) => why,
            Ok(socket) => {
                connections += 1;
                let url = stream_client::stream_url(ctx.client.base());
                match session(socket, &url, &mut subs, ctx.json, &stop, connections > 1)? {
                    Ended::Stopped => return Ok(()),
                    Ended::Lost(why, was_live) => {
                        if was_live {
                            failing_since = None;
                            backoff = BACKOFF_FIRST;
                        }
                        why
                    }
                }
            }
        };
        let first = failing_since.is_none();
        let since = *failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= RECONNECTING_MAX {
            return Err(CliError::Connect {
                url: stream_client::stream_url(ctx.client.base()),
                detail: format!(
                    "no working connection for {} s; last: {why}",
                    RECONNECTING_MAX.as_secs()
                ),
            }
            .into());
        }
        let what = if first {
            "stream connection lost"
        } else {
            "reconnecting failed"
        };
        eprintln!(
            "note: {what} ({why}); reconnecting in {} ms",
            backoff.as_millis()
        );
        pause(backoff, &stop);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The streams to follow: each account, or each shard of a sharded one, read once to check
/// that it exists and that the token may read it.
fn subscriptions(ctx: &Ctx, args: &WatchArgs) -> Result<Vec<Sub>, CliError> {
    let mut subs: Vec<Sub> = Vec::new();
    for id in &args.ids {
        let account = account_id("account", id)?;
        if subs.iter().any(|s| s.account == account) {
            continue;
        }
        let view: AccountView =
            ctx.client
                .get(&format!("/v1/accounts/{account}"))
                .map_err(|e| match e {
                    CliError::Api { error } => CliError::Api {
                        error: ApiError::new(error.code, format!("{account}: {}", error.message)),
                    },
                    other => other,
                })?;
        let shards: Vec<Option<u16>> = match view.shards {
            Some(k) => (0..k).map(Some).collect(),
            None => vec![None],
        };
        for shard in shards {
            subs.push(Sub {
                account: account.clone(),
                shard,
                last: args.from_seq,
                live: false,
                start: None,
            });
        }
    }
    Ok(subs)
}

/// Sleeps `d`, or less when Ctrl-C comes.
fn pause(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(POLL));
    }
}

/// Follows the streams on one connection until it drops or Ctrl-C; prints every new update.
fn session(
    mut socket: Socket,
    url: &str,
    subs: &mut [Sub],
    json: bool,
    stop: &AtomicBool,
    resumed: bool,
) -> Result<Ended, Failure> {
    for s in subs.iter_mut() {
        s.live = false;
        s.start = s.last;
        let frame = ClientFrame::Subscribe {
            account: s.account.clone(),
            from_seq: s.last,
            shard: s.shard,
        };
        if let Err(e) = send(&mut socket, &frame) {
            return Ok(Ended::Lost(e.to_string(), false));
        }
    }
    let mut heard = Instant::now();
    let mut pinged = false;
    loop {
        if stop.load(Ordering::SeqCst) {
            close(&mut socket);
            return Ok(Ended::Stopped);
        }
        let all_live = subs.iter().all(|s| s.live);
        let text = match socket.read() {
            Ok(Message::Text(t)) => t,
            Ok(_) => {
                heard = Instant::now();
                continue;
            }
            Err(tungstenite::Error::Io(e)) if waiting(&e) => {
                let silent = heard.elapsed();
                if silent >= SILENCE_MAX {
                    let why = format!("no answer for {} s", silent.as_secs());
                    return Ok(Ended::Lost(why, all_live));
                }
                if silent >= PING_AFTER && !pinged {
                    pinged = true;
                    if let Err(e) = send(&mut socket, &ClientFrame::Ping) {
                        return Ok(Ended::Lost(e.to_string(), all_live));
                    }
                }
                continue;
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(Ended::Lost("the node closed it".into(), all_live))
            }
            Err(e) => return Ok(Ended::Lost(e.to_string(), all_live)),
        };
        heard = Instant::now();
        pinged = false;
        let frame: ServerFrame =
            serde_json::from_str(text.as_str()).map_err(|e| CliError::BadResponse {
                url: url.to_owned(),
                status: 101,
                detail: format!("not a stream frame ({e}): {text}"),
            })?;
        match frame {
            ServerFrame::Subscribed {
                account,
                shard,
                seq,
            } => {
                let Some(s) = find(subs, &account, shard) else {
                    continue;
                };
                s.live = true;
                s.last.get_or_insert(seq);
                s.start.get_or_insert(seq);
                if subs.iter().all(|s| s.live) {
                    let what = if resumed { "resumed" } else { "watching" };
                    let at: Vec<String> = subs
                        .iter()
                        .map(|s| format!("{} after seq {}", s.name(), s.start.unwrap_or(0)))
                        .collect();
                    eprintln!("note: {what} {}", at.join(", "));
                }
            }
            ServerFrame::Balance {
                ref account,
                shard,
                seq,
                ..
            } => {
                let Some(s) = find(subs, account, shard) else {
                    continue;
                };
                let last = s.last.unwrap_or(0);
                if seq <= last {
                    continue;
                }
                if seq != last + 1 {
                    return Err(CliError::Failed {
                        code: "stream_gap",
                        message: format!(
                            "the stream of {} went from seq {last} to {seq}, skipping updates",
                            s.name()
                        ),
                    }
                    .into());
                }
                s.last = Some(seq);
                if json {
                    output::json(&frame)?;
                } else {
                    output::line(update_line(&frame))?;
                }
            }
            ServerFrame::Error { code, message, .. } => match code {
                // The node cannot serve a stream now; a new connection resumes it.
                ErrorCode::Unavailable | ErrorCode::Overloaded => {
                    return Ok(Ended::Lost(format!("{}: {message}", code.as_str()), false))
                }
                _ => {
                    return Err(CliError::Api {
                        error: ApiError::new(code, message),
                    }
                    .into())
                }
            },
            ServerFrame::Unsubscribed { .. } | ServerFrame::Pong | ServerFrame::Result { .. } => {}
        }
    }
}

/// True for a read that only waited (its timeout passed, or a signal such as Ctrl-C came):
/// the socket is still fine.
fn waiting(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

fn find<'a>(subs: &'a mut [Sub], account: &AccountId, shard: Option<u16>) -> Option<&'a mut Sub> {
    subs.iter_mut()
        .find(|s| &s.account == account && s.shard == shard)
}

/// Sends one frame and flushes it.
fn send(socket: &mut Socket, frame: &ClientFrame) -> Result<(), tungstenite::Error> {
    let text = serde_json::to_string(frame).expect("client frames serialize");
    socket.send(Message::Text(text.into()))
}

/// Sends a close frame and waits, at most [`CLOSE_WAIT`], for the node's.
fn close(socket: &mut Socket) {
    if socket.close(None).is_err() {
        return;
    }
    let until = Instant::now() + CLOSE_WAIT;
    while Instant::now() < until {
        match socket.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if waiting(&e) => {}
            Err(_) => return,
        }
    }
}

/// One update for humans: account (and shard), seq, kind, amount, balances.
fn update_line(frame: &ServerFrame) -> String {
    let ServerFrame::Balance {
        account,
        shard,
        seq,
        balance,
        available,
        held,
        entry,
    } = frame
    else {
        unreachable!("only balance frames are printed")
    };
    let shard = shard.map_or(String::new(), |j| format!("  shard {j}"));
    format!(
        "{account}{shard}  seq {seq}  {}  {}  balance {balance}  available {available}  held {held}",
        entry.kind.as_str(),
        entry.amount,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::api::{Entry, EntryKind};
    use std::net::{TcpListener, TcpStream};

    fn balance(seq: u64) -> ServerFrame {
        ServerFrame::Balance {
            account: AccountId::new("a").unwrap(),
            shard: None,
            seq,
            balance: seq,
            available: seq,
            held: 0,
            entry: Entry {
                seq,
                kind: EntryKind::Deposit,
                amount: 1,
                balance: seq,
                available: seq,
                transfer_id: None,
                reference: None,
                at: 0,
                shard: None,
            },
        }
    }

    /// Runs a session of `watch a` against a stream server that answers the subscription with
    /// `frames` and then, when `then_stop`, sets `stop` (Ctrl-C); returns the session's end,
    /// its subscription, and whether a close frame reached the server.
    fn against(
        frames: Vec<ServerFrame>,
        then_stop: bool,
    ) -> (Result<Ended, Failure>, Vec<Sub>, bool) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut ws = tungstenite::accept(tcp).unwrap();
            let Message::Text(t) = ws.read().unwrap() else {
                panic!("a subscribe frame first")
            };
            let sub: ClientFrame = serde_json::from_str(t.as_str()).unwrap();
            assert!(matches!(sub, ClientFrame::Subscribe { from_seq: None, .. }));
            let subscribed = ServerFrame::Subscribed {
                account: AccountId::new("a").unwrap(),
                shard: None,
                seq: 0,
            };
            for f in std::iter::once(subscribed).chain(frames) {
                let text = serde_json::to_string(&f).unwrap();
                ws.send(Message::Text(text.into())).unwrap();
            }
            flag.store(then_stop, Ordering::SeqCst);
            loop {
                match ws.read() {
                    Ok(Message::Close(_)) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        });
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(POLL)).unwrap();
        let stream: Box<dyn stream_client::Io> = Box::new(tcp);
        let (socket, _) = tungstenite::client(format!("ws://{addr}/v1/stream"), stream).unwrap();
        let mut subs = vec![Sub {
            account: AccountId::new("a").unwrap(),
            shard: None,
            last: None,
            live: false,
            start: None,
        }];
        let ended = session(socket, "ws://test", &mut subs, true, &stop, false);
        let closed = server.join().unwrap();
        (ended, subs, closed)
    }

    #[test]
    fn ctrl_c_closes_the_socket_with_a_close_frame() {
        // Proves a stop ends the session as Stopped after a close frame reached the node.
        let (ended, _, closed) = against(vec![], true);
        assert!(matches!(ended, Ok(Ended::Stopped)));
        assert!(closed, "the server got a close frame");
    }

    #[test]
    fn a_repeated_update_is_skipped_and_a_gap_is_an_error() {
        // Proves seq 1 sent twice is printed once (the next expected is 2 after it), and a
        // jump from 2 to 4 stops watch with stream_gap instead of skipping an update.
        let (ended, subs, _) = against(vec![balance(1), balance(1), balance(2), balance(4)], false);
        let Err(f) = ended else {
            panic!("a gap is an error")
        };
        assert_eq!(f.error.code(), "stream_gap");
        assert!(
            f.error.to_string().contains("from seq 2 to 4"),
            "{}",
            f.error
        );
        assert_eq!(subs[0].last, Some(2));
    }

    #[test]
    fn an_update_line_names_account_shard_seq_kind_amount_and_balances() {
        // Proves the human line carries every field the command documents, the shard only
        // for a sharded account.
        let entry = Entry {
            seq: 7,
            kind: EntryKind::TransferIn,
            amount: 250,
            balance: 1250,
            available: 1000,
            transfer_id: None,
            reference: None,
            at: 0,
            shard: Some(2),
        };
        let frame = |shard| ServerFrame::Balance {
            account: AccountId::new("shop").unwrap(),
            shard,
            seq: 7,
            balance: 1250,
            available: 1000,
            held: 250,
            entry: entry.clone(),
        };
        assert_eq!(
            update_line(&frame(None)),
            "shop  seq 7  transfer_in  250  balance 1250  available 1000  held 250"
        );
        assert_eq!(
            update_line(&frame(Some(2))),
            "shop  shard 2  seq 7  transfer_in  250  balance 1250  available 1000  held 250"
        );
    }
}
