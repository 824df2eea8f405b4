//! The command line: every command's help, clear one-line failures, and the database it
//! creates and migrates.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{Db, bin, cli_with_db};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// Runs a command that must succeed; its stdout.
fn ok(db: &Db, args: &[&str]) -> String {
    let o = cli_with_db(db, args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure: non-zero exit and exactly one line on stderr containing `text`.
fn fails_with(o: &Output, text: &str) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(text), "{err:?} should contain {text:?}");
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["user", "add", "--help"],
        &["user", "list", "--help"],
        &["user", "set-email", "--help"],
        &["user", "invite", "--help"],
        &["authkey", "add", "--help"],
        &["authkey", "list", "--help"],
        &["authkey", "rm", "--help"],
        &["authkey", "subscribe", "--help"],
        &["authkey", "snippet", "--help"],
        &["pub", "--help"],
        &["sub", "--help"],
        &["group", "list", "--help"],
        &["share", "offer", "--help"],
        &["acl", "reach", "--help"],
        &["log", "--help"],
        &["import", "--help"],
        &["export", "--help"],
        &["bench", "graph", "--help"],
        &["config", "show", "--help"],
        &["config", "test-mail", "--help"],
    ] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn migrate_creates_the_schema_once() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite: the file's folders are made too.
    let db = match Db::scratch() {
        Db::Scratch(s) if s.is_postgres() => Db::Scratch(s),
        _ => Db::file(&dir.path().join("sub/dir/h.db")),
    };
    let first = String::from_utf8(cli_with_db(&db, &["migrate"]).stdout).unwrap();
    let all = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    assert!(first.contains(&format!("{all} migration(s) applied")), "{first}");
    let again = String::from_utf8(cli_with_db(&db, &["migrate"]).stdout).unwrap();
    assert!(again.contains("0 migration(s) applied"), "{again}");
}

