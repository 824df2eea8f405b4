//! Outgoing mail: verification links, password resets, share and group invitations.
//!
//! SMTP (STARTTLS or TLS) when `smtp_url` is set; otherwise every mail is written as an
//! `.eml` file into `mail_dir`, so a default install works with no mail server and tests
//! read the links from the files. Requests never wait on a mail server: mails go into a
//! bounded queue drained by one task; a full queue or a failed send is logged and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;

/// Mails waiting to be sent before new ones are refused (and counted).
pub const QUEUE: usize = 256;

/// Why the mailer could not be set up or a mail not built.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `smtp_url` is not a URL lettre understands.
    #[error("invalid smtp_url: {0}")]
    Url(String),
    /// `mail_dir` cannot be created.
    #[error("cannot create mail_dir {dir}: {source}")]
    Dir {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// An address does not parse.
    #[error("invalid email address {0:?}")]
    Address(String),
    /// The message could not be assembled.
    #[error("cannot build mail: {0}")]
    Build(String),
    /// The transport (the SMTP server, the mail folder) refused or failed on a mail.
    #[error("mail not sent: {0}")]
    Send(String),
}

enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Counters of the mail queue, never silent.
#[derive(Debug, Default)]
pub struct MailStats {
    /// Mails handed to the transport successfully.
    pub sent: AtomicU64,
    /// Mails the transport refused or failed on.
    pub failed: AtomicU64,
    /// Mails refused because the queue was full.
    pub dropped: AtomicU64,
    /// Mails left out because their recipient or sender had reached the hourly bound.
    pub throttled: AtomicU64,
}

/// A handle on the mail queue; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    tx: mpsc::Sender<Message>,
    /// What happened to the mails so far.
    pub stats: Arc<MailStats>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// Mails waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Starts the sending task (needs a tokio runtime). `smtp_url` empty: files in `dir`.
    pub fn start(smtp_url: &str, dir: &str, from: &str) -> Result<Mailer, MailError> {
        let from = mailbox(from)?;
        let transport = Transport::new(smtp_url, dir)?;
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let stats = Arc::new(MailStats::default());
        let counters = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                match transport.send(m).await {
                    Ok(()) => counters.sent.fetch_add(1, Relaxed),
                    Err(e) => {
                        tracing::warn!("mail not sent: {e}");
                        counters.failed.fetch_add(1, Relaxed)
                    }
                };
            }
        });
        Ok(Mailer { from, tx, stats })
    }

    /// Queues a plain-text mail; returns at once. A bad address or a full queue is logged,
    /// counted and reported, but never waits.
    pub fn send(&self, to: &str, subject: &str, text: &str) -> Result<(), MailError> {
        let m = message(&self.from, to, subject, text)?;
        if self.tx.try_send(m).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
            tracing::warn!(%to, "mail queue full: mail dropped");
            return Err(MailError::Build("the mail queue is full".into()));
        }
        Ok(())
    }
}

/// Sends one mail now and says whether the transport took it: what a command run by an
/// operator needs (an invitation, a test mail), who must hear at once that the mail server
/// refused it, where the website's queue only logs and counts.
pub async fn deliver(
    (smtp_url, dir, from): (&str, &str, &str),
    to: &str,
    subject: &str,
    text: &str,
) -> Result<(), MailError> {
    let m = message(&mailbox(from)?, to, subject, text)?;
    Transport::new(smtp_url, dir)?
        .send(m)
        .await
        .map_err(MailError::Send)
}

impl Transport {
    /// SMTP when `smtp_url` is set, else files in `dir` (created if missing).
    fn new(smtp_url: &str, dir: &str) -> Result<Transport, MailError> {
        if smtp_url.is_empty() {
            std::fs::create_dir_all(dir).map_err(|source| MailError::Dir {
                dir: dir.to_owned(),
                source,
            })?;
            return Ok(Transport::File(AsyncFileTransport::<Tokio1Executor>::new(dir)));
        }
        let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| MailError::Url(e.to_string()))?
            .build();
        Ok(Transport::Smtp(t))
    }

    async fn send(&self, m: Message) -> Result<(), String> {
        match self {
            Transport::File(t) => t.send(m).await.map(drop).map_err(|e| e.to_string()),
            Transport::Smtp(t) => t.send(m).await.map(drop).map_err(|e| e.to_string()),
        }
    }
}

fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .parse()
        .map_err(|_| MailError::Address(address.to_owned()))
}

/// A plain-text mail from `from` to `to`.
fn message(from: &Mailbox, to: &str, subject: &str, text: &str) -> Result<Message, MailError> {
    // 7bit (which needs CRLF line ends) keeps links whole and readable in the raw file;
    // quoted-printable only if it must (non-ASCII text).
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let body = Body::new_with_encoding(crlf, ContentTransferEncoding::SevenBit).unwrap_or_else(|b| {
        Body::new_with_encoding(b, ContentTransferEncoding::QuotedPrintable).unwrap_or_else(Body::new)
    });
    Message::builder()
        .from(from.clone())
        .to(mailbox(to)?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_transport_writes_readable_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_string_lossy().into_owned();
        let m = Mailer::start("", &d, "hpfriends <hp@localhost>").unwrap();
        // As long as a real link: a 43-character token.
        let link = format!("http://127.0.0.1:8080/verify/{}", "a".repeat(43));
        m.send("alice@example.org", "Confirm", &format!("Open this:\n{link}\n"))
            .unwrap();
        assert!(m.send("not an address", "x", "y").is_err());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
            if let Some(f) = files.first() {
                let text = std::fs::read_to_string(f.path()).unwrap();
                if text.contains("To: alice@example.org") {
                    assert!(text.contains(&link), "{text}");
                    assert!(!text.contains("quoted-printable"), "{text}");
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no mail written");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(Mailer::start("nonsense://x", &d, "a@b").is_err());
    }

    #[tokio::test]
    async fn a_mail_delivered_now_is_written_or_its_failure_said() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("out").to_string_lossy().into_owned();
        let from = "hpfriends <hp@localhost>";
        deliver(("", &d, from), "bob@example.org", "Hi", "a line\n")
            .await
            .unwrap();
        let files: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        assert!(
            text.contains("To: bob@example.org") && text.contains("a line"),
            "{text}"
        );
        assert!(matches!(
            deliver(("", &d, from), "not an address", "x", "y").await,
            Err(MailError::Address(_))
        ));
        // Nothing listens on port 9 here: the refusal is said, not queued and logged.
        let refused = deliver(("smtp://127.0.0.1:9", &d, from), "bob@example.org", "x", "y").await;
        assert!(matches!(refused, Err(MailError::Send(_))), "{refused:?}");
    }
}
