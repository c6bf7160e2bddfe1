use super::*;

/// The example of API.md "Operations", verbatim.
const API_MD_EXAMPLE: &str = r#"
[node]
id = "n1"                          # unique in the cluster
listen = "127.0.0.1:8080"          # HTTP and WebSocket
cluster_listen = "127.0.0.1:7946"  # node to node

[cluster]
cookie = "change-me"               # shared secret of the cluster's nodes
peers = ["127.0.0.1:7947"]         # any live members to join through
vnodes = 256
heartbeat_ms = 500                 # liveness probes between members
failure_timeout_ms = 3000          # a member silent this long leaves the ring (its accounts
                                   # move; fencing stops it if it wakes up)

[storage]
backend = "embedded"               # embedded | memory | fdb
path = "./data"                    # embedded
# cluster_file = "/etc/foundationdb/fdb.cluster"   # fdb
# prefix = "wallet"                                  # fdb: key prefix of this cluster

[actors]
idle_passivate_ms = 60000
active_max = 1000000
"#;

fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

/// Parses `toml`, which must parse, and returns the validation error, which must exist.
fn invalid(toml: &str) -> ConfigError {
    let c = Config::from_toml_str(toml).expect("parses");
    c.validate().expect_err("must be refused")
}

fn assert_invalid(toml: &str, field: &str, words: &str) {
    let e = invalid(toml);
    match &e {
        ConfigError::Invalid { field: f, message } => {
            assert_eq!(f, field, "{e}");
            assert!(message.contains(words), "{e}");
        }
        other => panic!("expected Invalid for {field}, got {other:?}"),
    }
    let shown = e.to_string();
    assert!(shown.contains(field), "{shown}");
}

