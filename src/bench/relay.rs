//! `hpfriends bench relay`: the floor the benchmarks compare the broker against. A bare
//! relay that speaks just enough hpfeeds for the load generator (an info frame, any auth
//! accepted, subscribe, publish) and forwards each publisher's frame bytes to the
//! subscribers of the channel with blocking writes: no ACL, no checks, no queues, so no
//! loss and nothing a real broker needs. One thread per connection. By default every run
//! of frames on one channel that arrived in one read goes out as one write per subscriber:
//! bytes copied between sockets and nothing else, the floor. `per_frame` makes each frame
//! its own blocking write instead (a naive relay, far below the floor for small frames).
//!
//! Never a broker to run: it authenticates nobody.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

/// Read buffer per connection: room for a 64 KiB publish and more.
const READ: usize = 256 * 1024;

type Subscribers = Arc<Mutex<TcpStream>>;

#[derive(Default)]
struct Channels {
    by_name: RwLock<HashMap<Vec<u8>, Arc<Vec<Subscribers>>>>,
    per_frame: bool,
}

/// Serves the relay on `listener` until the process ends; `per_frame`: one write per frame
/// instead of one per run of frames.
pub fn run(listener: &TcpListener, per_frame: bool) -> io::Result<()> {
    let channels = Arc::new(Channels {
        per_frame,
        ..Channels::default()
    });
    for stream in listener.incoming() {
        let stream = stream?;
        let channels = Arc::clone(&channels);
        std::thread::Builder::new()
            .name("relay-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = serve(stream, &channels);
            })?;
    }
    Ok(())
}

fn serve(stream: TcpStream, channels: &Channels) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let writer: Subscribers = Arc::new(Mutex::new(stream.try_clone()?));
    // Info: name "relay" and a fixed nonce (nobody is authenticated).
    let mut info = Vec::new();
    info.extend_from_slice(&(5 + 1 + 5 + 4u32).to_be_bytes());
    info.push(1);
    info.push(5);
    info.extend_from_slice(b"relay");
    info.extend_from_slice(&[0, 0, 0, 0]);
    writer.lock().write_all(&info)?;
    let mut reader = stream;
    let mut buf = vec![0u8; READ];
    let mut have = 0usize;
    let mut mine: Vec<Vec<u8>> = Vec::new();
    let result = loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match reader.read(&mut buf[have..]) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        have += n;
        let used = forward(&buf[..have], channels, &writer, &mut mine);
        buf.copy_within(used..have, 0);
        have -= used;
    };
    let mut map = channels.by_name.write();
    for ch in mine {
        if let Some(list) = map.get_mut(&ch) {
            Arc::make_mut(list).retain(|s| !Arc::ptr_eq(s, &writer));
        }
    }
    result
}

/// Handles every complete frame in `data`; returns the bytes used.
fn forward(data: &[u8], channels: &Channels, me: &Subscribers, mine: &mut Vec<Vec<u8>>) -> usize {
    let mut at = 0;
    // A run of publishes on one channel: (channel, start, end).
    let mut run: Option<(&[u8], usize, usize)> = None;
    while data.len() - at >= 5 {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        if len < 5 || data.len() - at < len {
            break;
        }
        let frame = &data[at..at + len];
        let body = &frame[5..];
        match frame[4] {
            3 => {
                let channel = super::publish_parts(body).map_or(&[][..], |(c, _)| c);
                if channels.per_frame {
                    send(channels, channel, frame);
                    at += len;
                    continue;
                }
                match &mut run {
                    Some((ch, _, end)) if *ch == channel => *end = at + len,
                    _ => {
                        if let Some((ch, s, e)) = run.take() {
                            send(channels, ch, &data[s..e]);
                        }
                        run = Some((channel, at, at + len));
                    }
                }
            }
            4 => {
                if let Some((ch, s, e)) = run.take() {
                    send(channels, ch, &data[s..e]);
                }
                let il = usize::from(body.first().copied().unwrap_or(0));
                let ch = body.get(1 + il..).unwrap_or_default().to_vec();
                let mut map = channels.by_name.write();
                Arc::make_mut(map.entry(ch.clone()).or_default()).push(Arc::clone(me));
                mine.push(ch);
            }
            _ => {} // auth (accepted unseen), unsubscribe (ignored)
        }
        at += len;
    }
    if let Some((ch, s, e)) = run {
        send(channels, ch, &data[s..e]);
    }
    at
}

/// Blocking writes of `bytes` to every subscriber of `channel`, one after the other.
fn send(channels: &Channels, channel: &[u8], bytes: &[u8]) {
    let Some(subs) = channels.by_name.read().get(channel).cloned() else {
        return;
    };
    for s in subs.iter() {
        let _ = s.lock().write_all(bytes);
    }
}
