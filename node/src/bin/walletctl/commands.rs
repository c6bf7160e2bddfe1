//! The single-request commands: status, owner, account, deposit, withdraw, transfer.
//!
//! Every argument is validated with the protocol's own types before a request is sent, so a
//! typo gets a local message instead of a round trip. Every POST carries an idempotency key
//! (the user's `--key` or a generated one), which is what makes the client's retries safe.

use crate::client::{CliError, Client, ATTEMPTS, REQUEST_TIMEOUT};
use crate::output;
use crate::rng::random_key;
use protocol::admin::{NodeStatus, OwnerView, ShardView};
use protocol::api::{
    AccountView, EntriesPage, Movement, MovementView, OpenAccount, TransferRequest, TransferStatus,
    TransferView, ENTRIES_PAGE_MAX, TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX,
};
use protocol::ids::{REFERENCE_LEN_MAX, SHARDS_MAX};
use protocol::{AccountId, Amount, ApiError, Currency, IdempotencyKey};
use std::io::Write as _;
use std::time::Duration;

/// Extra time the client waits beyond a transfer's `wait_ms` before giving up on the answer.
const TRANSFER_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

/// What every command needs: the node's client and the output mode.
pub struct Ctx {
    /// Client of the node given by `--node`.
    pub client: Client,
    /// `--json`: machine output.
    pub json: bool,
}

/// A command's failure, with the idempotency key to retry with when the outcome is unknown.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: CliError,
    /// The key the mutation was sent with.
    pub key: Option<String>,
}

impl From<CliError> for Failure {
    fn from(error: CliError) -> Self {
        Failure { error, key: None }
    }
}

impl Failure {
    pub(crate) fn keyed(key: &str) -> impl FnOnce(CliError) -> Failure + '_ {
        move |error| Failure {
            error,
            key: Some(key.to_owned()),
        }
    }
}

/// Parses an account id argument.
pub fn account_id(what: &str, s: &str) -> Result<AccountId, CliError> {
    AccountId::new(s).map_err(|m| CliError::Usage(format!("{what} {s:?}: {m}")))
}

/// Parses an amount argument: a plain integer of minor units, 1 to 2^53-1.
pub fn amount(s: &str) -> Result<Amount, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "amount {s:?} is not valid: give an integer number of minor units (cents), from 1 to {}, without sign, decimal point or separators",
            protocol::AMOUNT_MAX
        ))
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u64 = s.parse().map_err(|_| bad())?;
    Amount::new(v).map_err(|_| bad())
}

/// Parses a currency argument.
pub fn currency(s: &str) -> Result<Currency, CliError> {
    Currency::new(s).map_err(|m| CliError::Usage(format!("--currency: {m}")))
}

/// The user's `--key`, validated, or a fresh random one.
pub fn key_or_random(key: Option<&str>) -> Result<String, CliError> {
    match key {
        Some(k) => IdempotencyKey::new(k)
            .map(String::from)
            .map_err(|m| CliError::Usage(format!("--key: {m}"))),
        None => Ok(random_key()),
    }
}

/// Checks a `--reference`.
pub fn reference(r: Option<String>) -> Result<Option<String>, CliError> {
    match r {
        Some(r) if r.len() > REFERENCE_LEN_MAX => Err(CliError::Usage(format!(
            "--reference is {} bytes; at most {REFERENCE_LEN_MAX} are kept",
            r.len()
        ))),
        other => Ok(other),
    }
}

/// `status`.
pub fn status(ctx: &Ctx) -> Result<(), Failure> {
    let s: NodeStatus = ctx.client.get("/admin/status")?;
    if ctx.json {
        output::json(&s)?;
    } else {
        output::line(output::status(&s))?;
    }
    Ok(())
}

/// `owner ID`.
pub fn owner(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let id = account_id("account", id)?;
    let v: OwnerView = ctx.client.get(&format!("/admin/owner/{id}"))?;
    if ctx.json {
        output::json(&v)?;
    } else {
        output::line(output::owner(&v))?;
    }
    Ok(())
}

