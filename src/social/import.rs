//! `hpfriends import`: another broker's authkeys become users, keys and the shares that keep
//! every existing client working unchanged. Those brokers have plain hpfeeds semantics (a
//! subscriber receives every publisher of its channels), so for each channel the owner of a
//! subscribing key receives, through an accepted share, from the owner of every key that
//! publishes on it. Every write goes through the social operations.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::model::{Grantee, ShareKind};
use crate::social::ops::{self, GranteeName, SocialError};
use crate::store::Store;
use crate::store::foreign::ForeignKey;
use crate::wire::{Channel, Ident, Secret};

/// Who the audit log names for imported records.
pub const IMPORT_ACTOR: &str = "import";

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source is not in the format named.
    #[error("{source_name}: {message}")]
    Format {
        /// The file or store.
        source_name: String,
        /// What is wrong, where.
        message: String,
    },
    /// A write failed.
    #[error(transparent)]
    Social(#[from] SocialError),
}

impl From<crate::store::StoreError> for ImportError {
    fn from(e: crate::store::StoreError) -> Self {
        ImportError::Social(SocialError::Store(e))
    }
}

fn format_err(source_name: &str, message: impl std::fmt::Display) -> ImportError {
    ImportError::Format {
        source_name: source_name.to_owned(),
        message: message.to_string(),
    }
}

/// Reads the PyPI hpfeeds broker's JSON store (`--auth json:PATH`):
/// `{ident: {owner, secret, pubchans[], subchans[]}}`.
pub fn parse_hpfeeds_json(name: &str, text: &str) -> Result<Vec<ForeignKey>, ImportError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        owner: String,
        secret: String,
        pubchans: Vec<String>,
        subchans: Vec<String>,
    }
    let map: BTreeMap<String, Entry> = serde_json::from_str(text).map_err(|e| format_err(name, e))?;
    Ok(map
        .into_iter()
        .map(|(ident, e)| ForeignKey {
            owner: if e.owner.is_empty() {
                ident.clone()
            } else {
                e.owner
            },
            ident,
            secret: e.secret,
            publish: e.pubchans,
            subscribe: e.subchans,
        })
        .collect())
}

/// Reads the PyPI hpfeeds broker's environment store (`--auth env`):
/// `HPFEEDS_<IDENT>_SECRET`, `_PUBCHANS`, `_SUBCHANS` (comma-separated), `_OWNER`. 3.1.0
/// looks idents up upper-cased, so any case of the ident authenticates there; here the
/// ident is taken in lower case (the variable name cannot say more).
pub fn parse_hpfeeds_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<ForeignKey> {
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    let list = |v: Option<&String>| -> Vec<String> {
        v.map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    vars.iter()
        .filter_map(|(k, secret)| {
            let upper = k.strip_prefix("HPFEEDS_")?.strip_suffix("_SECRET")?;
            if upper.is_empty() || secret.is_empty() {
                return None;
            }
            let get = |what: &str| vars.get(&format!("HPFEEDS_{upper}_{what}"));
            let ident = upper.to_ascii_lowercase();
            Some(ForeignKey {
                owner: get("OWNER").cloned().unwrap_or_else(|| ident.clone()),
                ident,
                secret: secret.clone(),
                publish: list(get("PUBCHANS")),
                subscribe: list(get("SUBCHANS")),
            })
        })
        .collect()
}

/// Reads `mongoexport` JSON lines of the original broker's and MHN's `auth_key`
/// collection: `{identifier, secret, publish[], subscribe[], owner}` (`_id` and other
/// fields are ignored; `owner` defaults to the identifier).
pub fn parse_mongo_export(name: &str, text: &str) -> Result<Vec<ForeignKey>, ImportError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        identifier: String,
        secret: String,
        #[serde(default)]
        publish: Vec<String>,
        #[serde(default)]
        subscribe: Vec<String>,
        #[serde(default)]
        owner: Option<String>,
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let d: Doc =
            serde_json::from_str(line).map_err(|e| format_err(name, format!("line {}: {e}", n + 1)))?;
        out.push(ForeignKey {
            owner: d
                .owner
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| d.identifier.clone()),
            ident: d.identifier,
            secret: d.secret,
            publish: d.publish,
            subscribe: d.subscribe,
        });
    }
    Ok(out)
}

/// A user name hpfriends accepts for a foreign owner: other characters become `-`.
pub fn user_name_for(owner: &str) -> String {
    let mut name: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name = format!("u{}", name.chars().take(63).collect::<String>());
    }
    name
}

/// What an import will do (or did): printed line by line with `--dry-run`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Users to create (name, the foreign owner).
    pub users: Vec<(String, String)>,
    /// Users that exist already and receive the keys.
    pub existing_users: Vec<String>,
    /// Keys to create: (owner's user name, key).
    pub keys: Vec<(String, ForeignKey)>,
    /// Keys left out, and why (the ident is taken, an invalid name).
    pub skipped: Vec<(String, String)>,
    /// Accepted shares to create: (from user, channel, to user).
    pub shares: Vec<(String, String, String)>,
    /// Addresses for users to create, by user name (the others get a placeholder until
    /// the operator sets one: `user set-email`).
    pub emails: BTreeMap<String, String>,
}

