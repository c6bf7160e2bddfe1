//! `[[webhooks]]`: parsing, defaults and every refusal.

use crate::{account_matches, Config, ConfigError, EventType};

fn parse(toml: &str) -> Result<Config, ConfigError> {
    let c = Config::from_toml_str(toml)?;
    c.validate()?;
    Ok(c)
}

fn refused_field(toml: &str) -> String {
    match parse(toml) {
        Err(ConfigError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn the_example_of_the_api_parses_with_its_defaults() {
    let c = parse(
        r#"
[[webhooks]]
url = "https://example.com/wallet-events"
secret = "whsec_0123456789abcdef"
events = ["entry", "transfer.settled"]
accounts = ["shop-*"]

[[webhooks]]
id = "ledger-mirror"
url = "http://127.0.0.1:9000/events"
secret = "another-secret-of-length"
"#,
    )
    .unwrap();
    assert_eq!(c.webhooks.len(), 2);
    let (a, b) = (&c.webhooks[0], &c.webhooks[1]);
    assert!(a.wants(EventType::Entry) && a.wants(EventType::TransferSettled));
    assert!(!a.wants(EventType::HoldSettled));
    assert!(EventType::ALL.iter().all(|t| b.wants(*t)), "default: all");
    assert_eq!(b.outbox_id(), "ledger-mirror");
    // The derived id is stable (it names stored records) and differs between URLs.
    assert_eq!(a.outbox_id(), a.clone().outbox_id());
    assert!(a.outbox_id().starts_with('h') && a.outbox_id().len() == 17);
    let mut other = a.clone();
    other.url.push('2');
    assert_ne!(other.outbox_id(), a.outbox_id());
    assert_eq!(c.limits.webhook_outbox_max, 100_000);
    assert_eq!(a.retry_max_ms(), 300_000);
    // The secret stays out of debug output.
    assert!(!format!("{a:?}").contains("whsec_"));
    assert!(Config::default().webhooks.is_empty());
}

#[test]
fn every_bad_entry_is_refused_naming_its_field() {
    let hook = |fields: &str| format!("[[webhooks]]\n{fields}\n");
    let ok_secret = "secret = \"0123456789abcdef\"";
    assert_eq!(
        refused_field(&hook(&format!("url = \"ftp://x/y\"\n{ok_secret}"))),
        "webhooks[0].url"
    );
    assert_eq!(
        refused_field(&hook(&format!("url = \"http://\"\n{ok_secret}"))),
        "webhooks[0].url"
    );
    assert_eq!(
        refused_field(&hook("url = \"http://h/x\"\nsecret = \"short\"")),
        "webhooks[0].secret"
    );
    assert_eq!(
        refused_field(&hook(&format!(
            "url = \"http://h/x\"\n{ok_secret}\nevents = []"
        ))),
        "webhooks[0].events"
    );
    assert_eq!(
        refused_field(&hook(&format!(
            "url = \"http://h/x\"\n{ok_secret}\naccounts = [\"a b\"]"
        ))),
        "webhooks[0].accounts"
    );
    assert_eq!(
        refused_field(&hook(&format!(
            "id = \"no spaces\"\nurl = \"http://h/x\"\n{ok_secret}"
        ))),
        "webhooks[0].id"
    );
    // Two entries with one URL would share an outbox.
    let twice = hook(&format!("url = \"http://h/x\"\n{ok_secret}")).repeat(2);
    assert_eq!(refused_field(&twice), "webhooks[1].url");
    // An unknown event type or field is a parse error naming it.
    let err = parse(&hook(&format!(
        "url = \"http://h/x\"\n{ok_secret}\nevents = [\"entries\"]"
    )))
    .unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert_eq!(
        refused_field(&hook(&format!(
            "url = \"http://h/x\"\n{ok_secret}\nretry_max_ms = 100"
        ))),
        "webhooks[0].retry_max_ms"
    );
    assert_eq!(
        refused_field("[limits]\nwebhook_outbox_max = 0\n"),
        "limits.webhook_outbox_max"
    );
}

#[test]
fn account_patterns_match_ids_and_prefixes() {
    assert!(account_matches("shop-1", "shop-1"));
    assert!(!account_matches("shop-1", "shop-10"));
    assert!(account_matches("shop-*", "shop-10"));
    assert!(account_matches("*", "anything"));
    assert!(!account_matches("shop-*", "shoe-1"));
}