/// `account open ID --currency CUR [--shards K]`.
pub fn open(ctx: &Ctx, id: &str, cur: &str, shards: u16) -> Result<(), Failure> {
    if !(1..=SHARDS_MAX).contains(&shards) {
        return Err(CliError::Usage(format!("--shards {shards}: from 1 to {SHARDS_MAX}")).into());
    }
    let body = OpenAccount {
        id: account_id("account", id)?,
        currency: currency(cur)?,
        shards: (shards > 1).then_some(shards),
    };
    // Opening is idempotent by itself (same id and currency answer 200), so there is no --key;
    // the generated key still makes the client's own retries replay the first answer.
    let key = random_key();
    let raw = ctx
        .client
        .post_raw("/v1/accounts", &body, &key, REQUEST_TIMEOUT, ATTEMPTS)?;
    let created = raw.status == 201;
    let v: AccountView = raw.into_result()?;
    if ctx.json {
        output::json(&v)?;
    } else {
        let what = if created {
            "opened"
        } else {
            "already open with the same settings"
        };
        output::line(format!("account {} {what}\n{}", v.id, output::account(&v)))?;
    }
    Ok(())
}

/// `account show ID`: the account, and for a sharded one each shard and its node.
pub fn show(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let id = account_id("account", id)?;
    let v: AccountView = ctx.client.get(&format!("/v1/accounts/{id}"))?;
    let shards: Option<Vec<ShardView>> = match v.shards {
        Some(_) => Some(ctx.client.get(&format!("/admin/accounts/{id}/shards"))?),
        None => None,
    };
    if ctx.json {
        match &shards {
            Some(s) => output::json(&serde_json::json!({"account": v, "shards": s}))?,
            None => output::json(&v)?,
        }
    } else {
        output::line(output::account(&v))?;
        if let Some(s) = &shards {
            output::line(output::shards(s))?;
        }
    }
    Ok(())
}

/// `account freeze ID` (`freeze = true`) and `account unfreeze ID`.
pub fn freeze(ctx: &Ctx, id: &str, freeze: bool) -> Result<(), Failure> {
    let id = account_id("account", id)?;
    let verb = if freeze { "freeze" } else { "unfreeze" };
    let key = random_key();
    // Idempotent by itself (freezing a frozen account changes nothing): no --key to offer.
    let v: AccountView = ctx
        .client
        .post_empty(&format!("/v1/accounts/{id}/{verb}"), &key)?
        .into_result()?;
    if ctx.json {
        output::json(&v)?;
    } else {
        output::line(output::account(&v))?;
    }
    Ok(())
}

/// `account history ID [--after-seq S] [--limit N] [--all]`.
pub fn history(
    ctx: &Ctx,
    id: &str,
    after_seq: Option<u64>,
    limit: Option<u32>,
    all: bool,
    shard: Option<u16>,
) -> Result<(), Failure> {
    let id = account_id("account", id)?;
    if let Some(l) = limit {
        if l == 0 || l > ENTRIES_PAGE_MAX {
            return Err(CliError::Usage(format!(
                "--limit {l}: a page holds 1 to {ENTRIES_PAGE_MAX} entries"
            ))
            .into());
        }
    }
    let page_url = |after: u64, limit: Option<u32>| {
        let mut url = format!("/v1/accounts/{id}/entries?after_seq={after}");
        if let Some(j) = shard {
            url.push_str(&format!("&shard={j}"));
        }
        if let Some(l) = limit {
            url.push_str(&format!("&limit={l}"));
        }
        url
    };
    let mut after = after_seq.unwrap_or(0);
    if !all {
        let page: EntriesPage = ctx.client.get(&page_url(after, limit))?;
        if ctx.json {
            output::json(&page)?;
        } else {
            output::line(output::entry_header())?;
            for e in &page.entries {
                output::line(output::entry_row(e))?;
            }
            if let Some(next) = page.next_after_seq {
                output::line(format!("(more: --after-seq {next}, or --all)"))?;
            }
        }
        return Ok(());
    }
    // --all streams page by page, so a long journal is never held in memory; the JSON form is
    // written by hand for the same reason, as one EntriesPage with next_after_seq null.
    let limit = Some(limit.unwrap_or(ENTRIES_PAGE_MAX));
    let mut first = true;
    if ctx.json {
        write_raw("{\"entries\":[")?;
    } else {
        output::line(output::entry_header())?;
    }
    loop {
        let page: EntriesPage = ctx.client.get(&page_url(after, limit))?;
        for e in &page.entries {
            if ctx.json {
                let text = serde_json::to_string(e)
                    .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
                write_raw(&format!("{}{text}", if first { "" } else { "," }))?;
                first = false;
            } else {
                output::line(output::entry_row(e))?;
            }
        }
        match page.next_after_seq {
            None => break,
            Some(next) if next <= after => {
                return Err(CliError::BadResponse {
                    url: format!("{}{}", ctx.client.base(), page_url(after, limit)),
                    status: 200,
                    detail: format!(
                        "next_after_seq {next} does not advance past after_seq {after}"
                    ),
                }
                .into())
            }
            Some(next) => after = next,
        }
    }
    if ctx.json {
        output::line("],\"next_after_seq\":null}")?;
    }
    Ok(())
}