impl Plan {
    /// Steps [`apply`] takes: one per user, key and share.
    pub fn steps(&self) -> usize {
        self.users.len() + self.keys.len() + self.shares.len()
    }

    /// The closing summary.
    pub fn summary(&self) -> String {
        format!(
            "{} user(s) created, {} existing, {} key(s) imported, {} skipped, {} share(s) created",
            self.users.len(),
            self.existing_users.len(),
            self.keys.len(),
            self.skipped.len(),
            self.shares.len()
        )
    }

    /// Every step, one per line.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (u, owner) in &self.users {
            match self.emails.get(u) {
                Some(email) => out.push(format!("create user {u} (owner {owner:?}) with address {email}")),
                None => out.push(format!("create user {u} (owner {owner:?})")),
            }
        }
        for u in &self.existing_users {
            out.push(format!("use existing user {u}"));
        }
        for (u, k) in &self.keys {
            out.push(format!(
                "create key {} for {u}: publish [{}], subscribe [{}]",
                k.ident,
                k.publish.join(","),
                k.subscribe.join(",")
            ));
        }
        for (ident, why) in &self.skipped {
            out.push(format!("skip key {ident}: {why}"));
        }
        for (from, ch, to) in &self.shares {
            out.push(format!("share {ch} from {from} to {to} (accepted)"));
        }
        out
    }
}

impl Plan {
    /// Gives the users to create the addresses `emails` names for their foreign owner (or
    /// their user name here); returns the entries that name no user to create (an existing
    /// user keeps the address it has).
    pub fn address(&mut self, emails: &BTreeMap<String, String>) -> Vec<String> {
        let mut used = BTreeSet::new();
        for (name, owner) in &self.users {
            let found = emails.get_key_value(owner).or_else(|| emails.get_key_value(name));
            if let Some((key, email)) = found {
                used.insert(key.as_str());
                self.emails.insert(name.clone(), email.clone());
            }
        }
        emails
            .keys()
            .filter(|k| !used.contains(k.as_str()))
            .cloned()
            .collect()
    }
}

/// Reads the owners' addresses for `import --emails`: a JSON object `{"owner": "address"}`,
/// or a line `owner,address` per owner (split at the last comma; blank lines and lines
/// starting with `#` are skipped). Every address is checked, and none may be given twice.
pub fn parse_emails(name: &str, text: &str) -> Result<BTreeMap<String, String>, ImportError> {
    let map: BTreeMap<String, String> = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| format_err(name, format!("not a JSON object of owner: address ({e})")))?
    } else {
        let mut map = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((owner, email)) = line.rsplit_once(',') else {
                return Err(format_err(
                    name,
                    format!("line {}: expected OWNER,ADDRESS", i + 1),
                ));
            };
            let owner = owner.trim().trim_matches('"').to_owned();
            if map.insert(owner.clone(), email.trim().to_owned()).is_some() {
                return Err(format_err(
                    name,
                    format!("line {}: owner {owner:?} listed twice", i + 1),
                ));
            }
        }
        map
    };
    let mut seen = BTreeSet::new();
    for (owner, email) in &map {
        if !ops::valid_email(email) || super::accounts::is_placeholder(email) {
            return Err(format_err(
                name,
                format!("owner {owner:?}: invalid email address {email:?}"),
            ));
        }
        if !seen.insert(email.to_lowercase()) {
            return Err(format_err(
                name,
                format!("{email:?} is given to more than one owner"),
            ));
        }
    }
    Ok(map)
}

/// Why `k` cannot be imported, if it cannot.
fn reject(store: &Store, k: &ForeignKey, seen: &mut BTreeSet<String>) -> Result<Option<String>, ImportError> {
    let Ok(ident) = Ident::new(&k.ident) else {
        return Ok(Some("not a valid ident".into()));
    };
    if k.secret.is_empty() {
        return Ok(Some("empty secret".into()));
    }
    if !seen.insert(k.ident.clone()) {
        return Ok(Some("listed twice in the source".into()));
    }
    if store.authkey_owner(&ident).map_err(SocialError::from)?.is_some() {
        return Ok(Some("the ident exists here already".into()));
    }
    Ok(k.publish
        .iter()
        .chain(&k.subscribe)
        .find(|c| Channel::new(c).is_err())
        .map(|c| format!("invalid channel {c:?}")))
}

