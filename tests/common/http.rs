//! A minimal HTTP/1.1 client over a real socket, for tests of a running server's HTTP
//! endpoints (`/metrics`, forms): one request per connection.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, header lines, body (chunk-size lines of a chunked body left in).
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `name: value` lines.
    pub headers: Vec<String>,
    /// The body.
    pub body: String,
}

impl Response {
    /// The value of the first header `name` (any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    }

    /// Values of every `Set-Cookie`, up to the first `;`.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.trim().split(';').next().unwrap().to_owned())
            .collect()
    }
}

/// Sends `method path` with extra header lines and a body.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    Response {
        status,
        headers: lines.map(str::to_owned).collect(),
        body: body.to_owned(),
    }
}

/// GET with extra header lines.
pub fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
    request(addr, "GET", path, headers, "")
}

/// The `value` of the first `<input name="NAME" value="…">` in `html`.
pub fn input_value(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap();
    let rest = &html[at..];
    let v = rest.split("value=\"").nth(1).unwrap();
    v.split('"').next().unwrap().to_owned()
}

/// Posts a urlencoded form the way a browser would: GETs `path` first for the CSRF cookie
/// and field, then POSTs `fields` with them.
pub fn post_form(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Response {
    let page = get(addr, path, &[]);
    let csrf = input_value(&page.body, "csrf");
    let cookie = format!("Cookie: {}", page.cookies().join("; "));
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let body = serde_urlencoded::to_string(&all).unwrap();
    request(
        addr,
        "POST",
        path,
        &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
        &body,
    )
}

/// `name{labels}` → value for every `hpfriends_` sample of a Prometheus scrape.
pub fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("hpfriends_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// A browser's session over [`request`]: keeps the cookies it is given, and posts forms
/// with the CSRF field of the page they are on.
pub struct Browser {
    addr: SocketAddr,
    cookies: Vec<String>,
}

impl Browser {
    /// A browser with no session yet (a visitor following a mailed link).
    pub fn anonymous(addr: SocketAddr) -> Browser {
        Browser {
            addr,
            cookies: Vec::new(),
        }
    }

    /// Logs in on the website at `addr`; panics unless the login succeeds.
    pub fn login(addr: SocketAddr, login: &str, password: &str) -> Browser {
        let mut b = Browser::anonymous(addr);
        let r = b.post_form("/login", "/login", &[("login", login), ("password", password)]);
        assert_eq!(r.status, 303, "login: {}", r.body);
        b
    }

    fn keep(&mut self, r: &Response) {
        for c in r.cookies() {
            let name = c.split('=').next().unwrap_or_default().to_owned();
            self.cookies.retain(|k| !k.starts_with(&format!("{name}=")));
            self.cookies.push(c);
        }
    }

    fn cookie_header(&self) -> String {
        format!("Cookie: {}", self.cookies.join("; "))
    }

    /// GETs `path` with the session.
    pub fn get(&mut self, path: &str) -> Response {
        let cookie = self.cookie_header();
        let r = get(self.addr, path, &[&cookie]);
        self.keep(&r);
        r
    }

    /// Opens `page`, then posts `fields` to `action` with that page's CSRF field.
    pub fn post_form(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let p = self.get(page);
        let csrf = input_value(&p.body, "csrf");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let body = serde_urlencoded::to_string(&all).unwrap();
        let cookie = self.cookie_header();
        let r = request(
            self.addr,
            "POST",
            action,
            &[&cookie, "Content-Type: application/x-www-form-urlencoded"],
            &body,
        );
        self.keep(&r);
        r
    }
}