pub(crate) fn write_raw(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(CliError::Output)
}

/// `deposit` (`deposit = true`) and `withdraw`: `ID AMOUNT [--key K] [--reference R]`.
pub fn movement(
    ctx: &Ctx,
    deposit: bool,
    id: &str,
    amt: &str,
    key: Option<&str>,
    reference: Option<String>,
) -> Result<(), Failure> {
    let body = Movement {
        account: account_id("account", id)?,
        amount: amount(amt)?,
        reference: self::reference(reference)?,
    };
    let key = key_or_random(key)?;
    let path = if deposit {
        "/v1/deposits"
    } else {
        "/v1/withdrawals"
    };
    let v: MovementView = ctx
        .client
        .post_raw(path, &body, &key, REQUEST_TIMEOUT, ATTEMPTS)
        .and_then(|raw| raw.into_result())
        .map_err(Failure::keyed(&key))?;
    if ctx.json {
        output::json(&v)?;
    } else {
        let verb = if deposit { "deposited" } else { "withdrew" };
        output::line(output::movement(verb, &v))?;
    }
    Ok(())
}

/// Arguments of `transfer`, as typed.
pub struct TransferArgs<'a> {
    /// Debited account.
    pub from: &'a str,
    /// Credited account.
    pub to: &'a str,
    /// Amount, minor units.
    pub amount: &'a str,
    /// Idempotency key.
    pub key: Option<&'a str>,
    /// Free text.
    pub reference: Option<String>,
    /// How long the node may wait for the saga to settle.
    pub wait_ms: Option<u64>,
}

/// `transfer FROM TO AMOUNT [--key K] [--reference R] [--wait-ms MS]`.
pub fn transfer(ctx: &Ctx, a: TransferArgs<'_>) -> Result<(), Failure> {
    let from = account_id("from account", a.from)?;
    let to = account_id("to account", a.to)?;
    if from == to {
        return Err(CliError::Usage(format!(
            "a transfer needs two different accounts, got {from} twice"
        ))
        .into());
    }
    if let Some(w) = a.wait_ms {
        if w > TRANSFER_WAIT_MS_MAX {
            return Err(
                CliError::Usage(format!("--wait-ms {w}: at most {TRANSFER_WAIT_MS_MAX}")).into(),
            );
        }
    }
    let body = TransferRequest {
        from,
        to,
        amount: amount(a.amount)?,
        reference: reference(a.reference)?,
        wait_ms: a.wait_ms,
    };
    let key = key_or_random(a.key)?;
    let wait = Duration::from_millis(a.wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT));
    let raw = ctx
        .client
        .post_raw(
            "/v1/transfers",
            &body,
            &key,
            wait + TRANSFER_TIMEOUT_MARGIN,
            ATTEMPTS,
        )
        .map_err(Failure::keyed(&key))?;
    let view = transfer_outcome(raw).map_err(Failure::keyed(&key))?;
    if ctx.json {
        output::json(&view)?;
    } else {
        output::line(output::transfer(&view))?;
    }
    match view.status {
        TransferStatus::Completed => Ok(()),
        TransferStatus::Pending => Err(Failure {
            error: CliError::Pending {
                kind: "transfer",
                transfer_id: view.id.to_string(),
                wait_ms: wait.as_millis() as u64,
            },
            key: Some(key),
        }),
        TransferStatus::Failed => {
            let code = view.reason.unwrap_or(protocol::ErrorCode::InvalidRequest);
            Err(Failure {
                error: CliError::Api {
                    error: ApiError::new(
                        code,
                        format!("transfer {} failed: {}", view.id, code.default_message()),
                    ),
                },
                key: None,
            })
        }
    }
}

