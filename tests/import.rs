//! `hpfriends import` from the PyPI hpfeeds broker's stores (made by its own code where it
//! has it) and from an MHN `mongoexport`: the imported keys work unchanged for 3.1.0
//! clients (a subscriber receives the other owner's publisher, plain hpfeeds semantics);
//! `--dry-run` changes nothing; `hpfriends backup` copies a live database.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};

use common::python::{python, script};
use common::{Db, TestServer, cli_with_db};
use serde_json::{Value, json};

/// A sensor owned by one organisation and a reader owned by another, on one channel, with
/// an owner name hpfriends must rewrite.
fn fixture() -> Value {
    json!([
        {"owner": "Sensor Org", "ident": "sensor1", "secret": "sensor-secret-1", "publish": ["dionaea.capture"], "subscribe": []},
        {"owner": "analyst", "ident": "reader1", "secret": "reader-secret-1", "publish": ["dionaea.capture"], "subscribe": ["dionaea.capture"]},
    ])
}

/// The fixture as 3.1.0's JSON store (`auth.json` in `dir`), in the layout its json
/// Authenticator documents and checks.
fn json_store(dir: &std::path::Path) -> std::path::PathBuf {
    let mut map = serde_json::Map::new();
    for k in fixture().as_array().unwrap() {
        map.insert(
            k["ident"].as_str().unwrap().into(),
            json!({"owner": k["owner"], "secret": k["secret"], "pubchans": k["publish"], "subchans": k["subscribe"]}),
        );
    }
    let file = dir.join("auth.json");
    std::fs::write(&file, Value::Object(map).to_string()).unwrap();
    file
}

