//! `[[webhooks]]`: the receivers of the node's events (API.md "Webhooks").
//!
//! Each entry names a URL, the secret its deliveries are signed with, and which events and
//! accounts it wants. Its `id` names its part of the outbox in storage, so it must stay the
//! same across restarts and be the same on every node of the cluster; when absent it is
//! derived from the URL (the same URL gives the same id). Validation here is pure: the URL is
//! checked for form, never resolved.

use crate::auth::check_pattern;
use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Longest webhook id, in characters.
pub const WEBHOOK_ID_LEN_MAX: usize = 32;
/// Longest webhook URL, in characters.
pub const WEBHOOK_URL_LEN_MAX: usize = 2_048;
/// Shortest webhook secret, in characters (a guessable secret makes signatures worthless).
pub const WEBHOOK_SECRET_LEN_MIN: usize = 16;
/// Most `[[webhooks]]` entries of one config.
pub const WEBHOOKS_MAX: usize = 16;
/// Accepted `retry_max_ms`: the longest wait between two attempts of a delivery.
pub const WEBHOOK_RETRY_MAX_MS_RANGE: std::ops::RangeInclusive<u64> = 500..=3_600_000;
/// Default `retry_max_ms` (5 minutes).
pub const WEBHOOK_RETRY_MAX_MS_DEFAULT: u64 = 300_000;

/// The kinds of events a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A journal entry of an account.
    #[serde(rename = "entry")]
    Entry,
    /// A transfer reached `completed` or `failed` (on its sender's account).
    #[serde(rename = "transfer.settled")]
    TransferSettled,
    /// A hold reached `captured`, `voided` or `expired` (on its payer's account).
    #[serde(rename = "hold.settled")]
    HoldSettled,
    /// A disbursement reached `completed` or `failed` (on its payer's account).
    #[serde(rename = "disbursement.settled")]
    DisbursementSettled,
}

impl EventType {
    /// Every event type, in order.
    pub const ALL: [EventType; 4] = [
        EventType::Entry,
        EventType::TransferSettled,
        EventType::HoldSettled,
        EventType::DisbursementSettled,
    ];

    /// The name used in the config and in events' `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Entry => "entry",
            EventType::TransferSettled => "transfer.settled",
            EventType::HoldSettled => "hold.settled",
            EventType::DisbursementSettled => "disbursement.settled",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[webhooks]]` entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names this receiver's outbox (1 to 32 of `A-Z a-z 0-9 _ -`); default derived from
    /// `url`. Changing it leaves the events waiting under the old id undelivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where events are `POST`ed: `http://` or `https://`.
    pub url: String,
    /// Signs every delivery (`Wallet-Signature`); at least 16 characters.
    pub secret: String,
    /// The event types it receives; absent = all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventType>>,
    /// The accounts whose events it receives: exact ids, or prefixes ending in `*`; absent =
    /// every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    /// The longest wait between two attempts, in ms: failed deliveries are retried after
    /// 500 ms, then twice as long each time up to this (500 to 3600000; default 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max_ms: Option<u64>,
}

// The secret never appears in logs or debug output.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("accounts", &self.accounts)
            .field("retry_max_ms", &self.retry_max_ms)
            .finish()
    }
}

impl WebhookConfig {
    /// The id naming this receiver's outbox: the configured one, else `h` and 16 hex digits
    /// of a 64-bit FNV-1a hash of the URL.
    pub fn outbox_id(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => {
                let hash = self.url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
                });
                format!("h{hash:016x}")
            }
        }
    }

    /// The longest wait between two attempts, in ms.
    pub fn retry_max_ms(&self) -> u64 {
        self.retry_max_ms.unwrap_or(WEBHOOK_RETRY_MAX_MS_DEFAULT)
    }

    /// Whether it receives events of this type.
    pub fn wants(&self, ty: EventType) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&ty))
    }

    /// Checks this entry alone; `Err` holds the field's name and the sentence.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(id) = &self.id {
            if id.is_empty()
                || id.len() > WEBHOOK_ID_LEN_MAX
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            {
                return Err((
                    "id",
                    format!("{id:?}: an id is 1 to {WEBHOOK_ID_LEN_MAX} of A-Z a-z 0-9 _ -"),
                ));
            }
        }
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"));
        match rest {
            _ if self.url.len() > WEBHOOK_URL_LEN_MAX => {
                return Err((
                    "url",
                    format!("is longer than {WEBHOOK_URL_LEN_MAX} characters"),
                ))
            }
            Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            }
            _ => {
                return Err((
                    "url",
                    format!("{:?}: must be an http:// or https:// URL", self.url),
                ))
            }
        }
        if self.secret.chars().count() < WEBHOOK_SECRET_LEN_MIN {
            return Err((
                "secret",
                format!("must be at least {WEBHOOK_SECRET_LEN_MIN} characters: a short secret makes signatures guessable"),
            ));
        }
        if !WEBHOOK_RETRY_MAX_MS_RANGE.contains(&self.retry_max_ms()) {
            return Err((
                "retry_max_ms",
                format!(
                    "must be from {} to {}, got {}",
                    WEBHOOK_RETRY_MAX_MS_RANGE.start(),
                    WEBHOOK_RETRY_MAX_MS_RANGE.end(),
                    self.retry_max_ms()
                ),
            ));
        }
        if self.events.as_ref().is_some_and(Vec::is_empty) {
            return Err((
                "events",
                "must name at least one of entry, transfer.settled, hold.settled, disbursement.settled; omit it for all".into(),
            ));
        }
        if let Some(patterns) = &self.accounts {
            if patterns.is_empty() {
                return Err((
                    "accounts",
                    "must name at least one pattern; omit it for every account".into(),
                ));
            }
            for p in patterns {
                check_pattern(p).map_err(|m| ("accounts", m))?;
            }
        }
        Ok(())
    }
}

/// Checks every entry and that their outbox ids are unique; the error names the field.
pub(crate) fn validate(hooks: &[WebhookConfig]) -> Result<(), ConfigError> {
    if hooks.len() > WEBHOOKS_MAX {
        return Err(ConfigError::invalid(
            "webhooks",
            format!(
                "at most {WEBHOOKS_MAX} entries, got {}: every entry adds a write to each change",
                hooks.len()
            ),
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, h) in hooks.iter().enumerate() {
        let field = |name: &str| format!("webhooks[{i}].{name}");
        h.validate()
            .map_err(|(name, m)| ConfigError::invalid(field(name), m))?;
        if !ids.insert(h.outbox_id()) {
            return Err(ConfigError::invalid(
                field(if h.id.is_some() { "id" } else { "url" }),
                format!(
                    "names the same outbox ({}) as an earlier entry; give each entry its own id",
                    h.outbox_id()
                ),
            ));
        }
    }
    Ok(())
}
