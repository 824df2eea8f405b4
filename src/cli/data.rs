//! The database as a whole: `migrate`, `import` (from another broker or another
//! hpfriends), `export` and `backup`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use super::changing;
use super::output::progress;
use crate::config::Config;
use crate::social::export::{self, Export};
use crate::social::import;
use crate::store::Store;

/// Stores `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// The PyPI hpfeeds broker's SQLite store (`--auth sqlite:PATH`).
    HpfeedsSqlite,
    /// The PyPI hpfeeds broker's JSON store (`--auth json:PATH`).
    HpfeedsJson,
    /// The PyPI hpfeeds broker's environment store (`--auth env`: HPFEEDS_<IDENT>_SECRET …).
    HpfeedsEnv,
    /// `mongoexport --collection auth_key` of the original broker or MHN (JSON lines).
    MongoExport,
    /// `hpfriends export` of another hpfriends (users, keys, groups, shares, blocks).
    HpfriendsExport,
}

/// Options of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The source's format.
    #[arg(long, value_enum)]
    from: ImportFormat,
    /// The store (a file); not used with `--from hpfeeds-env`, which reads HPFEEDS_*
    /// variables from the environment.
    path: Option<PathBuf>,
    /// Print what would be done, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The owners' email addresses, for the users made for them (`user invite` then mails
    /// each a link to sign in): lines `OWNER,ADDRESS`, or a JSON object `{"OWNER": "ADDRESS"}`.
    /// Without it, users get a placeholder address until `user set-email`.
    #[arg(long, value_name = "FILE")]
    emails: Option<PathBuf>,
}

/// Options of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Include the keys' secrets (the file is then written with mode 0600).
    #[arg(long)]
    include_secrets: bool,
    /// Write here instead of standard output (never overwrites).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// `migrate`: brings the schema up to date and says so.
pub(super) fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = Store::open_unmigrated(&config.db)?;
    let n = store.migrate()?;
    println!(
        "{}: {n} migration(s) applied, schema is current",
        crate::store::redacted(&config.db)
    );
    Ok(())
}

/// `backup PATH`: a consistent copy of a live SQLite database.
pub(super) fn backup(store: &Store, config: &Config, path: &Path) -> anyhow::Result<()> {
    store.backup_to(path)?;
    println!(
        "wrote a consistent copy of {} to {}",
        crate::store::redacted(&config.db),
        path.display()
    );
    Ok(())
}

/// `export`: the community as JSON, on stdout or into a new file (0600 with secrets).
pub(super) fn export(store: &Store, args: ExportArgs) -> anyhow::Result<()> {
    let bar = progress(0, "reading groups");
    let e = export::export(store, args.include_secrets, &|done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let text = serde_json::to_string_pretty(&e)? + "\n";
    match args.output {
        None => print!("{text}"),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if args.include_secrets { 0o600 } else { 0o644 })
                .open(&path)
                .with_context(|| format!("cannot create {} (export never overwrites)", path.display()))?;
            f.write_all(text.as_bytes())?;
            eprintln!("exported {} to {}", e.counts(), path.display());
        }
    }
    Ok(())
}

/// A file's name and text, for the importers that parse text.
fn read(path: Option<&Path>) -> anyhow::Result<(String, String)> {
    let Some(p) = path else {
        bail!("say which file to import");
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok((p.display().to_string(), text))
}

/// `import`: another broker's keys, or an hpfriends export, through the social operations.
pub(super) fn import(
    store: &Store,
    wait: Option<std::time::Duration>,
    args: ImportArgs,
) -> anyhow::Result<()> {
    let path = args.path.as_deref();
    let keys = match args.from {
        ImportFormat::HpfeedsSqlite => {
            let Some(p) = path else {
                bail!("say which SQLite file to import");
            };
            crate::store::foreign::read_hpfeeds_sqlite(p)?
        }
        ImportFormat::HpfeedsJson => {
            let (name, text) = read(path)?;
            import::parse_hpfeeds_json(&name, &text)?
        }
        ImportFormat::MongoExport => {
            let (name, text) = read(path)?;
            import::parse_mongo_export(&name, &text)?
        }
        ImportFormat::HpfeedsEnv => import::parse_hpfeeds_env(std::env::vars()),
        ImportFormat::HpfriendsExport => {
            let (name, text) = read(path)?;
            let e: Export =
                serde_json::from_str(&text).with_context(|| format!("{name} is not an hpfriends export"))?;
            return import_export(store, wait, &e, args.dry_run);
        }
    };
    let mut plan = import::plan(store, &keys)?;
    if let Some(p) = &args.emails {
        let (name, text) = read(Some(p))?;
        for owner in plan.address(&import::parse_emails(&name, &text)?) {
            eprintln!(
                "hpfriends: {name}: {} is no user this import creates; its address is left out",
                super::output::terminal_safe(&format!("{owner:?}"))
            );
        }
    }
    if args.dry_run {
        for line in plan.lines() {
            println!("{}", super::output::terminal_safe(&line));
        }
        println!("dry run: would have: {}", plan.summary());
        return Ok(());
    }
    let mut done = None;
    let bar = progress(plan.steps() as u64, "importing");
    // Saved but not yet live (NotLive) still says what was imported.
    let live = changing(store, wait, |s| {
        done = Some(s.in_one_transaction(|tx| import::apply(tx, plan, &|| bar.inc(1)))?);
        Ok(())
    });
    bar.finish_and_clear();
    if let Some(p) = done {
        for (ident, why) in &p.skipped {
            eprintln!(
                "hpfriends: skipped key {}",
                super::output::terminal_safe(&format!("{ident}: {why}"))
            );
        }
        println!("imported: {}", p.summary());
        if !p.users.is_empty() {
            let (mailed, placeholder): (Vec<&String>, Vec<&String>) = p
                .users
                .iter()
                .map(|(u, _)| u)
                .partition(|u| p.emails.contains_key(*u));
            println!(
                "the new users sign in to the website once invited: hpfriends user invite NAME… mails each a link{}",
                if placeholder.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} of {} have no address yet: hpfriends user set-email NAME ADDRESS first)",
                        placeholder.len(),
                        mailed.len() + placeholder.len()
                    )
                }
            );
        }
    }
    live
}

/// `import --from hpfriends-export`.
fn import_export(
    store: &Store,
    wait: Option<std::time::Duration>,
    e: &Export,
    dry_run: bool,
) -> anyhow::Result<()> {
    if dry_run {
        // The same checks an import makes before it writes anything.
        export::check(store, e)?;
        println!("dry run: would create {}", e.counts());
        return Ok(());
    }
    let bar = progress(e.steps() as u64, "importing");
    let mut summary = String::new();
    // All or nothing: the whole file in one transaction (after the checks), so a failure
    // midway leaves the database as it was.
    let live = changing(store, wait, |s| {
        summary = s.in_one_transaction(|tx| export::import(tx, e, &|| bar.inc(1)))?;
        Ok(())
    });
    bar.finish_and_clear();
    if !summary.is_empty() {
        println!("imported: {summary}");
    }
    live
}
