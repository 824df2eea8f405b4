//! The configuration's loading, validation and display.

use super::*;

#[test]
fn example_file_documents_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/hpfriends.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let from_file = Config::load(Some(&path), []).unwrap();
    assert_eq!(from_file, Config::default());
    // Every key is present (not merely defaulted) and documented by a comment above it.
    let table: toml::Table = text.parse().unwrap();
    let known = toml::Table::try_from(Config::default()).unwrap();
    for key in known.keys() {
        assert!(table.contains_key(key), "{key} missing from the example file");
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{key} =")))
            .unwrap();
        assert!(
            text.lines().nth(line - 1).unwrap().starts_with('#'),
            "{key} is undocumented"
        );
    }
}

/// The cluster node's example is a valid configuration (paths aside).
#[test]
fn cluster_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cluster-node.example.toml");
    let c = Config::load(Some(&path), []).unwrap();
    c.validate(&Origins::default()).unwrap();
    assert_eq!((c.node_id.as_str(), c.nats_prefix.as_str()), ("eu-1", "hpfeeds"));
    assert!(c.db.starts_with("postgres://") && c.nats_url.starts_with("tls://"));
    assert!(c.db.contains("sslmode=verify-full") && !c.nats_tls_ca.is_empty());
}

/// The NATS link's settings must fit together, and its secrets never show.
#[test]
fn nats_link_settings_fit_together() {
    let cluster = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("HPFRIENDS_DB".to_owned(), "postgres://x@127.0.0.1/db".to_owned()),
            ("HPFRIENDS_NATS_URL".to_owned(), "tls://127.0.0.1:4222".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let c = Config::load(None, env).unwrap();
        c.validate(&Origins::default()).map(|()| c)
    };
    let ok = cluster(&[
        ("HPFRIENDS_NATS_USER", "u"),
        ("HPFRIENDS_NATS_PASSWORD", "secret-pw"),
    ])
    .unwrap();
    let shown = ok.show(&Origins::default());
    assert!(!shown.contains("secret-pw"), "{shown}");
    for (extra, key) in [
        (&[("HPFRIENDS_NATS_TLS_CERT", "c.pem")][..], "nats_tls_cert"),
        (&[("HPFRIENDS_NATS_PASSWORD", "p")][..], "nats_password"),
        (
            &[("HPFRIENDS_NATS_USER", "u"), ("HPFRIENDS_NATS_TOKEN", "t")][..],
            "nats_user",
        ),
    ] {
        let e = cluster(extra).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "max_payload = 10\nname = \"file\"\n").unwrap();
    let env = [
        ("HPFRIENDS_MAX_PAYLOAD".to_owned(), "20".to_owned()),
        ("HPFRIENDS_OPEN".to_owned(), "true".to_owned()),
        ("HPFRIENDS_SLOW_CONSUMER".to_owned(), "drop-oldest".to_owned()),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let c = Config::load(Some(&f), env).unwrap();
    assert_eq!(c.max_payload, 20);
    assert!(c.open);
    assert_eq!(c.name, "file");
    assert_eq!(c.slow_consumer, SlowConsumerPolicy::DropOldest);
}

#[test]
fn bad_values_say_where() {
    let env = [("HPFRIENDS_MAX_PAYLOAD".to_owned(), "lots".to_owned())];
    let e = Config::load(None, env).unwrap_err().to_string();
    assert!(e.contains("environment"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "no_such_key = 1\n").unwrap();
    let e = Config::load(Some(&f), []).unwrap_err().to_string();
    assert!(e.contains("no_such_key") && !e.contains('\n'), "{e}");
    std::fs::write(&f, "max_payload = \n").unwrap();
    let e = Config::load(Some(&f), []).unwrap_err().to_string();
    assert!(!e.contains('\n'), "{e}");
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn flags_beat_env_beat_file_and_show_says_where_each_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "max_payload = 10\nname = \"file\"\n").unwrap();
    let flags = Flags::none()
        .set("max_payload", Some(4096usize))
        .set("listen", None::<String>);
    let l = Config::load_with(
        Some(&f),
        env(&[
            ("HPFRIENDS_MAX_PAYLOAD", "20"),
            ("HPFRIENDS_OPEN", "true"),
            ("HPFRIENDS_CONFIG", "x"),
        ]),
        &flags,
    )
    .unwrap();
    assert_eq!(l.config.max_payload, 4096);
    assert!(l.config.open);
    assert_eq!(l.config.name, "file");
    assert_eq!(l.origins.of("max_payload"), "command-line flag --max-payload");
    assert_eq!(l.origins.of("open"), "environment variable HPFRIENDS_OPEN");
    assert_eq!(l.origins.of("name"), format!("file {}", f.display()));
    assert_eq!(l.origins.of("listen"), "default");
    let shown = l.config.show(&l.origins);
    assert!(
        shown.contains("max_payload = 4096  # command-line flag --max-payload"),
        "{shown}"
    );
    // What show prints is a config file that loads to the same settings.
    let back: toml::Table = shown.parse().unwrap();
    assert_eq!(
        back.len(),
        toml::Table::try_from(Config::default()).unwrap().len()
    );
}

#[test]
fn show_masks_secrets() {
    let c = Config {
        db: "postgres://hp:dbpass@db:5432/hp".into(),
        smtp_url: "smtps://mailer:mailpass@mx:465".into(),
        metrics_token: "a-long-metrics-token".into(),
        ..Config::default()
    };
    let shown = c.show(&Origins::default());
    for secret in ["dbpass", "mailpass", "a-long-metrics-token"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("postgres://hp:****@db:5432/hp"), "{shown}");
}

#[test]
fn inconsistent_settings_are_refused_naming_the_key() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("HPFRIENDS_OUTBOX_BYTES", "1000")],
            "outbox_bytes (environment variable HPFRIENDS_OUTBOX_BYTES)",
        ),
        (&[("HPFRIENDS_MAX_PAYLOAD", "0")], "max_payload"),
        (&[("HPFRIENDS_MAX_CONNECTIONS", "10")], "max_connections_per_ip"),
        (
            &[("HPFRIENDS_MAX_SUBSCRIPTIONS_PER_KEY", "10")],
            "max_subscriptions",
        ),
        (&[("HPFRIENDS_TLS_CERT", "/c.pem")], "tls_key"),
        (&[("HPFRIENDS_DB_POOL_SIZE", "0")], "db_pool_size"),
        (&[("HPFRIENDS_STALL_TIMEOUT_MS", "0")], "stall_timeout_ms"),
        (&[("HPFRIENDS_WEB_LISTEN", "localhost")], "web_listen"),
        (
            &[("HPFRIENDS_METRICS_LISTEN", "127.0.0.1:8080")],
            "metrics_listen",
        ),
        (&[("HPFRIENDS_PUBLIC_URL", "example.org")], "public_url"),
        (&[("HPFRIENDS_SMTP_URL", "mail.example.org")], "smtp_url"),
        (&[("HPFRIENDS_METRICS_TOKEN", "short")], "metrics_token"),
        (
            &[("HPFRIENDS_METRICS_TOP_CHANNELS", "1000000")],
            "metrics_top_channels",
        ),
        (&[("HPFRIENDS_NATS_URL", "127.0.0.1:4222")], "nats_url"),
        // A cluster shares its state in PostgreSQL, never in one node's SQLite file.
        (&[("HPFRIENDS_NATS_URL", "nats://127.0.0.1:4222")], "nats_url"),
        (&[("HPFRIENDS_NATS_PREFIX", "hp.>")], "nats_prefix"),
        (&[("HPFRIENDS_NATS_PREFIX", "hp..x")], "nats_prefix"),
        (&[("HPFRIENDS_NODE_ID", "node one")], "node_id"),
    ];
    for (vars, key) in cases {
        let e = Config::load_with(None, env(vars), &Flags::none())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("invalid configuration: {key}")),
            "{vars:?}: {e}"
        );
    }
    Config::load_with(None, env(&[]), &Flags::none()).unwrap();
    Config::load_with(
        None,
        env(&[
            ("HPFRIENDS_DB", "postgres://postgres@127.0.0.1:5432/hpf"),
            ("HPFRIENDS_NATS_URL", "nats://10.0.0.1:4222, nats://10.0.0.2:4222"),
            ("HPFRIENDS_NODE_ID", "eu-1"),
        ]),
        &Flags::none(),
    )
    .unwrap();
}

#[test]
fn a_missing_file_is_an_error_not_defaults() {
    let e = Config::load(Some(Path::new("/nonexistent/hpfriends.toml")), []).unwrap_err();
    assert!(e.to_string().contains("cannot read config file"), "{e}");
}

#[test]
fn a_misspelled_setting_is_named_with_the_one_meant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "max_paylod = 10\n").unwrap();
    let e = Config::load(Some(&file), []).unwrap_err().to_string();
    assert!(
        e.contains("unknown setting `max_paylod`: did you mean `max_payload`?"),
        "{e}"
    );
    assert!(!e.contains("nats_credentials_file"), "not every key: {e}");
    std::fs::write(&file, "zzzz = 1\n").unwrap();
    let e = Config::load(Some(&file), []).unwrap_err().to_string();
    assert!(e.contains("unknown setting `zzzz` (hpfriends config show"), "{e}");
    assert_eq!(suggest::edit_distance("kitten", "sitting"), 3);
}
