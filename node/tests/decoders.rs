//! Bad input never breaks the node: random JSON and random field values thrown at every
//! request decoder get a documented status and error body, and the node keeps serving.

mod common;
use common::{agent, TestNode};
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("EUR"),
            Just("eur"),
            Just(""),
            Just("x y")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("currency".to_owned()),
                    Just("account".to_owned()),
                    Just("amount".to_owned()),
                    Just("from".to_owned()),
                    Just("to".to_owned()),
                    Just("reference".to_owned()),
                    Just("wait_ms".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn route() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("/v1/accounts"),
        Just("/v1/deposits"),
        Just("/v1/withdrawals"),
        Just("/v1/transfers"),
        Just("/v1/accounts/a/freeze"),
    ]
}

fn raw_body() -> impl Strategy<Value = String> {
    prop_oneof![
        any_json().prop_map(|v| v.to_string()),
        "[ -~]{0,40}",
        any_json().prop_map(|v| {
            let s = v.to_string();
            s[..s.len() / 2].to_owned()
        }),
    ]
}

#[test]
fn decoders_random_bodies_get_documented_answers() {
    // Proves every decoder answers random input with an API.md status and error body.
    let n = TestNode::start();
    let a = agent();
    a.post(format!("{}/v1/accounts", n.url))
        .header("content-type", "application/json")
        .send(r#"{"id":"a","currency":"EUR"}"#)
        .unwrap();
    a.post(format!("{}/v1/accounts", n.url))
        .header("content-type", "application/json")
        .send(r#"{"id":"b","currency":"EUR"}"#)
        .unwrap();
    let config = ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(path in route(), body in raw_body(), key in prop::option::of("[ -~]{0,8}"))| {
        let mut req = a.post(format!("{}{path}", n.url)).header("content-type", "application/json");
        if let Some(k) = &key {
            req = req.header("idempotency-key", k.as_str());
        }
        let mut resp = req.send(body.as_str()).expect("the node answers");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        prop_assert!([200, 201, 202, 400, 404, 409, 422].contains(&status), "{path} {body} -> {status} {text}");
        let v: Value = serde_json::from_str(&text).expect("a JSON body");
        if status >= 400 {
            let code = v["error"]["code"].as_str().or(v["error"]["code"].as_str());
            prop_assert!(code.is_some(), "error without code: {text}");
            prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    });
    let mut ok = a.get(format!("{}/healthz", n.url)).call().unwrap();
    assert_eq!(ok.body_mut().read_to_string().unwrap(), "ok\n");
    // Money stayed consistent through the noise.
    let mut st = a.get(format!("{}/v1/accounts/a", n.url)).call().unwrap();
    let v: Value = serde_json::from_str(&st.body_mut().read_to_string().unwrap()).unwrap();
    assert!(v["held"].as_u64().unwrap() <= v["balance"].as_u64().unwrap());
}

#[test]
fn decoders_random_query_and_path_values() {
    // Proves random path ids and query values get 200/400/404 with an error body, never a crash.
    let n = TestNode::start();
    let a = agent();
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(id in "[ -~]{0,70}", q in "[ -~]{0,20}")| {
        let id: String = id.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
        for url in [format!("{}/v1/accounts/{id}", n.url), format!("{}/v1/accounts/{id}/entries?limit={q}", n.url), format!("{}/v1/transfers/{id}", n.url)] {
            let mut resp = match a.get(&url).call() { Ok(r) => r, Err(_) => continue };
            let status = resp.status().as_u16();
            prop_assert!([200, 400, 404].contains(&status), "{url} -> {status}");
            let text = resp.body_mut().read_to_string().unwrap();
            if status != 200 {
                let v: Value = serde_json::from_str(&text).expect("an error body");
                prop_assert!(v["error"]["code"].is_string());
            }
        }
    });
}
