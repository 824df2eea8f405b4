//! A blocking raw hpfeeds client for tests: sends exactly the bytes a test wants (malformed
//! ones included) and reads frames with deadlines.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hpfriends::wire::{AuthHash, Channel, Frame, FrameCodec, Ident, Limits, Nonce, Secret};
use tokio_util::codec::Decoder;

/// Prefix of the markers [`Raw::barrier`] publishes; other readers skip them.
pub const BARRIER: &[u8] = b"barrier-";

/// What a read saw.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A frame.
    Frame(Frame),
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// Nothing within the time given.
    Quiet,
}

/// One connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
    pub nonce: Nonce,
    /// The ident of the last auth sent (what [`Raw::authenticated`] asks about).
    pub ident: String,
}

impl Raw {
    /// Connects and reads the info frame.
    pub fn connect(addr: SocketAddr) -> Raw {
        Self::over(TcpStream::connect(addr).unwrap())
    }

    /// A TCP connection from another loopback address (127.0.0.2, …): a different client
    /// address for the broker's per-address limits and throttles.
    pub fn tcp_from(addr: SocketAddr, from: std::net::IpAddr) -> std::io::Result<TcpStream> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::new(from, 0).into())?;
        sock.connect(&addr.into())?;
        Ok(sock.into())
    }

    /// Connects from another loopback address and reads the info frame.
    pub fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Raw {
        Self::over(Self::tcp_from(addr, from).unwrap())
    }

    /// Reads the info frame on an open connection.
    pub fn over(stream: TcpStream) -> Raw {
        match Self::try_over(stream) {
            Ok(r) => r,
            Err(other) => panic!("expected info, got {other:?}"),
        }
    }

    /// Reads the first frame: the info frame, or what came instead (a limit's error).
    pub fn try_over(stream: TcpStream) -> Result<Raw, Event> {
        stream.set_nodelay(true).unwrap();
        let mut r = Raw {
            stream,
            buf: BytesMut::new(),
            codec: FrameCodec::new(Limits::with_max_payload(64 << 20)),
            nonce: Nonce([0; 4]),
            ident: String::new(),
        };
        match r.next(Duration::from_secs(10)) {
            Event::Frame(Frame::Info { nonce, .. }) => r.nonce = nonce,
            other => return Err(other),
        }
        Ok(r)
    }

    /// Connects and authenticates.
    pub fn login(addr: SocketAddr, ident: &str, secret: &str) -> Raw {
        let mut r = Self::connect(addr);
        r.auth(ident, secret);
        r
    }

    /// Logs in, subscribes to `channel` and waits until the subscription is live (through
    /// a barrier on `sync`, which every test key may publish and subscribe to).
    pub fn live_subscriber(addr: SocketAddr, ident: &str, secret: &str, channel: &str) -> Raw {
        let mut r = Self::login(addr, ident, secret);
        r.subscribe(channel);
        r.barrier("sync");
        r
    }

    /// Sends an auth frame for `ident`/`secret`.
    pub fn auth(&mut self, ident: &str, secret: &str) {
        self.ident = ident.to_owned();
        let hash = AuthHash::compute(&self.nonce, &Secret::new(secret));
        self.send(&Frame::Auth {
            ident: Ident::new(ident).unwrap(),
            hash,
        });
    }

    /// Sends a frame.
    pub fn send(&mut self, f: &Frame) {
        self.send_raw(&f.to_bytes().unwrap());
    }

    /// Sends raw bytes (ignoring a broker that already closed).
    pub fn send_raw(&mut self, b: &[u8]) {
        let _ = self.stream.write_all(b);
    }

    /// Publish frame bytes naming `ident` (this session's, or another to test refusals),
    /// built by hand so that names the broker refuses can be sent too.
    pub fn publish_frame_as(ident: &str, channel: &str, payload: &[u8]) -> Bytes {
        Self::frame_bytes(3, &[ident.as_bytes(), channel.as_bytes()], payload)
    }

    /// `u32 length | opcode | u8-prefixed strings | rest`.
    pub fn frame_bytes(opcode: u8, strings: &[&[u8]], rest: &[u8]) -> Bytes {
        let mut body = vec![opcode];
        for s in strings {
            body.push(u8::try_from(s.len()).unwrap());
            body.extend_from_slice(s);
        }
        body.extend_from_slice(rest);
        let mut f = u32::try_from(body.len() + 4).unwrap().to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        Bytes::from(f)
    }

    /// Publish frame bytes as this session's ident.
    pub fn publish_frame(&self, channel: &str, payload: &[u8]) -> Bytes {
        Self::publish_frame_as(&self.ident, channel, payload)
    }

    /// Publishes naming `ident`.
    pub fn publish_as(&mut self, ident: &str, channel: &str, payload: &[u8]) {
        let f = Self::publish_frame_as(ident, channel, payload);
        self.send_raw(&f);
    }

    /// Publishes as this session's ident.
    pub fn publish(&mut self, channel: &str, payload: &[u8]) {
        let f = self.publish_frame(channel, payload);
        self.send_raw(&f);
    }

    /// Subscribes naming `ident` (any bytes, to test refusals too).
    pub fn subscribe_as(&mut self, ident: &str, channel: &str) {
        let f = Self::frame_bytes(4, &[ident.as_bytes()], channel.as_bytes());
        self.send_raw(&f);
    }

    /// Subscribes as this session's ident.
    pub fn subscribe(&mut self, channel: &str) {
        let ident = self.ident.clone();
        self.subscribe_as(&ident, channel);
    }

    /// Unsubscribes naming `ident`.
    pub fn unsubscribe_as(&mut self, ident: &str, channel: &str) {
        let f = Frame::Unsubscribe {
            ident: Ident::new(ident).unwrap(),
            channel: Channel::new(channel).unwrap(),
        };
        self.send(&f);
    }

    /// Unsubscribes as this session's ident.
    pub fn unsubscribe(&mut self, channel: &str) {
        let ident = self.ident.clone();
        self.unsubscribe_as(&ident, channel);
    }

    /// Waits until the broker has processed every frame sent so far on this connection:
    /// subscribes to `channel`, publishes a marker there and reads up to it (frames are
    /// handled in order, and a subscribe is live before the next frame is read). Returns
    /// the publishes that arrived before the marker. The key needs both rights on `channel`.
    pub fn barrier(&mut self, channel: &str) -> Vec<(String, String, Vec<u8>)> {
        let mut marker = [0u8; 16];
        getrandom::getrandom(&mut marker).unwrap();
        let marker = format!("{}{}", String::from_utf8_lossy(BARRIER), hex::encode(marker));
        self.subscribe(channel);
        self.publish(channel, marker.as_bytes());
        let mut before = Vec::new();
        loop {
            match self.next(Duration::from_secs(20)) {
                Event::Frame(Frame::Publish {
                    ident,
                    channel: c,
                    payload,
                }) => {
                    if c.as_str() == channel && payload == marker.as_bytes() {
                        return before;
                    }
                    if !payload.starts_with(BARRIER) {
                        before.push((ident.to_string(), c.to_string(), payload.to_vec()));
                    }
                }
                other => panic!("while waiting for the barrier: {other:?}"),
            }
        }
    }

    /// The next event within `limit`.
    pub fn next(&mut self, limit: Duration) -> Event {
        let deadline = Instant::now() + limit;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(rx)) => return Event::Frame(rx.frame),
                Ok(None) => {}
                Err(e) => panic!("broker sent an invalid frame: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                return Event::Quiet;
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Event::Quiet;
                }
                Err(_) => return Event::Closed,
            }
        }
    }

    /// The next publish, as (ident, channel, payload), skipping other sessions' barrier
    /// markers; panics on anything else.
    pub fn expect_publish(&mut self) -> (String, String, Vec<u8>) {
        loop {
            match self.next(Duration::from_secs(20)) {
                Event::Frame(Frame::Publish { payload, .. }) if payload.starts_with(BARRIER) => {}
                Event::Frame(Frame::Publish {
                    ident,
                    channel,
                    payload,
                }) => {
                    return (ident.to_string(), channel.to_string(), payload.to_vec());
                }
                other => panic!("expected a publish, got {other:?}"),
            }
        }
    }

    /// The next frame must be an error; returns its text.
    pub fn expect_error(&mut self) -> String {
        match self.next(Duration::from_secs(20)) {
            Event::Frame(Frame::Error(e)) => e,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    /// The next error frame, past any publishes still on their way (markers of other
    /// sessions' barriers); returns its text.
    pub fn expect_error_past_publishes(&mut self) -> String {
        loop {
            match self.next(Duration::from_secs(20)) {
                Event::Frame(Frame::Error(e)) => return e,
                Event::Frame(Frame::Publish { .. }) => {}
                other => panic!("expected an error frame, got {other:?}"),
            }
        }
    }

    /// The broker must close the connection (barrier markers may still arrive first).
    pub fn expect_closed(&mut self) {
        loop {
            match self.next(Duration::from_secs(20)) {
                Event::Closed => return,
                Event::Frame(Frame::Publish { payload, .. }) if payload.starts_with(BARRIER) => {}
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// An error with exactly `text`, then a close.
    pub fn expect_refusal(&mut self, text: &str) {
        assert_eq!(self.expect_error(), text);
        self.expect_closed();
    }

    /// Whether this connection's auth succeeded, told by a positive answer either way: a
    /// second auth is refused as `already authenticated` after a success, and the first is
    /// answered `Authentication failed` after a failure. Consumes the connection (the
    /// broker closes it); waits as long as the broker takes, not a fixed silence.
    pub fn authenticated(mut self) -> bool {
        let ident = self.ident.clone();
        self.send(&Frame::Auth {
            ident: Ident::new(&ident).unwrap(),
            hash: AuthHash([0; 20]),
        });
        match self.next(Duration::from_secs(20)) {
            Event::Frame(Frame::Error(e)) if e.contains("already authenticated") => true,
            Event::Frame(Frame::Error(e)) if e.starts_with("Authentication failed") => false,
            other => panic!("no verdict on the auth of {ident}: {other:?}"),
        }
    }

    /// Half-closes the sending side, as the C client does after its last publish.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
