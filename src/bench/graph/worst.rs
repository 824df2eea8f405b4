//! The graph's worst cases over the wire (`hpfriends bench graph --worst`): the community
//! gets 10 redistribute chains of 300 users below one head and a group of 10,000 members
//! offered a redistribute share by the head ([`crate::store::generate::Worst`]), all on a
//! channel the background community also redistributes on. With the head publishing
//! every millisecond, each round makes through the CLI, as an operator or user would:
//! the first link blocking the head and unblocking it, the group's owner accepting the
//! share (while another user accepts a small share through the API, sent as soon as the
//! group's acceptance is committed, so that it reaches a server busy applying it) and the head revoking
//! it. Measured: when each command answered, whether anything published after a block or
//! revoke answered still arrived, when data flowed again, how long the small change took
//! meanwhile, and the longest pause of a publish path no change touches (the head's own
//! data to its own second key).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{Seen, api, cli, first_after, json_id, median_max, ms, publisher, set_mark, subscriber};
use crate::bench::{BenchError, now_ns};
use crate::domain::listing::NewAuthkey;
use crate::store::Store;
use crate::store::generate::{WORST_HEAD, WORST_LINK, WORST_OWNER, Worst, WorstMade};
use crate::wire::{Channel, Ident, Secret};

/// The channel of the chains and the group share: the background's first channel.
const CHANNEL: &str = "sensor.0";

/// The worst cases' figures (ms; medians with the worst).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WorstRow {
    /// Users in chains and in the big group.
    pub chains: usize,
    /// Users per chain.
    pub chain_length: usize,
    /// Members of the big group.
    pub group_members: usize,
    /// The first link blocks the head: until the CLI answered (live by then).
    pub block_answered: (f64, f64),
    /// It unblocks: from spawning the command to the first message arriving again.
    pub unblock_first: (f64, f64),
    /// The group's owner accepts: from spawning the command to the member's first message.
    pub group_accept_first: (f64, f64),
    /// The head revokes the group share: until the CLI answered.
    pub group_revoke_answered: (f64, f64),
    /// A small API accept made as soon as the group accept is committed (while the server
    /// applies it): request to first message.
    pub small_during: (f64, f64),
    /// Messages published after a block or revoke answered that still arrived (must be 0).
    pub leaked: u64,
    /// The longest pause between two messages on a path no change touches.
    pub publish_gap_ms: f64,
    /// `GET /api/v1/reach` for the head (a hub: 3,000 users downstream and the group).
    pub reach: (f64, f64),
    /// The same, 8 at once: each one's time.
    pub reach_8: (f64, f64),
    /// `GET /api/v1/shares` for another user while those 8 run.
    pub list_during_reach: (f64, f64),
    /// The pages the hub opens.
    pub pages: super::pages::PagesRow,
    /// The server's RSS (MiB) before the rounds, after them, and after the reach storm
    /// and the pages (each 2 s after the last request, so an allocator may give back).
    pub rss_mib: (f64, f64, f64),
}

/// What [`prepare`] made: the shapes, and how the head and the hub sign in.
pub(super) struct Prepared {
    /// The shapes.
    pub(super) made: WorstMade,
    /// The head's API token.
    pub(super) head_token: String,
    /// The hub's API token.
    pub(super) hub_token: String,
    /// The hub's session cookie (`name=value`).
    pub(super) hub_cookie: String,
}