fn py_lines(args: &[&str], env: &[(String, String)]) -> Option<Vec<Value>> {
    let py = python()?;
    let out = Command::new(py)
        .arg(script())
        .args(args)
        .envs(env.iter().cloned())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} failed");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            // 3.1.0 prints "setting up tables..." when it creates a store.
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn ok(db: &Db, args: &[&str]) -> String {
    let o = cli_with_db(db.url(), args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A 3.1.0 subscriber with the imported reader key receives a 3.1.0 publisher with the
/// imported sensor key.
fn imported_clients_work(db: &Db) {
    let s = TestServer::start_on(db, &[], &[]);
    let port = s.addr.port().to_string();
    let py = python().unwrap();
    let mut sub = Command::new(&py)
        .arg(script())
        .args([
            "sub",
            "127.0.0.1",
            &port,
            "reader1",
            "reader-secret-1",
            "dionaea.capture",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().unwrap()));
    let ready: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    let payload = hex::encode("imported-and-working");
    let st = Command::new(&py)
        .arg(script())
        .args([
            "pub",
            "127.0.0.1",
            &port,
            "sensor1",
            "sensor-secret-1",
            "dionaea.capture",
            &payload,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line["ident"], "sensor1", "{line}");
    assert_eq!(line["payload"], payload, "{line}");
    let _ = sub.kill();
    let _ = sub.wait();
}

#[test]
fn a_hpfeeds_sqlite_store_imports_and_its_clients_connect_unchanged() {
    let Some(_) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("hpfeeds.sqlite3");
    let read_back = py_lines(
        &["store", "sqlite", store.to_str().unwrap(), &fixture().to_string()],
        &[],
    )
    .unwrap();
    assert_eq!(
        read_back[0]["pubchans"],
        json!(["dionaea.capture"]),
        "3.1.0 reads its own store"
    );

    let db = Db::scratch();
    let dry = ok(
        &db,
        &[
            "import",
            "--from",
            "hpfeeds-sqlite",
            store.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert!(dry.contains("create user Sensor-Org"), "{dry}");
    assert!(
        dry.contains("share dionaea.capture from Sensor-Org to analyst"),
        "{dry}"
    );
    assert!(dry.contains("dry run: would have: 2 user(s) created"), "{dry}");
    assert!(
        ok(&db, &["user", "list"]).lines().all(|l| !l.contains("analyst")),
        "dry run wrote"
    );

    let out = ok(
        &db,
        &["import", "--from", "hpfeeds-sqlite", store.to_str().unwrap()],
    );
    assert!(
        out.contains(
            "imported: 2 user(s) created, 0 existing, 2 key(s) imported, 0 skipped, 1 share(s) created"
        ),
        "{out}"
    );
    imported_clients_work(&db);
    // Again: nothing is duplicated, the keys are reported as existing.
    let o = cli_with_db(
        db.url(),
        &["import", "--from", "hpfeeds-sqlite", store.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("skipped key sensor1: the ident exists here already"),
        "{err}"
    );
}

#[test]
fn an_mhn_mongoexport_imports_and_its_clients_connect_unchanged() {
    let Some(_) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("auth_key.json");
    // What `mongoexport --db hpfeeds --collection auth_key` writes: one document a line.
    let lines: Vec<String> = fixture()
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({
                "_id": {"$oid": format!("5f0c6b9b8f1b2c3d4e5f60{i:02}")},
                "identifier": k["ident"], "secret": k["secret"], "owner": k["owner"],
                "publish": k["publish"], "subscribe": k["subscribe"],
            })
            .to_string()
        })
        .collect();
    std::fs::write(&export, lines.join("\n") + "\n").unwrap();
    let db = Db::scratch();
    let out = ok(
        &db,
        &["import", "--from", "mongo-export", export.to_str().unwrap()],
    );
    assert!(out.contains("2 key(s) imported"), "{out}");
    imported_clients_work(&db);
}

#[test]
fn hpfeeds_json_and_env_stores_import() {
    let dir = tempfile::tempdir().unwrap();
    let file = json_store(dir.path());
    let db = Db::scratch();
    let out = ok(&db, &["import", "--from", "hpfeeds-json", file.to_str().unwrap()]);
    assert!(
        out.contains("2 key(s) imported") && out.contains("1 share(s) created"),
        "{out}"
    );
    let acl = ok(&db, &["acl", "show", "reader1"]);
    assert!(
        acl.contains("dionaea.capture") && acl.contains("Sensor-Org"),
        "{acl}"
    );

    // 3.1.0's env store: the variables its env Authenticator reads.
    let env: Vec<(String, String)> = [
        ("HPFEEDS_SENSOR2_SECRET", "sensor-secret-2"),
        ("HPFEEDS_SENSOR2_OWNER", "org2"),
        ("HPFEEDS_SENSOR2_PUBCHANS", "cowrie.sessions,dionaea.capture"),
        ("HPFEEDS_READER2_SECRET", "reader-secret-2"),
        ("HPFEEDS_READER2_SUBCHANS", "cowrie.sessions"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    if let Some(seen) = py_lines(&["envkeys", &json!([{"ident": "sensor2"}]).to_string()], &env) {
        assert_eq!(seen[0]["pubchans"], json!(["cowrie.sessions", "dionaea.capture"]));
    }
    let db = Db::scratch();
    let o = Command::new(common::bin())
        .args(["--db", db.url(), "import", "--from", "hpfeeds-env"])
        .envs(env)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("2 key(s) imported") && out.contains("1 share(s) created"),
        "{out}"
    );
    let acl = ok(&db, &["acl", "show", "reader2"]);
    assert!(acl.contains("cowrie.sessions") && acl.contains("org2"), "{acl}");
}

#[test]
fn backup_copies_a_live_database_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::file(&dir.path().join("live.db"));
    let s = TestServer::start_on(&db, &[], &[]);
    s.user("alice");
    s.key("alice", "k1", "secret-1", &["c"], &["c"]);
    let copy = dir.path().join("copy.db");
    let out = s.cli_ok(&["backup", copy.to_str().unwrap()]);
    assert!(out.contains("consistent copy"), "{out}");
    let users = String::from_utf8(cli_with_db(copy.to_str().unwrap(), &["user", "list"]).stdout).unwrap();
    assert!(users.contains("alice"), "{users}");
    let again = s.cli(&["backup", copy.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
    // On PostgreSQL it says what to use instead, in one plain line.
    let pg = Db::scratch();
    if pg.is_postgres() {
        ok(&pg, &["user", "add", "a", "--email", "a@x.example"]);
        let o = cli_with_db(pg.url(), &["backup", dir.path().join("pg.db").to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert_eq!(
            err.trim(),
            "hpfriends: backup copies SQLite files; for PostgreSQL use pg_dump (see the README)"
        );
    }
}

#[test]
fn an_export_imported_into_an_empty_database_round_trips() {
    let a = Db::scratch();
    for u in ["alice", "bob", "carol", "dave"] {
        ok(&a, &["user", "add", u, "--email", &format!("{u}@example.org")]);
    }
    ok(
        &a,
        &[
            "authkey",
            "add",
            "--owner",
            "alice",
            "--ident",
            "a-key",
            "--secret",
            "a-secret-1",
            "--publish",
            "c1,c2",
        ],
    );
    ok(
        &a,
        &[
            "authkey",
            "add",
            "--owner",
            "bob",
            "--ident",
            "b-key",
            "--secret",
            "b-secret-1",
            "--subscribe",
            "c1,c2,c3",
        ],
    );
    ok(
        &a,
        &[
            "authkey",
            "add",
            "--owner",
            "carol",
            "--ident",
            "c-key",
            "--publish",
            "c3",
        ],
    );
    ok(&a, &["authkey", "disable", "c-key"]);
    ok(
        &a,
        &[
            "group",
            "create",
            "researchers",
            "--description",
            "honeynet folks",
            "--as",
            "alice",
        ],
    );
    ok(&a, &["group", "invite", "researchers", "bob", "--as", "alice"]);
    ok(&a, &["group", "invite", "researchers", "carol", "--as", "alice"]);
    ok(&a, &["group", "accept", "researchers", "--as", "bob"]);
    // alice → bob accepted; dave → researchers accepted by its owner; carol → everyone,
    // taken up by bob; bob → carol still offered; bob blocks dave; dave disabled.
    ok(
        &a,
        &[
            "share",
            "offer",
            "--as",
            "alice",
            "--channel",
            "c1",
            "--to-user",
            "bob",
        ],
    );
    ok(&a, &["share", "accept", "1", "--as", "bob"]);
    ok(
        &a,
        &[
            "share",
            "offer",
            "--as",
            "dave",
            "--channel",
            "c2",
            "--to-group",
            "researchers",
            "--redistribute",
        ],
    );
    ok(&a, &["share", "accept", "2", "--as", "alice"]);
    ok(
        &a,
        &[
            "share",
            "offer",
            "--as",
            "carol",
            "--channel",
            "c3",
            "--to-everyone",
            "--onward",
        ],
    );
    ok(&a, &["share", "follow", "3", "--as", "bob"]);
    ok(
        &a,
        &[
            "share",
            "offer",
            "--as",
            "bob",
            "--channel",
            "c4",
            "--to-user",
            "carol",
        ],
    );
    ok(&a, &["user", "block", "dave", "--as", "bob"]);
    ok(&a, &["user", "disable", "dave"]);

    let without = ok(&a, &["export"]);
    assert!(
        !without.contains("a-secret-1"),
        "secrets only when asked: {without}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.json");
    let o = cli_with_db(
        a.url(),
        &["export", "--include-secrets", "-o", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(first["shares"].as_array().unwrap().len(), 4, "{first}");

    let b = Db::scratch();
    let out = ok(
        &b,
        &["import", "--from", "hpfriends-export", file.to_str().unwrap()],
    );
    assert!(
        out.contains(
            "imported: 4 user(s), 3 key(s), 1 group(s), 4 share(s), 1 block(s) (0 key(s) with a new secret)"
        ),
        "{out}"
    );
    let again: Value = serde_json::from_str(&ok(&b, &["export", "--include-secrets"])).unwrap();
    assert_eq!(first, again, "the round trip changed something");
    // The imported secrets work on a broker serving the new database.
    let s = TestServer::start_on(&b, &[], &[]);
    s.wait_key("a-key", "a-secret-1");
}

#[test]
fn an_export_with_a_bad_row_imports_nothing_and_its_text_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    // Good rows first, then a key of a user nobody has and a comment with an escape
    // sequence: the import used to write the good rows, then stop.
    let export = serde_json::json!({
        "format": "hpfriends-export",
        "version": 1,
        "users": [
            {"name": "alice", "email": "alice@example.org", "enabled": true},
            {"name": "bob", "email": "bob@example.org", "enabled": true}
        ],
        "authkeys": [
            {"ident": "a-key", "owner": "alice", "enabled": true, "publish": ["c"],
             "subscribe": [], "comment": "fine"},
            {"ident": "ghost-key", "owner": "gh\u{1b}[2Jost", "enabled": true, "publish": ["c"],
             "subscribe": [], "comment": "\u{1b}]0;owned\u{7}"}
        ],
        "groups": [],
        "shares": [],
        "blocks": []
    });
    std::fs::write(&file, serde_json::to_vec(&export).unwrap()).unwrap();
    let db = Db::scratch();
    let f = file.to_str().unwrap();
    for args in [
        &["import", "--from", "hpfriends-export", "--dry-run", f][..],
        &["import", "--from", "hpfriends-export", f][..],
    ] {
        let o = cli_with_db(db.url(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} said fine: {err}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(err.contains("no user"), "{err}");
        assert!(err.contains("comment"), "{err}");
        // The file's escape sequences reach the terminal written out, never as bytes.
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
        assert!(err.contains("\\u{1b}"), "{err}");
    }
    // Nothing of the file was written.
    let users = ok(&db, &["user", "list", "--json"]);
    assert!(!users.contains("alice"), "{users}");
    let keys = ok(&db, &["authkey", "list", "--json"]);
    assert!(!keys.contains("a-key"), "{keys}");
}

/// A migrated community signs in: `import --emails` gives the owners their addresses,
/// `user invite` mails each a link, the link sets a password (and confirms the address),
/// and the user logs in to the website and shares a channel there. An owner without an
/// address is refused an invitation until `user set-email`.
#[test]
fn a_migrated_user_is_invited_signs_in_and_shares() {
    let dir = tempfile::tempdir().unwrap();
    let file = json_store(dir.path());
    let emails = dir.path().join("emails.csv");
    std::fs::write(&emails, "# owner,address\nSensor Org,ops@sensor.example\n").unwrap();
    let db = Db::scratch();
    let (f, e) = (file.to_str().unwrap(), emails.to_str().unwrap());
    let plan = ok(
        &db,
        &["import", "--from", "hpfeeds-json", f, "--emails", e, "--dry-run"],
    );
    assert!(plan.contains("with address ops@sensor.example"), "{plan}");
    let out = ok(&db, &["import", "--from", "hpfeeds-json", f, "--emails", e]);
    assert!(
        out.contains("hpfriends user invite") && out.contains("1 of 2 have no address"),
        "{out}"
    );

    let server = TestServer::start_on(&db, &[], &[]);
    let web = server.web.expect("the website runs");
    let mail = dir.path().join("mail");
    let cli = |args: &[&str]| {
        Command::new(common::bin())
            .args(["--db", db.url()])
            .args(args)
            .env("HPFRIENDS_MAIL_DIR", &mail)
            .env("HPFRIENDS_PUBLIC_URL", format!("http://{web}"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The analyst came without an address: named, refused, nothing mailed.
    let o = cli(&["user", "invite", "analyst", "Sensor-Org"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("analyst not invited") && err.contains("user set-email analyst"),
        "{err}"
    );
    assert!(err.contains("1 of 2 user(s) not invited: analyst"), "{err}");
    let o = cli(&["user", "set-email", "analyst", "analyst@uni.example"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli(&["user", "invite", "analyst"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mailed a link to analyst@uni.example"));

    // Each invited user got one mail with a link to this website.
    let link_to = |to: &str| -> String {
        let texts: Vec<String> = std::fs::read_dir(&mail)
            .unwrap()
            .flatten()
            .map(|f| std::fs::read_to_string(f.path()).unwrap())
            .filter(|t| t.contains(&format!("To: {to}")))
            .collect();
        assert_eq!(texts.len(), 1, "{to}: {texts:?}");
        let at = texts[0]
            .find(&format!("http://{web}/reset/"))
            .expect("a link to the site");
        texts[0][at..].split_whitespace().next().unwrap().to_owned()
    };
    let link = link_to("ops@sensor.example");
    assert!(link_to("analyst@uni.example").contains("/reset/"));
    let path = &link[format!("http://{web}").len()..];

    // Before the link: no password, no login.
    let password = "a long and private passphrase";
    let mut visitor = common::http::Browser::anonymous(web);
    let r = visitor.post_form(
        "/login",
        "/login",
        &[("login", "Sensor-Org"), ("password", password)],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    let r = visitor.post_form(path, path, &[("password", password), ("password2", password)]);
    assert_eq!(r.status, 303, "{}", r.body);
    // A link works once.
    let r = visitor.post_form(path, path, &[("password", password), ("password2", password)]);
    assert_eq!(r.status, 404, "{}", r.body);

    let mut b = common::http::Browser::login(web, "ops@sensor.example", password);
    let r = b.post_form(
        "/shares",
        "/shares",
        &[
            ("channel", "dionaea.capture"),
            ("to_kind", "everyone"),
            ("to", ""),
            ("kind", "own"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let shares = ok(&db, &["share", "list", "--as", "Sensor-Org", "--json"]);
    assert!(shares.contains("everyone"), "{shares}");
}
