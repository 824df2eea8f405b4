//! Shared helpers of the black-box tests: a real `hpfriends serve` on port 0 with a scratch
//! database (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` names a
//! server), the CLI against the same database, a raw wire client, and waits on conditions.
#![allow(dead_code, clippy::unwrap_used)]

pub mod http;
pub mod pki;
pub mod python;
pub mod raw;
pub mod site;

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hpfriends::store::scratch::ScratchDb;
use tempfile::TempDir;

/// The database a test server runs on: a scratch one (dropped with its last handle), or a
/// file the test chose.
#[derive(Debug, Clone)]
pub enum Db {
    /// Fresh for this test, on the backend of `TEST_DATABASE_URL`.
    Scratch(Arc<ScratchDb>),
    /// A URL or path given by the test.
    Given(String),
}

impl Db {
    /// A fresh database on the backend under test.
    pub fn scratch() -> Db {
        Db::Scratch(Arc::new(ScratchDb::new().unwrap_or_else(|e| {
            panic!(
                "no scratch database ({}): {e}",
                hpfriends::store::scratch::TEST_DATABASE_URL
            )
        })))
    }

    /// A SQLite file of the test's own.
    pub fn file(path: &Path) -> Db {
        Db::Given(path.to_string_lossy().into_owned())
    }

    /// What `--db` is given.
    pub fn url(&self) -> &str {
        match self {
            Db::Scratch(s) => s.url(),
            Db::Given(u) => u,
        }
    }

    /// Whether the backend under test is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.url().starts_with("postgres")
    }
}

impl AsRef<OsStr> for Db {
    fn as_ref(&self) -> &OsStr {
        OsStr::new(self.url())
    }
}

pub use raw::Raw;

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hpfriends")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a server whose start failed (a panicking test must not leave it running).
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `hpfriends serve` and its scratch directory.
pub struct TestServer {
    child: Option<Child>,
    /// The hpfeeds listener.
    pub addr: SocketAddr,
    /// The website.
    pub web: Option<SocketAddr>,
    /// The hpfeeds TLS listener.
    pub tls: Option<SocketAddr>,
    /// Scratch directory holding the database and logs.
    pub dir: TempDir,
    /// The database.
    db: Db,
}

impl TestServer {
    /// A server in social mode with default settings.
    pub fn start() -> TestServer {
        Self::start_with(&[], &[])
    }

    /// A server with extra `serve` flags and environment variables. Failed auths are not
    /// throttled unless `env` says otherwise (tests poll for keys with them).
    pub fn start_with(flags: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::start_at(None, flags, env)
    }

    /// A server on an existing database (another server's, or a file of the test's).
    pub fn start_on(db: &Db, flags: &[&str], env: &[(&str, &str)]) -> TestServer {
        Self::start_at(Some(db.clone()), flags, env)
    }

    fn start_at(db: Option<Db>, flags: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut s = TestServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            web: None,
            tls: None,
            dir: tempfile::tempdir().unwrap(),
            db: db.unwrap_or_else(Db::scratch),
        };
        s.launch(flags, env);
        s
    }

    fn launch(&mut self, flags: &[&str], env: &[(&str, &str)]) {
        let out = self.dir.path().join("serve.out");
        let err = self.dir.path().join("serve.err");
        let mut cmd = Command::new(bin());
        cmd.arg("--db")
            .arg(self.db())
            .args(["serve", "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"])
            .env("HPFRIENDS_MAIL_DIR", self.dir.path().join("mail"))
            .args(flags)
            .env("RUST_LOG", "info")
            .env("HPFRIENDS_AUTH_FREE_FAILURES", "1000000")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = KillOnDrop(Some(cmd.spawn().unwrap()));
        let addr = wait_for("the server's ready line", Duration::from_secs(30), || {
            if let Ok(Some(status)) = child.0.as_mut().unwrap().try_wait() {
                panic!(
                    "server exited with {status}: {}",
                    fs::read_to_string(&err).unwrap_or_default()
                );
            }
            let text = fs::read_to_string(&out).ok()?;
            let rest = text.split("hpfeeds tcp://").nth(1)?;
            rest.split_whitespace().next()?.trim_end_matches(',').parse().ok()
        });
        self.addr = addr;
        let after = |marker: &str| -> Option<SocketAddr> {
            let text = fs::read_to_string(&out).ok()?;
            let rest = text.split(marker).nth(1)?.to_owned();
            rest.split_whitespace().next()?.trim_end_matches(',').parse().ok()
        };
        self.web = after("website http://").or_else(|| after("website https://"));
        self.tls = after("hpfeeds tls://");
        self.child = child.0.take();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The server's resident memory in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// The database (a handle that keeps a scratch database alive for another server).
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("serve.err")).unwrap_or_default()
    }

    /// Runs the CLI against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_db(self.db(), args)
    }

    /// Runs the CLI and panics unless it succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "hpfriends {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Creates a user.
    pub fn user(&self, name: &str) {
        self.cli_ok(&["user", "add", name, "--email", &format!("{name}@example.org")]);
    }

    /// Creates a key with the given secret and channel lists, and waits until the running
    /// broker accepts it.
    pub fn key(&self, owner: &str, ident: &str, secret: &str, publish: &[&str], subscribe: &[&str]) {
        let mut args = vec![
            "authkey", "add", "--owner", owner, "--ident", ident, "--secret", secret,
        ];
        for p in publish {
            args.extend(["--publish", p]);
        }
        for s in subscribe {
            args.extend(["--subscribe", s]);
        }
        self.cli_ok(&args);
        self.wait_key(ident, secret);
    }

    /// Waits until `ident` can authenticate (the broker polls the database for changes).
    pub fn wait_key(&self, ident: &str, secret: &str) {
        wait_for(
            &format!("key {ident} to be live"),
            Duration::from_secs(10),
            || {
                // A positive answer either way (see `Raw::authenticated`), never a silence.
                Raw::login(self.addr, ident, secret).authenticated().then_some(())
            },
        );
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        wait_for("the server to exit", Duration::from_secs(20), || {
            child.try_wait().unwrap()
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the CLI against a database (a path, a URL or a [`Db`]).
pub fn cli_with_db(db: impl AsRef<OsStr>, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
