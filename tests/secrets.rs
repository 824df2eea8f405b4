//! Authkey secrets encrypted at rest with a configured server key: sealed when written,
//! plaintext ones sealed at start, the database file never holds a secret, the broker still
//! authenticates, and a missing or wrong key is a clear error at start.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Db, Raw, TestServer, bin, cli_with_db};
use diesel::prelude::*;

fn cli_with_key(db: &Db, key: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .env("HPFRIENDS_SECRET_KEY_FILE", key)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[derive(QueryableByName)]
struct Secret {
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret: String,
}

/// Whether any byte sequence of the database files holds `needle` (SQLite), or any stored
/// secret does (PostgreSQL, whose files are the server's).
fn db_holds(db: &Db, needle: &str) -> bool {
    if db.is_postgres() {
        let mut conn = PgConnection::establish(db.url()).unwrap();
        let rows: Vec<Secret> = diesel::sql_query("SELECT secret FROM authkeys")
            .load(&mut conn)
            .unwrap();
        return rows.iter().any(|r| r.secret.contains(needle));
    }
    ["", "-wal"].iter().any(|suffix| {
        let p = format!("{}{suffix}", db.url());
        std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

#[derive(QueryableByName)]
struct Value {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// The stored form of a server secret (the website's cookie key).
fn stored_server_secret(db: &Db, name: &str) -> String {
    let q = diesel::sql_query(format!("SELECT value FROM server_secrets WHERE name = '{name}'"));
    let rows: Vec<Value> = if db.is_postgres() {
        q.load(&mut PgConnection::establish(db.url()).unwrap()).unwrap()
    } else {
        q.load(&mut SqliteConnection::establish(db.url()).unwrap())
            .unwrap()
    };
    rows.into_iter().next().map(|r| r.value).unwrap_or_default()
}

#[test]
fn secrets_are_sealed_and_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    let o = cli_with_db(
        dir.path().join("x.db"),
        &["secret-key", "new", key.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = cli_with_db(
        dir.path().join("x.db"),
        &["secret-key", "new", key.to_str().unwrap()],
    );
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );

    let mut s = TestServer::start_with(&[], &[("HPFRIENDS_SECRET_KEY_FILE", key.to_str().unwrap())]);
    let db = s.db();
    s.user("alice");
    // Written without the key before anything was sealed (an old CLI, a database from
    // before the key): plaintext until the next start.
    s.cli_ok(&[
        "authkey",
        "add",
        "--owner",
        "alice",
        "--ident",
        "plain",
        "--secret",
        "plain-secret-5678",
        "--publish",
        "c",
    ]);
    s.wait_key("plain", "plain-secret-5678");
    // The website's cookie key is sealed: the file alone does not forge a login.
    assert!(
        stored_server_secret(&db, "cookie_key").starts_with("enc1:"),
        "the cookie key is stored in plaintext"
    );
    assert_eq!(s.stop().code(), Some(0));
    assert!(db_holds(&db, "plain-secret-5678"));

    // Restarted with the key: the plaintext one is sealed at start.
    let mut s2 = TestServer::start_on(&db, &[], &[("HPFRIENDS_SECRET_KEY_FILE", key.to_str().unwrap())]);
    assert!(Raw::login(s2.addr, "plain", "plain-secret-5678").authenticated());
    // Written through the CLI with the key: sealed.
    let o = cli_with_key(
        &db,
        &key,
        &[
            "authkey",
            "add",
            "--owner",
            "alice",
            "--ident",
            "sealed",
            "--secret",
            "sealed-secret-1234",
            "--publish",
            "c",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s2.wait_key("sealed", "sealed-secret-1234");
    // Once the database holds sealed secrets, a CLI without the key writes no plaintext
    // one: it refuses and says what to configure.
    let o = s2.cli(&[
        "authkey",
        "add",
        "--owner",
        "alice",
        "--ident",
        "careless",
        "--secret",
        "careless-secret-9999",
        "--publish",
        "c",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("secret_key_file"), "{err}");
    assert!(Raw::login(s2.addr, "plain", "plain-secret-5678").authenticated());
    assert_eq!(s2.stop().code(), Some(0));
    for secret in ["plain-secret-5678", "sealed-secret-1234", "careless-secret-9999"] {
        assert!(!db_holds(&db, secret), "{secret} is in the file");
    }

    // Without the key, or with another, serve refuses to start and says why.
    let o = cli_with_db(&db, &["serve", "--listen", "127.0.0.1:0", "--web-listen", "off"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("secret_key_file"), "{err}");
    let other = dir.path().join("other.key");
    cli_with_db(&db, &["secret-key", "new", other.to_str().unwrap()]);
    let o = cli_with_key(
        &db,
        &other,
        &["serve", "--listen", "127.0.0.1:0", "--web-listen", "off"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("does not open"), "{err}");
}
