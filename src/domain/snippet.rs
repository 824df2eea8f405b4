//! Ready-made client configurations for one key, with the broker's real address, the key's
//! ident and its channels filled in: cowrie's `[output_hpfeeds3]` section, dionaea's hpfeeds
//! ihandler, and short Python (PyPI hpfeeds 3.1) and Go (d1str0/hpfeeds) programs. What a
//! researcher pastes into the honeypot they already run, instead of placeholders.

use std::fmt::Write as _;

use crate::wire::Channel;

/// What the configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// cowrie's `etc/cowrie.cfg`, the `output_hpfeeds3` plugin.
    Cowrie,
    /// dionaea's `ihandlers-enabled/hpfeeds.yaml`.
    Dionaea,
    /// A Python program with the PyPI `hpfeeds` package.
    Python,
    /// A Go program with `github.com/d1str0/hpfeeds`.
    Go,
}

impl Target {
    /// Every target, in the order pages show them.
    pub const ALL: [Target; 4] = [Target::Cowrie, Target::Dionaea, Target::Python, Target::Go];

    /// The name `--for` and the pages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Cowrie => "cowrie",
            Target::Dionaea => "dionaea",
            Target::Python => "python",
            Target::Go => "go",
        }
    }

    /// Where the text goes.
    pub fn file(self) -> &'static str {
        match self {
            Target::Cowrie => "etc/cowrie.cfg (add the section; cowrie restarts to read it)",
            Target::Dionaea => "etc/dionaea/ihandlers-enabled/hpfeeds.yaml",
            Target::Python => "a .py file (pip install hpfeeds)",
            Target::Go => "main.go (go get github.com/d1str0/hpfeeds)",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("no configuration for {s:?}: one of cowrie, dionaea, python, go"))
    }
}

/// Where clients reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address clients connect to.
    pub host: String,
    /// The plain hpfeeds port.
    pub port: u16,
    /// The TLS listener's port, when it runs.
    pub tls_port: Option<u16>,
}

/// The key a configuration is for.
#[derive(Debug, Clone, Copy)]
pub struct KeyFacts<'a> {
    /// The key's ident.
    pub ident: &'a str,
    /// Its secret when it may be shown (just made or rotated); otherwise a placeholder.
    pub secret: Option<&'a str>,
    /// Channels it may publish on.
    pub publish: &'a [Channel],
    /// Channels it subscribes to.
    pub subscribe: &'a [Channel],
}

/// What stands for a secret that is not shown again.
pub const SECRET_PLACEHOLDER: &str = "THE-KEY-SECRET";

/// The channels dionaea's hpfeeds ihandler publishes on.
pub const DIONAEA_CHANNELS: &[&str] = &[
    "dionaea.capture",
    "dionaea.connections",
    "dionaea.dcerpcrequests",
    "dionaea.shellcodeprofiles",
    "mwbinary.dionaea.sensorunique",
];

fn names(list: &[Channel]) -> Vec<&str> {
    list.iter().map(Channel::as_str).collect()
}

