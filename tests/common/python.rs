//! The PyPI `hpfeeds` 3.1.0 client, installed into a venv cached under `target/`, for the
//! interop tests. Under `CI=true` a failure to install it fails the test; locally the test
//! skips with a loud message (e.g. offline).
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The reference client's version.
pub const HPFEEDS_VERSION: &str = "3.1.0";

/// The venv's python with hpfeeds installed, or `None` (after a loud message) when it
/// cannot be had outside CI.
pub fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    let py = PY.get_or_init(setup).clone();
    if py.is_none() {
        record_skip();
    }
    py
}

/// Appends the running test's name to `target/tmp/skipped-tests.txt`, which `.ci/run`
/// counts apart in its closing totals: a skipped test is not a passed one.
pub fn record_skip() {
    use std::io::Write;
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{} {name}", env!("CARGO_CRATE_NAME"));
    }
}

/// The interop driver script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/hpclient.py")
}

fn installed(py: &Path) -> bool {
    Command::new(py)
        .args([
            "-c",
            &format!(
                "import hpfeeds, importlib.metadata as m; assert m.version('hpfeeds') == '{HPFEEDS_VERSION}'"
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn unavailable(why: &str) -> Option<PathBuf> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("interop tests need PyPI hpfeeds=={HPFEEDS_VERSION}: {why}");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPING INTEROP TEST: cannot install PyPI hpfeeds=={HPFEEDS_VERSION}: {why}\n\
         !!!!!!!! (under CI=true this is a failure)\n"
    );
    None
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn setup() -> Option<PathBuf> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
    // Several test processes (nextest) may set up at once: one does, the others wait.
    let lock = File::create(base.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    let py = base.join("bin/python");
    if installed(&py) {
        return Some(py);
    }
    let _ = std::fs::remove_dir_all(&base);
    if let Err(e) = run(Command::new("python3").arg("-m").arg("venv").arg(&base)) {
        return unavailable(&format!("cannot create a venv (is python3-venv installed?): {e}"));
    }
    if let Err(e) = run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        &format!("hpfeeds=={HPFEEDS_VERSION}"),
    ])) {
        return unavailable(&e);
    }
    if installed(&py) {
        Some(py)
    } else {
        unavailable("installed, but `import hpfeeds` fails")
    }
}