/// A transfer answer: a transfer view (200 completed, 202 pending, 422 failed), or an error.
///
/// A 422 is either a failed transfer's view or a refusal before any saga started (an error
/// body, e.g. `same_account`); both forms are accepted.
pub fn transfer_outcome(raw: crate::client::Raw) -> Result<TransferView, CliError> {
    if raw.is_success() {
        return raw.json();
    }
    if raw.status == 422 {
        if let Ok(v) = serde_json::from_slice::<TransferView>(&raw.body) {
            return Ok(v);
        }
    }
    Err(raw.error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Raw;

    #[test]
    fn amounts_must_be_plain_integers_in_range() {
        // Proves amounts are refused locally unless a plain integer from 1 to 2^53-1.
        assert_eq!(amount("1").unwrap().get(), 1);
        assert_eq!(
            amount("9007199254740991").unwrap().get(),
            protocol::AMOUNT_MAX
        );
        for bad in [
            "0",
            "-5",
            "+5",
            "12.50",
            "1e3",
            "1_000",
            " 7",
            "",
            "9007199254740992",
            "99999999999999999999999",
            "abc",
        ] {
            let e = amount(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_argument", "{bad}");
            assert!(e.to_string().contains("minor units"), "{bad}: {e}");
        }
    }

    #[test]
    fn ids_keys_and_references_are_checked_locally() {
        // Proves ids, currencies, keys and references are refused before any request.
        assert!(account_id("account", "alice:01").is_ok());
        assert!(account_id("account", "a b").is_err());
        assert!(currency("EUR").is_ok());
        assert!(currency("eur").is_err());
        assert_eq!(key_or_random(Some("k-1")).unwrap(), "k-1");
        assert!(key_or_random(Some("has space")).is_err());
        assert!(key_or_random(None).unwrap().starts_with("wctl-"));
        assert!(reference(Some("x".repeat(REFERENCE_LEN_MAX + 1))).is_err());
        assert!(reference(Some("invoice 7".into())).is_ok());
    }

    #[test]
    fn transfer_answers_map_to_views_or_errors() {
        // Proves 200/202 views, a 422 failed view and a 422 error body are each understood.
        let view = r#"{"id":"t1","from":"a","to":"b","amount":5,"status":"failed","reason":"insufficient_funds","created_at":1}"#;
        let raw = |status: u16, body: &str| Raw {
            status,
            body: body.as_bytes().to_vec(),
            url: "http://n/v1/transfers".into(),
        };
        let v = transfer_outcome(raw(422, view)).unwrap();
        assert_eq!(v.status, TransferStatus::Failed);
        let pending = view
            .replace("failed", "pending")
            .replace(r#","reason":"insufficient_funds""#, "");
        assert_eq!(
            transfer_outcome(raw(202, &pending)).unwrap().status,
            TransferStatus::Pending
        );
        let e = transfer_outcome(raw(
            422,
            r#"{"error":{"code":"same_account","message":"no"}}"#,
        ))
        .unwrap_err();
        assert_eq!(e.code(), "same_account");
        let e = transfer_outcome(raw(
            503,
            r#"{"error":{"code":"unavailable","message":"x"}}"#,
        ))
        .unwrap_err();
        assert!(e.outcome_unknown());
    }
}