/// Adds the worst cases to the freshly generated community in `store`, with the keys the
/// measurement uses.
pub(super) fn prepare(store: &Store, users: usize, w: Worst) -> Result<Prepared, BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Protocol(e.to_string());
    let made = store
        .generate_worst(w, users, CHANNEL, 0x3c0f_fee5 ^ users as u64)
        .map_err(|e| err(&e))?;
    let channel = Channel::new(CHANNEL).map_err(|e| err(&e))?;
    for (owner, ident, publish) in [
        (made.head, "chain-head", true),
        (made.head, "chain-self", false),
        (made.link, "chain-link", false),
        (made.member, "group-member", false),
    ] {
        store
            .add_authkey(
                &NewAuthkey {
                    ident: Ident::new(ident).map_err(|e| err(&e))?,
                    secret: Secret::new(key(ident).1),
                    owner,
                    publish: if publish { vec![channel.clone()] } else { vec![] },
                    subscribe: if publish { vec![] } else { vec![channel.clone()] },
                    comment: String::new(),
                },
                "bench",
            )
            .map_err(|e| err(&e))?;
    }
    // The hub publishes on the busy channel and a few more: it is in the catalogue.
    store
        .add_authkey(
            &NewAuthkey {
                ident: Ident::new("hub-key").map_err(|e| err(&e))?,
                secret: Secret::new("hub-key-secret"),
                owner: made.hub,
                publish: (0..5)
                    .map(|i| Channel::new(&crate::store::generate::channel_name(i)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(&e))?,
                subscribe: vec![],
                comment: String::new(),
            },
            "bench",
        )
        .map_err(|e| err(&e))?;
    let token = |user| {
        store
            .create_token(crate::store::models::accounts::TokenKind::Api, user, "", None)
            .map_err(|e| err(&e))
    };
    Ok(Prepared {
        made,
        head_token: token(made.head)?,
        hub_token: token(made.hub)?,
        hub_cookie: crate::web::session::session_cookie_for(store, made.hub, 86_400).map_err(|e| err(&e))?,
    })
}

/// The measurement's keys and their secrets.
const SECRETS: [(&str, &str); 4] = [
    ("chain-head", "chain-head-secret"),
    ("chain-self", "chain-self-secret"),
    ("chain-link", "chain-link-secret"),
    ("group-member", "group-member-secret"),
];

/// A key of the measurement: (ident, secret, channel).
fn key(ident: &'static str) -> (&'static str, &'static str, &'static str) {
    let secret = SECRETS.iter().find(|(i, _)| *i == ident).map_or("", |(_, s)| *s);
    (ident, secret, CHANNEL)
}

/// What the worst-case rounds need of the running size.
pub(super) struct Running<'a> {
    /// The `hpfriends` binary (the CLI).
    pub(super) exe: &'a Path,
    /// The database.
    pub(super) db: &'a str,
    /// The server's hpfeeds and web addresses.
    pub(super) hpfeeds: SocketAddr,
    /// The server's website.
    pub(super) web: SocketAddr,
    /// API tokens of `benchpub` and `benchsub` (the small change).
    pub(super) tokens: (&'a str, &'a str),
    /// What `benchsub`'s live subscriber saw.
    pub(super) small: &'a Seen,
    /// Users in the background community.
    pub(super) users: usize,
    /// The head's API token.
    pub(super) head_token: &'a str,
    /// The hub's API token and session cookie.
    pub(super) hub: (&'a str, &'a str),
    /// The server's process id.
    pub(super) pid: u32,
}