/// Works out what importing `keys` into `store` does, without writing.
pub fn plan(store: &Store, keys: &[ForeignKey]) -> Result<Plan, ImportError> {
    let mut plan = Plan::default();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_idents = BTreeSet::new();
    for k in keys {
        let why = reject(store, k, &mut seen_idents)?;
        if let Some(why) = why {
            plan.skipped.push((k.ident.clone(), why));
            continue;
        }
        let name = user_name_for(&k.owner);
        owners.insert(k.owner.clone(), name.clone());
        plan.keys.push((name, k.clone()));
    }
    let mut names: BTreeSet<&String> = BTreeSet::new();
    for (owner, name) in &owners {
        if !names.insert(name) {
            continue;
        }
        if store.user_by_name(name).map_err(SocialError::from)?.is_some() {
            plan.existing_users.push(name.clone());
        } else {
            plan.users.push((name.clone(), owner.clone()));
        }
    }
    // Plain hpfeeds: everyone subscribed to a channel receives everyone publishing on it.
    let mut publishers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut subscribers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (user, k) in &plan.keys {
        for c in &k.publish {
            publishers.entry(c).or_default().insert(user);
        }
        for c in &k.subscribe {
            subscribers.entry(c).or_default().insert(user);
        }
    }
    let mut shares = Vec::new();
    for (c, subs) in &subscribers {
        for p in publishers.get(c).into_iter().flatten() {
            for s in subs {
                if p != s {
                    shares.push(((*p).to_owned(), (*c).to_owned(), (*s).to_owned()));
                }
            }
        }
    }
    plan.shares = shares;
    Ok(plan)
}

/// Carries out `plan` through the social operations, calling `step` after each user, key
/// and share (for a progress bar); returns it with what was actually created (a share that
/// exists already is kept, not duplicated).
pub fn apply(store: &Store, mut plan: Plan, step: &dyn Fn()) -> Result<Plan, ImportError> {
    for (name, owner) in &plan.users {
        step();
        let email = plan
            .emails
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{name}@imported.invalid"));
        ops::register(store, name, &email, IMPORT_ACTOR).map_err(|e| format_err(owner, e))?;
    }
    for (user, k) in &plan.keys {
        step();
        let u = ops::find_user(store, user)?;
        let channels = |v: &[String]| v.iter().filter_map(|c| Channel::new(c).ok()).collect::<Vec<_>>();
        ops::create_key(
            store,
            &u,
            Some(Ident::new(&k.ident).map_err(|e| format_err(&k.ident, e))?),
            Some(Secret::new(&k.secret)),
            channels(&k.publish),
            channels(&k.subscribe),
            "imported".into(),
        )?;
    }
    let mut created = Vec::new();
    for (from, ch, to) in plan.shares.drain(..) {
        step();
        let f = ops::find_user(store, &from)?;
        let t = ops::find_user(store, &to)?;
        let channel = Channel::new(&ch).map_err(|e| format_err(&ch, e))?;
        if store
            .live_share(f.id, &channel, Grantee::User(t.id))
            .map_err(SocialError::from)?
            .is_some()
        {
            continue;
        }
        let id = ops::offer_share(
            store,
            &f,
            &channel,
            &GranteeName::User(to.clone()),
            ShareKind::Own,
            false,
        )?;
        ops::answer_share(store, &t, id, true)?;
        created.push((from, ch, to));
    }
    plan.shares = created;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_addresses_are_read_as_lines_or_json_and_checked() {
        let lines = "# owner,address\n\nSensor Org, ops@sensor.example\n\"a, b\",ab@x.example\n";
        let m = parse_emails("e.csv", lines).unwrap();
        assert_eq!(m["Sensor Org"], "ops@sensor.example");
        assert_eq!(m["a, b"], "ab@x.example");
        let m = parse_emails("e.json", r#"{"analyst": "a@uni.example"}"#).unwrap();
        assert_eq!(m["analyst"], "a@uni.example");
        for (bad, why) in [
            ("x\n", "expected OWNER,ADDRESS"),
            ("a,a@x.example\na,b@x.example\n", "listed twice"),
            ("a,nobody\n", "invalid email address"),
            ("a,a@imported.invalid\n", "invalid email address"),
            ("a,s@x.example\nb,S@x.example\n", "more than one owner"),
            ("{\"a\": 1}", "not a JSON object"),
        ] {
            let e = parse_emails("f", bad).unwrap_err().to_string();
            assert!(e.starts_with("f: ") && e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn addresses_go_to_users_made_for_their_owner_or_name() {
        let mut plan = Plan {
            users: vec![
                ("Sensor-Org".into(), "Sensor Org".into()),
                ("analyst".into(), "analyst".into()),
            ],
            ..Plan::default()
        };
        let emails: BTreeMap<String, String> = [
            ("Sensor Org", "ops@sensor.example"),
            ("analyst", "a@uni.example"),
            ("stranger", "s@x.example"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(plan.address(&emails), vec!["stranger".to_owned()]);
        assert_eq!(plan.emails["Sensor-Org"], "ops@sensor.example");
        assert_eq!(plan.emails["analyst"], "a@uni.example");
        assert!(plan.lines()[0].ends_with("with address ops@sensor.example"));
    }
}
