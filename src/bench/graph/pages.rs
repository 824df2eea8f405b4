//! The pages a hub opens at 100,000 users (issue 32.5), over HTTP as a browser would: the
//! channels catalogue, the page of a channel thousands publish on, the sharing graph; each
//! page and its API twin, time and size; and the server's memory across the worst cases.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{api, median_max, ms};
use crate::bench::BenchError;

/// Each page's median and worst time (ms) and its size (bytes).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PagesRow {
    /// `GET /channels` (the first page of the catalogue).
    pub catalogue: (f64, f64, usize),
    /// `GET /api/v1/channels`.
    pub catalogue_api: (f64, f64, usize),
    /// `GET /channel?name=…` of the busiest channel.
    pub channel: (f64, f64, usize),
    /// `GET /api/v1/channel?name=…`.
    pub channel_api: (f64, f64, usize),
    /// `GET /graph` of the hub.
    pub graph: (f64, f64, usize),
}

/// Times of this many calls of each page.
const CALLS: usize = 5;

/// One page with a session cookie: (status, body length).
async fn page(web: SocketAddr, cookie: &str, path: &str) -> Result<(u16, usize), BenchError> {
    let mut s = TcpStream::connect(web).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {web}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&out[..head_end.min(out.len())])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, out.len() - head_end))
}

/// Calls `path` [`CALLS`] times, as a page (with `cookie`) or through the API (with `token`).
async fn timed(web: SocketAddr, who: Who<'_>, path: &str) -> Result<(f64, f64, usize), BenchError> {
    let (mut times, mut size) = (Vec::new(), 0);
    for _ in 0..CALLS {
        let t0 = Instant::now();
        let (status, len) = match who {
            Who::Cookie(c) => page(web, c, path).await?,
            Who::Token(t) => {
                let (status, body) = api(web, t, "GET", path, "").await?;
                (status, body.len())
            }
        };
        times.push(ms(t0.elapsed()));
        if status != 200 {
            return Err(BenchError::Protocol(format!("{path} answered {status}")));
        }
        size = len;
    }
    let (median, max) = median_max(times);
    Ok((median, max, size))
}

#[derive(Clone, Copy)]
enum Who<'a> {
    Cookie(&'a str),
    Token(&'a str),
}

/// Measures the pages as the hub (`cookie`, `token`) sees them, `channel` the busy one.
pub(super) async fn measure(
    web: SocketAddr,
    cookie: &str,
    token: &str,
    channel: &str,
) -> Result<PagesRow, BenchError> {
    let (c, t) = (Who::Cookie(cookie), Who::Token(token));
    Ok(PagesRow {
        catalogue: timed(web, c, "/channels").await?,
        catalogue_api: timed(web, t, "/api/v1/channels").await?,
        channel: timed(web, c, &format!("/channel?name={channel}")).await?,
        channel_api: timed(web, t, &format!("/api/v1/channel?name={channel}")).await?,
        graph: timed(web, c, "/graph").await?,
    })
}

/// The pages as a Markdown table, a row per size.
pub(super) fn table(rows: &[(usize, &PagesRow, (f64, f64, f64))]) -> String {
    let mut out = String::from(
        "| users | catalogue page | catalogue API | channel page | channel API | the hub's graph page | RSS before the rounds → after → after reads and pages |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let cell = |(median, max, size): (f64, f64, usize)| {
        format!("{median:.1} ms (max {max:.1}), {:.1} KB", size as f64 / 1000.0)
    };
    for (users, r, (before, rounds, reads)) in rows {
        out.push_str(&format!(
            "| {users} | {} | {} | {} | {} | {} | {before:.0} → {rounds:.0} → {reads:.0} MiB |\n",
            cell(r.catalogue),
            cell(r.catalogue_api),
            cell(r.channel),
            cell(r.channel_api),
            cell(r.graph),
        ));
    }
    out
}