#[test]
fn config_defaults_when_file_is_empty() {
    // Proves an empty file gives every documented default and that the defaults validate.
    let c = Config::from_toml_str("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.node.id, "n1");
    assert_eq!(c.node.listen, "127.0.0.1:8080");
    assert_eq!(c.node.cluster_listen, "127.0.0.1:7946");
    assert_eq!(c.node.shutdown_grace_ms, 10_000);
    assert_eq!(c.cluster.cookie, "change-me");
    assert!(c.cluster.peers.is_empty());
    assert_eq!(c.cluster.vnodes, 256);
    assert_eq!(c.cluster.heartbeat_ms, 500);
    assert_eq!(c.cluster.failure_timeout_ms, 3_000);
    assert_eq!(c.storage.backend, Backend::Embedded);
    assert_eq!(c.storage.path, PathBuf::from("./data"));
    assert_eq!(c.storage.cluster_file, None);
    assert_eq!(c.storage.prefix, "wallet");
    assert_eq!(c.storage.sync, SyncMode::Full);
    assert_eq!(c.actors.idle_passivate_ms, 60_000);
    assert_eq!(c.actors.active_max, 1_000_000);
    assert_eq!(c.saga.credit_timeout_ms, 2_000);
    assert_eq!(c.limits.http_inflight_max, 4_096);
    assert_eq!(c.limits.actor_queue_max, 10_000);
    assert_eq!(c.limits.ws_connections_max, 10_000);
    assert_eq!(c.limits.ws_subscriptions_max, 1_000);
    c.validate().unwrap();
    assert_eq!(c.node.listen_addr().unwrap().port(), 8080);
}

#[test]
fn config_limits_of_api_md_parse_and_each_must_be_at_least_one() {
    // Proves API.md's [limits] example parses to its values, and a zero limit is refused by name.
    let c = Config::from_toml_str(
        "[limits]\nhttp_inflight_max = 4096\nactor_queue_max = 10000\nws_connections_max = 10000\nws_subscriptions_max = 1000\n",
    )
    .unwrap();
    assert_eq!(c.limits, LimitsConfig::default());
    c.validate().unwrap();
    for field in [
        "http_inflight_max",
        "actor_queue_max",
        "ws_connections_max",
        "ws_subscriptions_max",
    ] {
        assert_invalid(
            &format!("[limits]\n{field} = 0"),
            &format!("limits.{field}"),
            "got 0",
        );
    }
}

#[test]
fn config_partial_section_keeps_other_defaults() {
    // Proves a section with one field set keeps the defaults of its other fields and sections.
    let c = Config::from_toml_str("[node]\nid = \"n7\"\n[storage]\nsync = \"normal\"\n").unwrap();
    assert_eq!(c.node.id, "n7");
    assert_eq!(c.node.listen, "127.0.0.1:8080");
    assert_eq!(c.storage.sync, SyncMode::Normal);
    assert_eq!(c.cluster, ClusterConfig::default());
}

#[test]
fn config_api_md_example_parses() {
    // Proves the example TOML of API.md parses and validates to the values it spells out.
    let c = Config::from_toml_str(API_MD_EXAMPLE).unwrap();
    c.validate().unwrap();
    assert_eq!(c.cluster.peers, vec!["127.0.0.1:7947".to_string()]);
    assert_eq!(
        c.cluster.peer_addrs().unwrap(),
        vec!["127.0.0.1:7947".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.storage.backend, Backend::Embedded);
    // Everything not in the example keeps its default.
    assert_eq!(c.saga, SagaConfig::default());
    assert_eq!(c.storage.sync, SyncMode::Full);
}

#[test]
fn config_extensions_and_fdb_parse() {
    // Proves the extension fields and an fdb storage section parse and validate.
    let c = Config::from_toml_str(
        "[node]\nshutdown_grace_ms = 500\n[saga]\ncredit_timeout_ms = 50\n\
         [storage]\nbackend = \"fdb\"\ncluster_file = \"/etc/foundationdb/fdb.cluster\"\nprefix = \"w2\"\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.node.shutdown_grace_ms, 500);
    assert_eq!(c.saga.credit_timeout_ms, 50);
    assert_eq!(c.storage.backend, Backend::Fdb);
    assert_eq!(c.storage.prefix, "w2");
}

#[test]
fn config_round_trips_through_toml() {
    // Proves a config serializes to TOML that parses back to the same value (for --print-config).
    let mut c = Config::from_toml_str(API_MD_EXAMPLE).unwrap();
    c.storage.cluster_file = Some("/x/fdb.cluster".into());
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::from_toml_str(&text).unwrap(), c);
}

#[test]
fn config_node_id_rules() {
    // Proves node.id is refused when empty, longer than 64, or with a character outside A-Za-z0-9_-.
    assert_invalid("[node]\nid = \"\"", "node.id", "1 to 64");
    assert_invalid(
        &format!("[node]\nid = \"{}\"", "a".repeat(65)),
        "node.id",
        "got 65",
    );
    assert_invalid("[node]\nid = \"n:1\"", "node.id", "':'");
    assert_invalid("[node]\nid = \"n 1\"", "node.id", "' '");
    let ok = Config::from_toml_str(&format!("[node]\nid = \"A-z_0.{}\"", "a".repeat(58))).unwrap();
    ok.validate().unwrap();
}

#[test]
fn config_listen_addresses_rules() {
    // Proves listen and cluster_listen must be IP:port and must not collide.
    assert_invalid(
        "[node]\nlisten = \"localhost:8080\"",
        "node.listen",
        "IP:port",
    );
    assert_invalid("[node]\nlisten = \"127.0.0.1\"", "node.listen", "IP:port");
    assert_invalid(
        "[node]\ncluster_listen = \"127.0.0.1:99999\"",
        "node.cluster_listen",
        "IP:port",
    );
    assert_invalid(
        "[node]\nlisten = \"127.0.0.1:9000\"\ncluster_listen = \"127.0.0.1:9000\"",
        "node.cluster_listen",
        "collides",
    );
    assert_invalid(
        "[node]\nlisten = \"0.0.0.0:9000\"\ncluster_listen = \"127.0.0.1:9000\"",
        "node.cluster_listen",
        "collides",
    );
    let ipv6 = Config::from_toml_str("[node]\nlisten = \"[::1]:8080\"").unwrap();
    ipv6.validate().unwrap();
}

#[test]
fn config_cluster_rules() {
    // Proves an empty cookie, vnodes outside 1..=4096 and a peer that is not IP:port are refused.
    assert_invalid(
        "[cluster]\ncookie = \"\"",
        "cluster.cookie",
        "must not be empty",
    );
    assert_invalid("[cluster]\nvnodes = 0", "cluster.vnodes", "got 0");
    assert_invalid("[cluster]\nvnodes = 4097", "cluster.vnodes", "got 4097");
    assert_invalid(
        "[cluster]\npeers = [\"127.0.0.1:7947\", \"node2:7946\"]",
        "cluster.peers[1]",
        "\"node2:7946\"",
    );
    let edge = Config::from_toml_str("[cluster]\nvnodes = 4096").unwrap();
    edge.validate().unwrap();
}

#[test]
fn config_failure_detection_rules() {
    // Proves heartbeats outside 10..=60000 ms are refused, and a failure timeout shorter than
    // three heartbeats (a late or lost probe would drop a member) or than 1000 ms is refused;
    // the edges pass.
    assert_invalid(
        "[cluster]\nheartbeat_ms = 9",
        "cluster.heartbeat_ms",
        "got 9",
    );
    assert_invalid(
        "[cluster]\nheartbeat_ms = 60001\nfailure_timeout_ms = 200000",
        "cluster.heartbeat_ms",
        "got 60001",
    );
    assert_invalid(
        "[cluster]\nheartbeat_ms = 500\nfailure_timeout_ms = 1499",
        "cluster.failure_timeout_ms",
        "at least 1500 ms",
    );
    assert_invalid(
        "[cluster]\nheartbeat_ms = 100\nfailure_timeout_ms = 999",
        "cluster.failure_timeout_ms",
        "at least 1000 ms",
    );
    for edge in [
        "[cluster]\nheartbeat_ms = 500\nfailure_timeout_ms = 1500",
        "[cluster]\nheartbeat_ms = 10\nfailure_timeout_ms = 1000",
    ] {
        Config::from_toml_str(edge).unwrap().validate().unwrap();
    }
}

#[test]
fn config_storage_rules() {
    // Proves fdb needs a (non-empty) cluster_file and embedded needs a non-empty path; memory needs neither.
    assert_invalid(
        "[storage]\nbackend = \"fdb\"",
        "storage.cluster_file",
        "required",
    );
    assert_invalid(
        "[storage]\nbackend = \"fdb\"\ncluster_file = \"\"",
        "storage.cluster_file",
        "must not be empty",
    );
    assert_invalid(
        "[storage]\npath = \"\"",
        "storage.path",
        "must not be empty",
    );
    let mem = Config::from_toml_str("[storage]\nbackend = \"memory\"\npath = \"\"").unwrap();
    mem.validate().unwrap();
}

#[test]
fn config_actor_and_saga_rules() {
    // Proves idle_passivate_ms < 100, active_max = 0 and credit_timeout_ms outside 50..=600000 are refused.
    assert_invalid(
        "[actors]\nidle_passivate_ms = 99",
        "actors.idle_passivate_ms",
        "got 99",
    );
    assert_invalid("[actors]\nactive_max = 0", "actors.active_max", "got 0");
    assert_invalid(
        "[saga]\ncredit_timeout_ms = 49",
        "saga.credit_timeout_ms",
        "got 49",
    );
    assert_invalid(
        "[saga]\ncredit_timeout_ms = 600001",
        "saga.credit_timeout_ms",
        "got 600001",
    );
    let edge = Config::from_toml_str(
        "[actors]\nidle_passivate_ms = 100\nactive_max = 1\n[saga]\ncredit_timeout_ms = 600000",
    )
    .unwrap();
    edge.validate().unwrap();
}

#[test]
fn config_unknown_field_rejected_naming_it() {
    // Proves a typo in a field or section is a parse error naming it and its line, not a silent default.
    let e = Config::from_toml_str("[node]\nid = \"n1\"\nlisen = \"127.0.0.1:1\"\n").unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert!(shown.contains("lisen"), "{shown}");
    assert!(shown.contains("line 3"), "{shown}");
    let e = Config::from_toml_str("[stroage]\npath = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("stroage"), "{e}");
    let e = Config::from_toml_str("[storage]\nbackend = \"sqlite\"\n").unwrap_err();
    assert!(e.to_string().contains("sqlite"), "{e}");
    let e = Config::from_toml_str("[cluster]\nvnodes = -1\n").unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
}

#[test]
fn config_env_overrides_applied() {
    // Proves each WALLET_* variable overrides its field, and other variables are ignored.
    let mut c = Config::from_toml_str(API_MD_EXAMPLE).unwrap();
    c.apply_env(vars(&[
        ("WALLET_NODE_ID", "n2"),
        ("WALLET_LISTEN", "0.0.0.0:9080"),
        ("WALLET_CLUSTER_LISTEN", "10.0.0.2:9946"),
        ("WALLET_COOKIE", "s3cret"),
        ("WALLET_PEERS", " 10.0.0.1:7946, ,10.0.0.3:7946 "),
        ("WALLET_STORAGE_BACKEND", "fdb"),
        ("WALLET_DATA", "/var/lib/wallet"),
        ("WALLET_FDB_CLUSTER_FILE", "/etc/fdb.cluster"),
        ("WALLET_FDB_PREFIX", "ledger-b"),
        ("HOME", "/root"),
        ("WALLET_SOMETHING_ELSE", "ignored"),
    ]))
    .unwrap();
    assert_eq!(c.node.id, "n2");
    assert_eq!(c.node.listen, "0.0.0.0:9080");
    assert_eq!(c.node.cluster_listen, "10.0.0.2:9946");
    assert_eq!(c.cluster.cookie, "s3cret");
    assert_eq!(c.cluster.peers, vec!["10.0.0.1:7946", "10.0.0.3:7946"]);
    assert_eq!(c.storage.backend, Backend::Fdb);
    assert_eq!(c.storage.path, PathBuf::from("/var/lib/wallet"));
    assert_eq!(
        c.storage.cluster_file,
        Some(PathBuf::from("/etc/fdb.cluster"))
    );
    assert_eq!(c.storage.prefix, "ledger-b");
    c.validate().unwrap();
    // An empty WALLET_PEERS clears the list (a single node, no join).
    c.apply_env(vars(&[("WALLET_PEERS", "")])).unwrap();
    assert!(c.cluster.peers.is_empty());
}

#[test]
fn config_bad_env_value_rejected_naming_variable() {
    // Proves a bad WALLET_* value is refused with an Env error naming the variable.
    for (var, value) in [
        ("WALLET_NODE_ID", "bad id"),
        ("WALLET_LISTEN", "localhost:80"),
        ("WALLET_CLUSTER_LISTEN", "7946"),
        ("WALLET_COOKIE", ""),
        ("WALLET_PEERS", "10.0.0.1:7946,nope"),
        ("WALLET_STORAGE_BACKEND", "Embedded"),
        ("WALLET_DATA", ""),
        ("WALLET_FDB_CLUSTER_FILE", ""),
    ] {
        let mut c = Config::default();
        let e = c.apply_env(vars(&[(var, value)])).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Env { var: v, .. } if v == var),
            "{var}: {e:?}"
        );
        assert!(e.to_string().contains(var), "{e}");
    }
}

#[test]
fn config_load_missing_file_is_io_error_naming_path() {
    // Proves load of a missing file gives an Io error whose message names the path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let e = load(&path).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Io { path: p, .. } if p == &path),
        "{e:?}"
    );
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn config_load_reads_validates_and_names_file() {
    // Proves load parses and validates a real file, and a parse or validation error comes back.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, API_MD_EXAMPLE).unwrap();
    // The test process may carry WALLET_* variables; only assert what they cannot override.
    let c = load(&good).unwrap();
    assert_eq!(c.cluster.vnodes, 256);
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[node\n").unwrap();
    let e = load(&broken).unwrap_err();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert!(e.to_string().contains("broken.toml"), "{e}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[cluster]\nvnodes = 0\n").unwrap();
    let e = load(&bad).unwrap_err();
    assert!(e.to_string().contains("cluster.vnodes"), "{e}");
}

#[test]
fn config_refuses_a_cluster_that_cannot_share_its_store() {
    // Proves a config whose nodes could not see one ledger is refused with a sentence saying
    // why: memory storage with peers, embedded storage with a peer or a listener on another
    // host; and that loopback peers on embedded storage, or any peers on fdb, are accepted.
    assert_invalid(
        "[cluster]\npeers = [\"127.0.0.1:7947\"]\n[storage]\nbackend = \"memory\"",
        "storage.backend",
        "inside one process",
    );
    assert_invalid(
        "[cluster]\npeers = [\"127.0.0.1:7947\", \"10.0.0.2:7946\"]",
        "cluster.peers[1]",
        "only processes on this machine can share",
    );
    assert_invalid(
        "[node]\ncluster_listen = \"0.0.0.0:7946\"\n[cluster]\npeers = [\"127.0.0.1:7947\"]",
        "node.cluster_listen",
        "other machines",
    );
    let ok = Config::from_toml_str("[cluster]\npeers = [\"127.0.0.1:7947\", \"127.0.0.1:7948\"]")
        .unwrap();
    ok.validate().unwrap();
    let fdb = Config::from_toml_str(
        "[node]\ncluster_listen = \"0.0.0.0:7946\"\n[cluster]\npeers = [\"10.0.0.2:7946\"]\n[storage]\nbackend = \"fdb\"\ncluster_file = \"/etc/foundationdb/fdb.cluster\"",
    )
    .unwrap();
    fdb.validate().unwrap();
}

#[test]
fn config_readme_cluster_examples_validate() {
    // Proves the three configs of the README's local cluster parse and validate, and that they
    // form one cluster: distinct ids and addresses, one store, each listing the other two.
    let configs = one_cluster(&[
        include_str!("../../examples/cluster/n1.toml"),
        include_str!("../../examples/cluster/n2.toml"),
        include_str!("../../examples/cluster/n3.toml"),
    ]);
    assert!(configs
        .iter()
        .all(|c| c.storage.backend == Backend::Embedded));
}

#[test]
fn config_readme_fdb_examples_validate() {
    // Proves the three configs of the README's FoundationDB cluster parse and validate, and
    // form one cluster on one FoundationDB cluster file and prefix, on non-loopback addresses.
    let configs = one_cluster(&[
        include_str!("../../examples/fdb/n1.toml"),
        include_str!("../../examples/fdb/n2.toml"),
        include_str!("../../examples/fdb/n3.toml"),
    ]);
    for c in &configs {
        assert_eq!(c.storage.backend, Backend::Fdb);
        assert_eq!(c.storage.cluster_file, configs[0].storage.cluster_file);
        assert_eq!(c.storage.prefix, configs[0].storage.prefix);
        assert!(!c.node.cluster_listen.starts_with("127."));
        // Another machine reaches the HTTP address the node advertises.
        assert!(!c.node.listen.starts_with("127.") && !c.node.listen.starts_with("0.0.0.0"));
    }
}

/// Parses and validates `tomls` and checks they form one cluster: distinct ids, one store path
/// and cookie, each node listing the other nodes' node-to-node addresses as peers.
fn one_cluster(tomls: &[&str]) -> Vec<Config> {
    let configs: Vec<Config> = tomls
        .iter()
        .map(|t| Config::from_toml_str(t).unwrap())
        .collect();
    for c in &configs {
        c.validate().unwrap();
        assert_eq!(c.storage.path, configs[0].storage.path);
        assert_eq!(c.cluster.cookie, configs[0].cluster.cookie);
        let others: Vec<&String> = configs
            .iter()
            .filter(|o| o.node.id != c.node.id)
            .map(|o| &o.node.cluster_listen)
            .collect();
        let mut peers: Vec<&String> = c.cluster.peers.iter().collect();
        peers.sort();
        assert_eq!(peers, others);
    }
    let ids: std::collections::BTreeSet<&str> =
        configs.iter().map(|c| c.node.id.as_str()).collect();
    assert_eq!(ids.len(), tomls.len());
    configs
}

#[test]
fn config_tls_cert_and_key_go_together() {
    // Proves node.tls_cert without node.tls_key (and the reverse) is refused by name, and both
    // together validate.
    assert_invalid(
        "[node]\ntls_cert = \"/c.pem\"",
        "node.tls_key",
        "go together",
    );
    assert_invalid(
        "[node]\ntls_key = \"/k.pem\"",
        "node.tls_cert",
        "go together",
    );
    let both =
        Config::from_toml_str("[node]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"").unwrap();
    both.validate().unwrap();
    assert_eq!(both.node.tls_cert, Some(PathBuf::from("/c.pem")));
}

/// A token entry with the given scopes and extra lines, under a valid digest.
fn token_toml(id: &str, digest_byte: char, scopes: &str, extra: &str) -> String {
    format!(
        "[[auth.tokens]]\nid = \"{id}\"\nsha256 = \"{}\"\nscopes = {scopes}\n{extra}\n",
        digest_byte.to_string().repeat(64)
    )
}

#[test]
fn config_auth_of_api_md_parses_and_turns_auth_on() {
    // Proves the API.md token example (with a full digest) parses, and that `[auth]` present,
    // even empty, turns authentication on while its absence leaves it off.
    let c = Config::from_toml_str(&token_toml(
        "shop-backend",
        'a',
        r#"["read", "write"]"#,
        r#"accounts = ["shop-*"]"#,
    ))
    .unwrap();
    c.validate().unwrap();
    let auth = c.auth.as_ref().expect("auth on");
    assert_eq!(auth.tokens[0].scopes, vec![Scope::Read, Scope::Write]);
    assert_eq!(auth.tokens[0].accounts, Some(vec!["shop-*".to_owned()]));
    let empty = Config::from_toml_str("[auth]\n").unwrap();
    assert_eq!(empty.auth, Some(AuthConfig::default()));
    empty.validate().unwrap();
    assert_eq!(Config::from_toml_str("").unwrap().auth, None);
}

#[test]
fn config_auth_rules() {
    // Proves every bad token entry is refused naming its field: digest length and digits,
    // empty scopes, empty or malformed patterns, admin limited to accounts, duplicates.
    let scopes = r#"["read"]"#;
    let bad_digest = "[[auth.tokens]]\nid = \"t\"\nsha256 = \"abc\"\nscopes = [\"read\"]\n";
    assert_invalid(bad_digest, "auth.tokens[0].sha256", "64 hex digits");
    let not_hex = format!(
        "[[auth.tokens]]\nid = \"t\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
        "g".repeat(64)
    );
    assert_invalid(&not_hex, "auth.tokens[0].sha256", "64 hex digits");
    assert_invalid(
        &token_toml("t", 'a', "[]", ""),
        "auth.tokens[0].scopes",
        "at least one",
    );
    assert_invalid(
        &token_toml("", 'a', scopes, ""),
        "auth.tokens[0].id",
        "1 to 64",
    );
    assert_invalid(
        &token_toml("a b", 'a', scopes, ""),
        "auth.tokens[0].id",
        "' '",
    );
    assert_invalid(
        &token_toml("t", 'a', scopes, "accounts = []"),
        "auth.tokens[0].accounts",
        "omit it",
    );
    for bad in ["*shop", "sh*op", "bad id", "", "a**"] {
        assert_invalid(
            &token_toml("t", 'a', scopes, &format!("accounts = [{bad:?}]")),
            "auth.tokens[0].accounts",
            "pattern",
        );
    }
    assert_invalid(
        &token_toml("t", 'a', r#"["admin"]"#, r#"accounts = ["a"]"#),
        "auth.tokens[0].accounts",
        "admin",
    );
    let twice_id = token_toml("t", 'a', scopes, "") + &token_toml("t", 'b', scopes, "");
    assert_invalid(&twice_id, "auth.tokens[1].id", "unique");
    let twice_digest = token_toml("t", 'a', scopes, "") + &token_toml("u", 'A', scopes, "");
    assert_invalid(&twice_digest, "auth.tokens[1].sha256", "earlier token");
    // Good patterns: exact ids, prefixes, and `*` alone (every account).
    let good = token_toml(
        "t",
        'a',
        scopes,
        r#"accounts = ["alice", "shop-*", "*", "a:b.c_d-e"]"#,
    );
    Config::from_toml_str(&good).unwrap().validate().unwrap();
}

#[test]
fn config_auth_unknown_scope_or_field_is_a_parse_error_naming_it() {
    // Proves an unknown scope or a misspelt token field stops the config at parse time.
    let e = Config::from_toml_str(&token_toml("t", 'a', r#"["reed"]"#, "")).unwrap_err();
    assert!(e.to_string().contains("reed"), "{e}");
    let e = Config::from_toml_str(&token_toml("t", 'a', r#"["read"]"#, "acounts = [\"a\"]"))
        .unwrap_err();
    assert!(e.to_string().contains("acounts"), "{e}");
}

#[test]
fn config_token_entry_round_trips_through_toml() {
    // Proves `TokenConfig::to_toml` (what `walletctl token new` prints) parses back as a
    // config holding the same token.
    let t = TokenConfig {
        id: "shop".into(),
        sha256: "0f".repeat(32),
        scopes: vec![Scope::Read, Scope::Write],
        accounts: Some(vec!["shop-*".into()]),
    };
    let c = Config::from_toml_str(&t.to_toml()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.auth.unwrap().tokens, vec![t]);
}

#[test]
fn config_admin_listen_rules() {
    // Proves node.admin_listen must be an IP:port distinct from the other listeners (port 0,
    // any free port, never collides).
    let c = Config::from_toml_str("[node]\nadmin_listen = \"127.0.0.1:9090\"\n").unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.node.admin_listen_addr().unwrap(),
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_invalid(
        "[node]\nadmin_listen = \"nowhere\"\n",
        "node.admin_listen",
        "IP:port",
    );
    assert_invalid(
        "[node]\nadmin_listen = \"127.0.0.1:8080\"\n",
        "node.admin_listen",
        "node.listen",
    );
    assert_invalid(
        "[node]\nadmin_listen = \"0.0.0.0:7946\"\n",
        "node.admin_listen",
        "node.cluster_listen",
    );
    let zero = "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
    Config::from_toml_str(zero).unwrap().validate().unwrap();
}