#[test]
fn three_nodes_may_migrate_a_fresh_database_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = match Db::scratch() {
        Db::Scratch(s) if s.is_postgres() => Db::Scratch(s),
        _ => Db::file(&dir.path().join("h.db")),
    };
    // Three `migrate`s started together (as three nodes starting on one fresh database):
    // every one succeeds, and the schema was made once.
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || cli_with_db(&db, &["migrate"]))
        })
        .collect();
    let mut applied = Vec::new();
    for r in runs {
        let o = r.join().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        applied.push(String::from_utf8(o.stdout).unwrap());
    }
    let all = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count();
    let total: usize = applied
        .iter()
        .filter_map(|o| {
            o.split(" migration(s) applied")
                .next()?
                .split_whitespace()
                .last()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(total, all, "{applied:?}");
}

#[test]
fn users_and_keys() {
    let db = Db::scratch();
    assert!(
        cli_with_db(&db, &["user", "add", "alice", "--email", "a@example.org"])
            .status
            .success()
    );
    fails_with(
        &cli_with_db(&db, &["user", "add", "alice", "--email", "other@example.org"]),
        "already taken",
    );
    fails_with(
        &cli_with_db(&db, &["user", "add", "bad name", "--email", "x@y"]),
        "invalid user name",
    );
    fails_with(
        &cli_with_db(&db, &["user", "add", "bob", "--email", "nope"]),
        "invalid email",
    );
    fails_with(
        &cli_with_db(&db, &["authkey", "add", "--owner", "nobody", "--publish", "c"]),
        "no user named \"nobody\"",
    );
    let o = cli_with_db(
        &db,
        &[
            "authkey",
            "add",
            "--owner",
            "alice",
            "--publish",
            "a,b",
            "--subscribe",
            "b",
        ],
    );
    let out = String::from_utf8(o.stdout).unwrap();
    let ident = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("ident: ")
        .unwrap()
        .to_owned();
    let secret = out.lines().nth(1).unwrap().strip_prefix("secret: ").unwrap();
    assert_eq!(secret.len(), 64);
    let list = String::from_utf8(cli_with_db(&db, &["authkey", "list", "--json"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(v["ident"], ident.as_str());
    assert_eq!(v["publish"], serde_json::json!(["a", "b"]));
    assert_eq!(v["subscribe"], serde_json::json!(["b"]));
    assert!(!list.contains(secret), "secrets are never listed");
    let o = cli_with_db(&db, &["authkey", "subscribe", &ident, "b,c"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("authkey {ident} subscribed to b already\nauthkey {ident} subscribes to c now\n")
    );
    let list = String::from_utf8(cli_with_db(&db, &["authkey", "list", "--json"]).stdout).unwrap();
    assert!(list.contains(r#""subscribe":["b","c"]"#), "{list}");
    fails_with(
        &cli_with_db(&db, &["authkey", "add", "--owner", "alice", "--ident", &ident]),
        "already taken",
    );
    fails_with(
        &cli_with_db(&db, &["authkey", "add", "--owner", "alice", "--publish", ""]),
        "channel is empty",
    );
    assert!(cli_with_db(&db, &["authkey", "rm", &ident]).status.success());
    fails_with(
        &cli_with_db(&db, &["authkey", "rm", &ident]),
        "no authkey with ident",
    );
}

#[test]
fn clear_errors_for_bad_databases_and_brokers() {
    fails_with(
        &run(&["--db", "mysql://localhost/x", "user", "list"]),
        "unsupported database URL",
    );
    // Nothing listens on port 1: one line naming the database (and no password).
    fails_with(
        &run(&["--db", "postgres://someone:hunter2@127.0.0.1:1/x", "user", "list"]),
        "cannot open database postgres://someone:***@127.0.0.1:1/x",
    );
    let dir = tempfile::tempdir().unwrap();
    // A typo in --db: one line saying so, and nothing created (no file, no folder).
    let typo = dir.path().join("no-such-dir").join("hpfirends.db");
    for args in [
        &["user", "list"][..],
        &["authkey", "list"],
        &["share", "list", "--as", "a"],
    ] {
        fails_with(&cli_with_db(&typo, args), "there is no database file");
    }
    assert!(!dir.path().join("no-such-dir").exists());
    // The first user may come first; the new file is said.
    let fresh = dir.path().join("fresh.db");
    let o = run(&[
        "--db",
        fresh.to_str().unwrap(),
        "user",
        "add",
        "a",
        "--email",
        "a@x.example",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("creating a new database"));
    fails_with(
        &run(&["serve", "--listen", "localhost:10000"]),
        "an IP address and a port, e.g. 127.0.0.1:10000",
    );
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "max_payload = \"big\"\n").unwrap();
    fails_with(
        &run(&["--config", cfg.to_str().unwrap(), "user", "list"]),
        "invalid configuration",
    );
    // Nothing listens on port 1.
    fails_with(
        &run(&[
            "pub",
            "--port",
            "1",
            "--ident",
            "i",
            "--secret",
            "s",
            "--channel",
            "c",
            "x",
        ]),
        "cannot connect to 127.0.0.1:1",
    );
}

/// A start that fails (a port taken) is one line on stderr and a non-zero exit: no panic,
/// no backtrace, nothing left listening.
#[test]
fn a_failed_start_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (flag, listen) in [
        ("--web-listen", format!("127.0.0.1:{port}")),
        ("--listen", format!("127.0.0.1:{port}")),
    ] {
        let mut args = vec!["serve", flag, listen.as_str()];
        if flag == "--web-listen" {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let o = std::process::Command::new(common::bin())
            .args(["--db", db.url()])
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("HPFRIENDS_MAIL_DIR", dir.path().join("mail"))
            .output()
            .unwrap();
        assert!(!o.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{flag}: {err}");
        assert!(
            lines[0].starts_with("hpfriends: ") && lines[0].contains(&port),
            "{flag}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("reactor"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn open_public_offers_are_browsed_apart_from_what_is_shared_with_you() {
    let db = Db::scratch();
    ok(&db, &["user", "add", "alice", "--email", "a@example.org"]);
    ok(&db, &["user", "add", "bob", "--email", "b@example.org"]);
    let offered = ok(
        &db,
        &[
            "share",
            "offer",
            "--channel",
            "sensors.x",
            "--to-everyone",
            "--as",
            "alice",
        ],
    );
    let id = offered.split_whitespace().nth(1).unwrap().to_owned();
    let offers = ok(&db, &["share", "offers", "--as", "bob"]);
    assert!(
        offers.contains("sensors.x") && offers.contains("alice"),
        "{offers}"
    );
    assert!(!ok(&db, &["share", "list", "--as", "bob"]).contains("sensors.x"));
    ok(&db, &["share", "follow", &id, "--as", "bob"]);
    assert!(!ok(&db, &["share", "offers", "--as", "bob"]).contains("sensors.x"));
    assert!(ok(&db, &["share", "list", "--as", "bob"]).contains("sensors.x"));
}

/// Every listing prints an aligned table for people and, with `--json`, one object per line
/// carrying the same rows; a command acting for a user says so when `--as` is missing.
#[test]
fn listings_are_tables_or_json_lines_of_the_same_rows() {
    let db = Db::scratch();
    ok(&db, &["user", "add", "alice", "--email", "a@example.org"]);
    ok(&db, &["user", "add", "bob", "--email", "b@example.org"]);
    ok(
        &db,
        &[
            "authkey",
            "add",
            "--owner",
            "alice",
            "--ident",
            "a1",
            "--publish",
            "c",
            "--comment",
            "roof sensor",
        ],
    );
    ok(&db, &["group", "create", "friends", "--as", "alice"]);
    ok(&db, &["group", "invite", "friends", "bob", "--as", "alice"]);
    ok(
        &db,
        &[
            "share",
            "offer",
            "--channel",
            "c",
            "--to-user",
            "bob",
            "--as",
            "alice",
        ],
    );

    let users = ok(&db, &["user", "list"]);
    let lines: Vec<&str> = users.lines().collect();
    assert_eq!(lines.len(), 3, "{users}");
    assert!(
        lines[0].starts_with("NAME ") && lines[0].contains("ENABLED"),
        "{users}"
    );
    // Columns line up: every row's email starts where the header's EMAIL does.
    let col = lines[0].find("EMAIL").unwrap();
    assert!(
        lines[1..].iter().all(|l| l[col..].contains("@example.org")),
        "{users}"
    );
    assert!(
        users.lines().all(|l| l == l.trim_end()),
        "no trailing blanks: {users:?}"
    );

    let keys = ok(&db, &["authkey", "list"]);
    assert!(keys.lines().nth(1).unwrap().contains("roof sensor"), "{keys}");

    for (args, n) in [
        (&["user", "list", "--json"][..], 2),
        (&["authkey", "list", "--json"], 1),
        (&["group", "list", "--as", "alice", "--json"], 1),
        (&["share", "list", "--as", "bob", "--json"], 1),
        (&["share", "list", "--as", "alice", "--json"], 1),
        (&["log", "--as", "alice", "--json"], 0),
    ] {
        let out = ok(&db, args);
        let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(rows.len(), n, "{args:?}: {out}");
    }
    let shares = ok(&db, &["share", "list", "--as", "bob", "--json"]);
    let share: serde_json::Value = serde_json::from_str(shares.trim()).unwrap();
    assert_eq!(share["direction"], "in");
    assert_eq!(share["state"], "offered");
    assert_eq!(share["from"], "alice");
    let groups = ok(&db, &["group", "list", "--as", "alice"]);
    assert!(groups.contains("alice (owner), bob (invited)"), "{groups}");

    fails_with(&cli_with_db(&db, &["share", "list"]), "--as <USER>");
    fails_with(&cli_with_db(&db, &["group", "list", "--as", "nobody"]), "nobody");
}

/// A change is "done" only when every running server applied it: with a server behind, the
/// command prints what it saved, names the server on stderr and exits 3 (`--no-wait`: 0,
/// saying it did not wait); a command that changes nothing never waits.
#[test]
fn a_change_not_yet_live_everywhere_exits_3_and_names_the_server_behind() {
    let db = Db::scratch();
    ok(&db, &["user", "add", "alice", "--email", "a@example.org"]);
    // A server that is alive (seen now) but has applied nothing: it never catches up.
    let store = hpfriends::store::Store::open(db.url()).unwrap();
    store.record_applied("slow-node", 0).unwrap();

    let o = cli_with_db(
        &db,
        &[
            "user",
            "add",
            "bob",
            "--email",
            "b@example.org",
            "--live-wait",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("user bob created"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("saved") && err.contains("slow-node") && err.contains("1 running server(s)"),
        "{err}"
    );

    let o = cli_with_db(
        &db,
        &["user", "add", "carol", "--email", "c@example.org", "--no-wait"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("user carol created"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not waiting"));

    // Reading, or a write refused before it changed anything, does not wait (else it
    // would exit 3 too).
    ok(&db, &["user", "list"]);
    ok(&db, &["user", "blocks", "--as", "alice"]);
    fails_with(
        &cli_with_db(&db, &["user", "add", "bob", "--email", "x@example.org"]),
        "already taken",
    );

    // Caught up: the same kind of change answers 0.
    store.record_applied("slow-node", i64::MAX).unwrap();
    ok(&db, &["user", "add", "dave", "--email", "d@example.org"]);
}

/// `config test-mail` sends one mail through the configured transport and says where it
/// went; a mail server that refuses is one line and a failure.
#[test]
fn a_test_mail_checks_the_mail_settings() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    let o = Command::new(bin())
        .args(["config", "test-mail", "ops@example.org"])
        .env("HPFRIENDS_MAIL_DIR", &mail)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("test mail to ops@example.org written into"));
    let files: Vec<_> = std::fs::read_dir(&mail).unwrap().flatten().collect();
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(
        text.contains("To: ops@example.org") && text.contains("a test mail"),
        "{text}"
    );
    // Nothing listens on port 9.
    let refused = Command::new(bin())
        .args(["config", "test-mail", "ops@example.org"])
        .env("HPFRIENDS_SMTP_URL", "smtp://127.0.0.1:9")
        .output()
        .unwrap();
    fails_with(&refused, "mail not sent");
}
