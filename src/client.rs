//! A small async hpfeeds client for the `pub` and `sub` commands.
//!
//! It speaks exactly what every client does: read info, answer with auth, then publish or
//! subscribe. hpfeeds acknowledges nothing, so [`Client::finish`] half-closes and reads to
//! EOF: a refused auth or channel then surfaces as the broker's error text.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Decoder;

use crate::wire::codec::CodecError;
use crate::wire::{AuthHash, Channel, Frame, FrameCodec, Ident, Limits, Secret, WireError};

/// Largest publish the client accepts from a broker (brokers may allow more than 1 MiB).
pub const CLIENT_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed (an untrusted certificate, a wrong name, not TLS at all).
    #[error("TLS with {addr} failed: {message}")]
    Tls {
        /// The address tried.
        addr: String,
        /// Why.
        message: String,
    },
    /// The broker sent bytes that are not hpfeeds.
    #[error("broker sent an invalid frame: {0}")]
    Wire(#[from] WireError),
    /// The broker sent an error frame.
    #[error("broker said: {0}")]
    Broker(String),
    /// The broker closed the connection.
    #[error("broker closed the connection")]
    Closed,
    /// The broker sent a frame a broker should not send at this point.
    #[error("unexpected {0} frame from the broker")]
    Unexpected(&'static str),
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Wire(w) => Self::Wire(w),
            CodecError::Io(i) => Self::Io(i),
        }
    }
}

/// The connection under the frames: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl Stream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        }
    }
}

/// TLS for [`Client::connect`]: the configuration and the name the certificate must carry.
#[derive(Clone)]
pub struct TlsTo {
    /// Trusted roots and protocol settings ([`crate::tls::client_config`]).
    pub config: Arc<rustls::ClientConfig>,
    /// The broker's host name (or address) as its certificate names it.
    pub name: String,
}

/// An authenticated (as far as hpfeeds can tell) connection to a broker.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    buf: BytesMut,
    codec: FrameCodec,
    ident: Ident,
    broker_name: String,
}

impl Client {
    /// Connects to `addr` (`host:port`), over TLS when `tls` says so, reads the info frame
    /// and sends auth.
    pub async fn connect(
        addr: &str,
        tls: Option<&TlsTo>,
        ident: Ident,
        secret: &Secret,
    ) -> Result<Client, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        tcp.set_nodelay(true)?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(t) => {
                let failed = |message: String| ClientError::Tls {
                    addr: addr.to_owned(),
                    message,
                };
                let name =
                    rustls::pki_types::ServerName::try_from(t.name.trim_matches(['[', ']']).to_owned())
                        .map_err(|e| failed(e.to_string()))?;
                let s = tokio_rustls::TlsConnector::from(Arc::clone(&t.config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                Stream::Tls(Box::new(s))
            }
        };
        let mut c = Client {
            stream,
            buf: BytesMut::with_capacity(4096),
            codec: FrameCodec::new(Limits::with_max_payload(CLIENT_MAX_PAYLOAD)),
            ident,
            broker_name: String::new(),
        };
        let (name, nonce) = match c.next_frame().await? {
            Some(Frame::Info { name, nonce }) => (name, nonce),
            Some(Frame::Error(e)) => return Err(ClientError::Broker(e)),
            Some(other) => return Err(ClientError::Unexpected(other.opcode().name())),
            None => return Err(ClientError::Closed),
        };
        c.broker_name = name;
        let auth = Frame::Auth {
            ident: c.ident.clone(),
            hash: AuthHash::compute(&nonce, secret),
        };
        c.send(&auth).await?;
        Ok(c)
    }

    /// The name the broker gave in its info frame.
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), ClientError> {
        let bytes = frame.to_bytes()?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    /// Publishes one message.
    pub async fn publish(&mut self, channel: &Channel, payload: Bytes) -> Result<(), ClientError> {
        let f = Frame::Publish {
            ident: self.ident.clone(),
            channel: channel.clone(),
            payload,
        };
        self.send(&f).await
    }

    /// Subscribes to a channel (nothing acknowledges it).
    pub async fn subscribe(&mut self, channel: &Channel) -> Result<(), ClientError> {
        let f = Frame::Subscribe {
            ident: self.ident.clone(),
            channel: channel.clone(),
        };
        self.send(&f).await
    }

    /// Unsubscribes from a channel.
    pub async fn unsubscribe(&mut self, channel: &Channel) -> Result<(), ClientError> {
        let f = Frame::Unsubscribe {
            ident: self.ident.clone(),
            channel: channel.clone(),
        };
        self.send(&f).await
    }

    /// The next frame from the broker; `None` on a clean EOF.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, ClientError> {
        loop {
            if let Some(rx) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(rx.frame));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ClientError::Closed)
                };
            }
        }
    }

    /// Half-closes and reads until the broker closes: `Ok` when it said nothing, the
    /// broker's error text otherwise. Use after publishing to learn whether it was refused.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        self.stream.shutdown().await?;
        let mut first_error = None;
        while let Some(f) = self.next_frame().await? {
            if let Frame::Error(e) = f {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(ClientError::Broker(e)),
            None => Ok(()),
        }
    }
}