/// The configuration text for `target`.
pub fn render(target: Target, broker: &Broker, key: &KeyFacts<'_>) -> String {
    let secret = key.secret.unwrap_or(SECRET_PLACEHOLDER);
    let mut out = String::new();
    match target {
        Target::Cowrie => {
            let listed = names(key.publish);
            let channel = listed
                .iter()
                .find(|c| **c == "cowrie.sessions")
                .or_else(|| listed.iter().find(|c| c.starts_with("cowrie")))
                .or_else(|| listed.first())
                .copied()
                .unwrap_or("cowrie.sessions");
            let _ = writeln!(out, "[output_hpfeeds3]\nenabled = true");
            let _ = writeln!(out, "server = {}", broker.host);
            match broker.tls_port {
                Some(p) => {
                    let _ = writeln!(out, "port = {p}");
                    let _ = writeln!(
                        out,
                        "# the CA that signed the broker's certificate (PEM), for TLS:\ntlscert = /etc/cowrie/hpfriends-ca.pem"
                    );
                }
                None => {
                    let _ = writeln!(out, "port = {}", broker.port);
                }
            }
            let _ = writeln!(
                out,
                "identifier = {}\nsecret = {secret}\nchannel = {channel}",
                key.ident
            );
            if !listed.contains(&channel) {
                let _ = writeln!(
                    out,
                    "# this key publishes on none of cowrie's channels yet: add {channel} to its publish list"
                );
            }
        }
        Target::Dionaea => {
            let _ = writeln!(out, "- name: hpfeeds\n  config:");
            let _ = writeln!(out, "    server: \"{}\"\n    port: {}", broker.host, broker.port);
            let _ = writeln!(out, "    ident: \"{}\"\n    secret: \"{secret}\"", key.ident);
            let _ = writeln!(out, "    # reconnect_timeout: 10.0");
            let listed = names(key.publish);
            let missing: Vec<&str> = DIONAEA_CHANNELS
                .iter()
                .copied()
                .filter(|c| !listed.contains(c))
                .collect();
            if !missing.is_empty() {
                let _ = writeln!(
                    out,
                    "# dionaea publishes on {}; this key may not publish on {} yet",
                    DIONAEA_CHANNELS.join(", "),
                    missing.join(", ")
                );
            }
        }
        Target::Python => {
            let tls = broker
                .tls_port
                .map_or(String::new(), |p| format!("  # over TLS: port {p}, tls=True"));
            let _ = writeln!(out, "import hpfeeds\n");
            let _ = writeln!(
                out,
                "client = hpfeeds.new('{}', {}, '{}', '{secret}'){tls}",
                broker.host, broker.port, key.ident
            );
            if let Some(c) = key.publish.first() {
                let _ = writeln!(
                    out,
                    "client.publish('{}', b'{{\"hello\": \"hpfriends\"}}')",
                    c.as_str()
                );
            }
            if !key.subscribe.is_empty() {
                let list = names(key.subscribe)
                    .iter()
                    .map(|c| format!("'{c}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let _ = writeln!(
                    out,
                    "\n\ndef on_message(ident, channel, payload):\n    print(ident, channel, payload)\n\n\nclient.subscribe([{list}])\nclient.run(on_message, print)"
                );
            } else {
                let _ = writeln!(out, "client.stop()");
            }
        }
        Target::Go => {
            let _ = writeln!(
                out,
                "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/d1str0/hpfeeds\"\n)\n\nfunc main() {{"
            );
            let _ = writeln!(
                out,
                "\thp := hpfeeds.NewClient(\"{}\", {}, \"{}\", \"{secret}\")\n\tif err := hp.Connect(); err != nil {{\n\t\tpanic(err)\n\t}}",
                broker.host, broker.port, key.ident
            );
            if let Some(c) = key.publish.first() {
                let _ = writeln!(
                    out,
                    "\tout := make(chan []byte)\n\thp.Publish(\"{}\", out)\n\tout <- []byte(`{{\"hello\": \"hpfriends\"}}`)",
                    c.as_str()
                );
            }
            if let Some(c) = key.subscribe.first() {
                let _ = writeln!(
                    out,
                    "\tin := make(chan hpfeeds.Message)\n\thp.Subscribe(\"{}\", in)\n\tfor m := range in {{\n\t\tfmt.Println(m.Name, string(m.Payload))\n\t}}",
                    c.as_str()
                );
            } else {
                let _ = writeln!(out, "\t<-hp.Disconnected");
            }
            let _ = writeln!(out, "}}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(names: &[&str]) -> Vec<Channel> {
        names.iter().map(|c| Channel::new(c).unwrap()).collect()
    }

    #[test]
    fn cowrie_gets_its_section_with_the_real_address_and_channel() {
        let broker = Broker {
            host: "hp.example.org".into(),
            port: 10000,
            tls_port: None,
        };
        let publish = ch(&["cowrie.sessions"]);
        let key = KeyFacts {
            ident: "k1",
            secret: Some("s3cret"),
            publish: &publish,
            subscribe: &[],
        };
        let text = render(Target::Cowrie, &broker, &key);
        assert!(
            text.starts_with("[output_hpfeeds3]\nenabled = true\nserver = hp.example.org\nport = 10000\n")
        );
        assert!(text.contains("identifier = k1\nsecret = s3cret\nchannel = cowrie.sessions\n"));
        assert!(!text.contains('#'), "{text}");
        let tls = Broker {
            tls_port: Some(10443),
            ..broker
        };
        let unlisted = KeyFacts {
            secret: None,
            publish: &[],
            ..key
        };
        let text = render(Target::Cowrie, &tls, &unlisted);
        assert!(
            text.contains("port = 10443\n") && text.contains("tlscert = "),
            "{text}"
        );
        assert!(text.contains(&format!("secret = {SECRET_PLACEHOLDER}")));
        assert!(text.contains("add cowrie.sessions to its publish list"), "{text}");
    }

    #[test]
    fn dionaea_python_and_go_name_the_keys_channels() {
        let broker = Broker {
            host: "hp.example.org".into(),
            port: 10000,
            tls_port: None,
        };
        let (publish, subscribe) = (ch(&["dionaea.capture"]), ch(&["a.b", "c.d"]));
        let key = KeyFacts {
            ident: "k1",
            secret: None,
            publish: &publish,
            subscribe: &subscribe,
        };
        let d = render(Target::Dionaea, &broker, &key);
        assert!(
            d.contains("server: \"hp.example.org\"\n    port: 10000\n    ident: \"k1\""),
            "{d}"
        );
        assert!(d.contains("may not publish on dionaea.connections"), "{d}");
        let p = render(Target::Python, &broker, &key);
        assert!(
            p.contains("hpfeeds.new('hp.example.org', 10000, 'k1', 'THE-KEY-SECRET')"),
            "{p}"
        );
        assert!(
            p.contains("client.publish('dionaea.capture'") && p.contains("client.subscribe(['a.b', 'c.d'])"),
            "{p}"
        );
        let g = render(Target::Go, &broker, &key);
        assert!(
            g.contains("hpfeeds.NewClient(\"hp.example.org\", 10000, \"k1\"")
                && g.contains("hp.Subscribe(\"a.b\", in)"),
            "{g}"
        );
        assert_eq!("go".parse::<Target>(), Ok(Target::Go));
        assert!("ruby".parse::<Target>().is_err());
    }
}
