//! `hpfriends config …` and `hpfriends secret-key …`: the settings themselves.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Loaded;

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting as TOML with where its value came from (default, file,
    /// environment variable, flag); secrets masked. Fails, naming the key, when the
    /// settings cannot work together.
    Show,
    /// Send one mail to ADDRESS through the configured transport (smtp_url, else a file
    /// in mail_dir) and say whether it was taken: a check of the mail settings before
    /// users depend on them.
    TestMail {
        /// Who receives it.
        address: String,
    },
}

/// `secret-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Write a new random key to PATH (mode 0600; an existing file is never overwritten).
    /// Then set secret_key_file = PATH (or HPFRIENDS_SECRET_KEY_FILE).
    New {
        /// Where to write it.
        path: PathBuf,
    },
}

/// Runs a `config` subcommand on the loaded configuration.
pub(super) fn config(cmd: ConfigCommand, loaded: &Loaded) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show => print!("{}", loaded.config.show(&loaded.origins)),
        ConfigCommand::TestMail { address } => {
            let c = &loaded.config;
            let text = format!(
                "This is a test mail from hpfriends at {}.\n\nIf you read it, the site's mail reaches {address}.\n\n-- hpfriends\n",
                c.site_url()
            );
            super::client::runtime()?.block_on(crate::mail::deliver(
                (&c.smtp_url, &c.mail_dir, &c.mail_from),
                &address,
                "hpfriends: a test mail",
                &text,
            ))?;
            let via = if c.smtp_url.is_empty() {
                format!("written into {}", c.mail_dir)
            } else {
                format!("accepted by {}", crate::store::redacted(&c.smtp_url))
            };
            println!("test mail to {} {via}", super::output::terminal_safe(&address));
        }
    }
    Ok(())
}

/// Runs a `secret-key` subcommand.
pub(super) fn secret_key(cmd: SecretKeyCommand) -> anyhow::Result<()> {
    match cmd {
        SecretKeyCommand::New { path } => {
            use std::os::unix::fs::OpenOptionsExt;
            let key = crate::store::sealing::new_key()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(f, "{key}")?;
            println!(
                "wrote a new secret key to {}; set secret_key_file = \"{}\" and keep a copy in a safe place",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}
