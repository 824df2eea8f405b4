//! `hpfriends pub` and `hpfriends sub`: a plain hpfeeds client for scripts and for trying a
//! broker out (this one or any other).

use std::io::{Read, Write};

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use clap::Args;

use super::{parse_channel, parse_ident};
use crate::client::Client;
use crate::wire::{Channel, Frame, Ident, Secret};

/// A runtime for one client's work: one thread is plenty.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Where a client connects and as whom.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 10000)]
    pub port: u16,
    /// Authkey ident.
    #[arg(long, value_parser = parse_ident)]
    pub ident: Ident,
    /// Authkey secret.
    #[arg(long, env = "HPFRIENDS_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Speak TLS (the broker's TLS listener, e.g. port 10443), checking its certificate.
    #[arg(long)]
    pub tls: bool,
    /// The CA (PEM) the broker's certificate must chain to, for a private CA or a
    /// self-signed certificate [default: the Mozilla roots]; implies --tls.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
}

/// Options of `pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Channel to publish on.
    #[arg(long, value_parser = parse_channel)]
    channel: Channel,
    /// Each line of standard input is one message (instead of all of it as one).
    #[arg(long)]
    lines: bool,
    /// The message; `-` or nothing reads standard input.
    message: Option<String>,
}

/// Options of `sub`.
#[derive(Debug, Args)]
pub struct SubArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Channels to subscribe to (repeat, or separate with commas).
    #[arg(long, required = true, num_args = 1.., value_delimiter = ',', value_parser = parse_channel)]
    channel: Vec<Channel>,
    /// Print JSON lines: channel, ident, payload, encoding ("utf8" or "base64").
    #[arg(long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
}

async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let addr = format!("{}:{}", args.host, args.port);
    let tls = if args.tls || args.ca.is_some() {
        Some(crate::client::TlsTo {
            config: crate::tls::client_config(args.ca.as_deref())?,
            name: args.host.clone(),
        })
    } else {
        None
    };
    Ok(Client::connect(
        &addr,
        tls.as_ref(),
        args.ident.clone(),
        &Secret::new(args.secret.clone()),
    )
    .await?)
}

/// `pub`: one message, or one per line of standard input.
pub(super) async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.client).await?;
    match args.message.as_deref() {
        Some(m) if m != "-" => client.publish(&args.channel, Bytes::from(m.to_owned())).await?,
        _ => {
            let mut input = Vec::new();
            std::io::stdin()
                .read_to_end(&mut input)
                .context("reading standard input")?;
            if args.lines {
                for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    client
                        .publish(&args.channel, Bytes::copy_from_slice(line))
                        .await?;
                }
            } else {
                client.publish(&args.channel, Bytes::from(input)).await?;
            }
        }
    }
    client.finish().await?;
    Ok(())
}

/// One received message as a line of text: `channel ident payload`, the payload as is when
/// it is printable UTF-8 and as `base64:…` otherwise.
fn text_line(channel: &Channel, ident: &Ident, payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{channel} {ident} {s}"),
        _ => format!(
            "{channel} {ident} base64:{}",
            base64::engine::general_purpose::STANDARD.encode(payload)
        ),
    }
}

fn json_line(channel: &Channel, ident: &Ident, payload: &[u8]) -> String {
    let (payload, encoding) = match std::str::from_utf8(payload) {
        Ok(s) => (s.to_owned(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(payload),
            "base64",
        ),
    };
    serde_json::json!({
        "channel": channel.as_str(), "ident": ident.as_str(),
        "payload": payload, "encoding": encoding,
    })
    .to_string()
}

/// `sub`: prints each message received until `--count` or the broker closes.
pub(super) async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let mut client = connect(&args.client).await?;
    for c in &args.channel {
        client.subscribe(c).await?;
    }
    let mut received = 0u64;
    let mut last_error = None;
    let mut out = std::io::stdout().lock();
    while args.count.is_none_or(|n| received < n) {
        match client.next_frame().await? {
            Some(Frame::Publish {
                ident,
                channel,
                payload,
            }) => {
                let line = if args.json {
                    json_line(&channel, &ident, &payload)
                } else {
                    text_line(&channel, &ident, &payload)
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(()); // stdout closed (e.g. piped into head): done
                }
                received += 1;
            }
            Some(Frame::Error(e)) => {
                eprintln!("broker: {e}");
                last_error = Some(e);
            }
            Some(other) => bail!("unexpected {} frame from the broker", other.opcode().name()),
            None => match last_error {
                Some(e) => bail!("broker closed the connection: {e}"),
                None => bail!("broker closed the connection"),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_escape_binary() {
        let c = Channel::new("c").unwrap();
        let i = Ident::new("i").unwrap();
        assert_eq!(text_line(&c, &i, b"hello world"), "c i hello world");
        assert_eq!(text_line(&c, &i, b"a\nb"), "c i base64:YQpi");
        assert_eq!(
            json_line(&c, &i, &[0xff]),
            r#"{"channel":"c","encoding":"base64","ident":"i","payload":"/w=="}"#
        );
    }
}