/// Runs `rounds` rounds of the worst cases against the running server.
pub(super) async fn run(
    r: &Running<'_>,
    made: WorstMade,
    w: Worst,
    rounds: usize,
) -> Result<WorstRow, BenchError> {
    let err = |e: &dyn std::fmt::Display| BenchError::Protocol(e.to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let (link, member, pulse) = (
        Arc::new(Seen::default()),
        Arc::new(Seen::default()),
        Arc::new(Seen::default()),
    );
    let mut tasks = Vec::new();
    for (ident, seen) in [
        ("chain-link", &link),
        ("group-member", &member),
        ("chain-self", &pulse),
    ] {
        tasks.push(tokio::spawn(subscriber(
            r.hpfeeds,
            key(ident),
            Arc::clone(seen),
            Arc::clone(&stop),
        )));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    tasks.push(tokio::spawn(publisher(
        r.hpfeeds,
        key("chain-head"),
        Arc::clone(&stop),
    )));
    // The head's data reaches the first link before anything changes.
    first_after(&link, set_mark(&link)).await?;
    pulse.max_gap.store(0, Relaxed);

    let mut row = WorstRow {
        chains: w.chains,
        chain_length: w.chain_length,
        group_members: w.group_members.min(r.users),
        ..WorstRow::default()
    };
    let (mut block, mut unblock, mut accept, mut revoke, mut small) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut group_share = made.group_share.0.to_string();
    let rss = || crate::bench::rss_kib(r.pid).map_or(0.0, |k| k as f64 / 1024.0);
    let rss_before = rss();
    // Where the bench sees the group accept committed (the server hears it as soon).
    let log = Store::open(r.db).map_err(|e| err(&e))?;
    for _ in 0..rounds {
        // The first link blocks the head: nothing of the head's may reach it once answered.
        let t0 = Instant::now();
        run_cli(r, &["user", "block", WORST_HEAD, "--as", WORST_LINK]).await?;
        let answered = now_ns();
        block.push(ms(t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if link.last_sent.load(Relaxed) > answered {
            row.leaked += 1;
        }
        let mark = set_mark(&link);
        let t0 = Instant::now();
        let unblocking = spawn_cli(r, &["user", "unblock", WORST_HEAD, "--as", WORST_LINK]);
        let arrived = first_after(&link, mark).await?;
        unblock.push(since(arrived, t0));
        unblocking.await.map_err(|e| err(&e))??;

        // The group's owner accepts the head's redistribute share; as soon as that is
        // committed, another user accepts a small share through the API.
        let (status, body) = api(
            r.web,
            r.tokens.0,
            "POST",
            "/api/v1/shares",
            r#"{"channel":"bench.live","to_user":"benchsub"}"#,
        )
        .await?;
        let small_id =
            json_id(&body).ok_or_else(|| BenchError::Protocol(format!("offer answered {status}: {body}")))?;
        let mark = set_mark(&member);
        let version = || {
            let log = log.clone();
            async move {
                tokio::task::spawn_blocking(move || log.acl_version())
                    .await
                    .map_err(|e| err(&e))?
                    .map_err(|e| err(&e))
            }
        };
        let committed_before = version().await?;
        let t0 = Instant::now();
        let accepting = spawn_cli(r, &["share", "accept", &group_share, "--as", WORST_OWNER]);
        while version().await? == committed_before {
            if t0.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::Protocol(
                    "the group accept was never committed".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let small_mark = set_mark(r.small);
        let t1 = Instant::now();
        let (status, body) = api(
            r.web,
            r.tokens.1,
            "POST",
            &format!("/api/v1/shares/{small_id}/accept"),
            "",
        )
        .await?;
        if status != 200 {
            return Err(BenchError::Protocol(format!("accept answered {status}: {body}")));
        }
        let arrived = first_after(r.small, small_mark).await?;
        small.push(since(arrived, t1));
        let arrived = first_after(&member, mark).await?;
        accept.push(since(arrived, t0));
        accepting.await.map_err(|e| err(&e))??;
        let (status, body) = api(
            r.web,
            r.tokens.0,
            "POST",
            &format!("/api/v1/shares/{small_id}/revoke"),
            "",
        )
        .await?;
        if status != 200 {
            return Err(BenchError::Protocol(format!("revoke answered {status}: {body}")));
        }

        // The head revokes it, and offers it anew for the next round.
        let t0 = Instant::now();
        run_cli(r, &["share", "revoke", &group_share, "--as", WORST_HEAD]).await?;
        let answered = now_ns();
        revoke.push(ms(t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if member.last_sent.load(Relaxed) > answered {
            row.leaked += 1;
        }
        let out = run_cli(
            r,
            &[
                "share",
                "offer",
                "--channel",
                CHANNEL,
                "--to-group",
                "worst-group",
                "--redistribute",
                "--onward",
                "--as",
                WORST_HEAD,
            ],
        )
        .await?;
        group_share = out
            .split_whitespace()
            .nth(1)
            .filter(|_| out.starts_with("share "))
            .ok_or_else(|| BenchError::Protocol(format!("share offer said {out:?}")))?
            .to_owned();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_rounds = rss();
    reads(r, &mut row).await?;
    row.pages = super::pages::measure(r.web, r.hub.1, r.hub.0, CHANNEL).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    row.rss_mib = (rss_before, rss_rounds, rss());
    stop.store(true, Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    row.block_answered = median_max(block);
    row.unblock_first = median_max(unblock);
    row.group_accept_first = median_max(accept);
    row.group_revoke_answered = median_max(revoke);
    row.small_during = median_max(small);
    row.publish_gap_ms = pulse.max_gap.load(Relaxed) as f64 / 1e6;
    Ok(row)
}

/// The head's reach, alone and 8 at once, and another user's list meanwhile.
async fn reads(r: &Running<'_>, row: &mut WorstRow) -> Result<(), BenchError> {
    let get = |token: String, path: &'static str| {
        let web = r.web;
        async move {
            let t0 = Instant::now();
            let (status, body) = api(web, &token, "GET", path, "").await?;
            if status != 200 {
                return Err(BenchError::Protocol(format!("{path} answered {status}: {body}")));
            }
            Ok::<_, BenchError>((ms(t0.elapsed()), body.len()))
        }
    };
    let mut alone = Vec::new();
    for _ in 0..5 {
        alone.push(get(r.head_token.to_owned(), "/api/v1/reach").await?.0);
    }
    row.reach = median_max(alone);
    let (mut many, mut lists) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let storm: Vec<_> = (0..8)
            .map(|_| tokio::spawn(get(r.head_token.to_owned(), "/api/v1/reach")))
            .collect();
        lists.push(get(r.tokens.1.to_owned(), "/api/v1/shares").await?.0);
        for t in storm {
            many.push(t.await.map_err(|e| BenchError::Protocol(e.to_string()))??.0);
        }
    }
    row.reach_8 = median_max(many);
    row.list_during_reach = median_max(lists);
    Ok(())
}

/// Milliseconds from `t0` to `arrived` (a `now_ns` time).
fn since(arrived: u64, t0: Instant) -> f64 {
    let started = now_ns().saturating_sub(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(0));
    arrived.saturating_sub(started) as f64 / 1e6
}

/// The CLI on the size's database, off the runtime's threads.
fn spawn_cli(r: &Running<'_>, args: &[&str]) -> tokio::task::JoinHandle<Result<String, BenchError>> {
    let (exe, db) = (r.exe.to_path_buf(), r.db.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&exe, &db, &args)
    })
}

async fn run_cli(r: &Running<'_>, args: &[&str]) -> Result<String, BenchError> {
    spawn_cli(r, args)
        .await
        .map_err(|e| BenchError::Protocol(e.to_string()))?
}

/// The worst cases as a Markdown table, a row per size.
pub(super) fn table(rows: &[(usize, &WorstRow)]) -> String {
    let mut out = String::from(
        "| users | chains × length, group | block answered | unblock → first msg | group accept → first msg | small API accept meanwhile | group revoke answered | leaked after answer | longest publish gap | head's reach | 8 reach at once | a list meanwhile |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (users, r) in rows {
        out.push_str(&format!(
            "| {users} | {} × {}, {} | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {} | {:.1} ms | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) | {:.1} ms (max {:.1}) |\n",
            r.chains,
            r.chain_length,
            r.group_members,
            r.block_answered.0,
            r.block_answered.1,
            r.unblock_first.0,
            r.unblock_first.1,
            r.group_accept_first.0,
            r.group_accept_first.1,
            r.small_during.0,
            r.small_during.1,
            r.group_revoke_answered.0,
            r.group_revoke_answered.1,
            r.leaked,
            r.publish_gap_ms,
            r.reach.0,
            r.reach.1,
            r.reach_8.0,
            r.reach_8.1,
            r.list_during_reach.0,
            r.list_during_reach.1,
        ));
    }
    out
}
