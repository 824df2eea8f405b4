//! `hpfriends export`: the community as JSON (users, keys, groups, shares with their
//! followers, blocks), secrets only when asked; and the import of such a file into another
//! database, through the social operations, so that an export of the result is the same.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::limits::PER_PAGE;
use crate::domain::model::{Grantee, GroupRole, MemberState, ShareKind, ShareState};
use crate::domain::{GroupId, UserId};
use crate::social::ops::{self, GranteeName, SocialError};
use crate::store::Store;
use crate::wire::{Channel, Ident, Secret};

/// What an export file says it is.
pub const FORMAT: &str = "hpfriends-export";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Always [`FORMAT`].
    pub format: String,
    /// Of the layout: 1.
    pub version: u32,
    /// By name.
    pub users: Vec<ExportUser>,
    /// By ident.
    pub authkeys: Vec<ExportKey>,
    /// By name.
    pub groups: Vec<ExportGroup>,
    /// Offered, accepted and declined shares, by sharer, channel and grantee (ended ones are
    /// history, not state, and are left out).
    pub shares: Vec<ExportShare>,
    /// (blocker, blocked), sorted.
    pub blocks: Vec<(String, String)>,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportUser {
    /// Login name.
    pub name: String,
    /// Mail address.
    pub email: String,
    /// Whether the account (and so its keys) works.
    pub enabled: bool,
}

/// An authkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportKey {
    /// What clients send.
    pub ident: String,
    /// The owning user.
    pub owner: String,
    /// Whether it works.
    pub enabled: bool,
    /// Its publish channels.
    pub publish: Vec<String>,
    /// Its subscribe channels.
    pub subscribe: Vec<String>,
    /// The owner's note.
    pub comment: String,
    /// Only with `--include-secrets`; imported without one, a key gets a new random secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportGroup {
    /// Its name.
    pub name: String,
    /// Who created it.
    pub owner: String,
    /// What it is for.
    pub description: String,
    /// Active members other than the owner, by name.
    pub members: Vec<String>,
    /// Invited, not yet accepted, by name.
    pub invited: Vec<String>,
}

/// Whom a share is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportGrantee {
    /// A user, by name.
    User(String),
    /// A group, by name.
    Group(String),
    /// Everyone (a public offer).
    Everyone,
}

/// A share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportShare {
    /// The sharer.
    pub from: String,
    /// The channel.
    pub channel: String,
    /// The grantee.
    pub to: ExportGrantee,
    /// `own` or `redistribute`.
    pub kind: String,
    /// Whether the grantee may pass it on.
    pub onward: bool,
    /// `offered`, `accepted` or `declined`.
    pub state: String,
    /// For a public offer: the users who took it up, by name.
    pub followers: Vec<String>,
}

fn name_of(names: &HashMap<UserId, String>, id: UserId) -> String {
    names.get(&id).cloned().unwrap_or_else(|| format!("#{}", id.0))
}

impl Export {
    /// What the file holds, as every command that reports on one says it.
    pub fn counts(&self) -> String {
        format!(
            "{} user(s), {} key(s), {} group(s), {} share(s), {} block(s)",
            self.users.len(),
            self.authkeys.len(),
            self.groups.len(),
            self.shares.len(),
            self.blocks.len()
        )
    }

    /// How many items [`import`] creates one by one (for a progress bar).
    pub fn steps(&self) -> usize {
        self.users.len() + self.authkeys.len() + self.groups.len() + self.blocks.len() + self.shares.len()
    }
}

/// Reads the whole community; secrets only when `secrets`. Groups are read one by one (their
/// members a page at a time): `progress(done, all)` is told after each.
pub fn export(store: &Store, secrets: bool, progress: &dyn Fn(usize, usize)) -> Result<Export, SocialError> {
    let users = store.users()?;
    let names: HashMap<UserId, String> = users.iter().map(|u| (u.id, u.name.clone())).collect();
    let graph = store.load_graph()?;
    let secret_of: HashMap<String, String> = graph
        .keys
        .iter()
        .map(|k| (k.ident.to_string(), k.secret.expose().to_owned()))
        .collect();
    let mut authkeys: Vec<ExportKey> = store
        .authkeys()?
        .into_iter()
        .map(|k| ExportKey {
            secret: secrets
                .then(|| secret_of.get(k.ident.as_str()).cloned())
                .flatten(),
            ident: k.ident.to_string(),
            owner: k.owner,
            enabled: k.enabled,
            publish: k.publish.iter().map(|c| c.to_string()).collect(),
            subscribe: k.subscribe.iter().map(|c| c.to_string()).collect(),
            comment: k.comment,
        })
        .collect();
    authkeys.sort_by(|a, b| a.ident.cmp(&b.ident));
    let mut group_names: HashMap<GroupId, String> = HashMap::new();
    let mut groups = Vec::new();
    let all_groups = store.all_groups()?;
    let group_count = all_groups.len();
    for (done, (id, name)) in all_groups.into_iter().enumerate() {
        progress(done, group_count);
        group_names.insert(id, name.clone());
        let (mut members, mut invited, mut owner) = (Vec::new(), Vec::new(), String::new());
        let mut page = 0;
        loop {
            let (rows, more) = store.group_members_page(id, page, PER_PAGE)?;
            for (n, role, state) in rows {
                match (role, state) {
                    (GroupRole::Owner, _) => owner = n,
                    (_, MemberState::Active) => members.push(n),
                    (_, MemberState::Invited) => invited.push(n),
                }
            }
            if !more {
                break;
            }
            page += 1;
        }
        let description = store
            .user_by_name(&owner)?
            .map(|u| store.groups_of(u.id))
            .transpose()?
            .and_then(|gs| gs.into_iter().find(|g| g.id == id))
            .map(|g| g.description)
            .unwrap_or_default();
        groups.push(ExportGroup {
            name,
            owner,
            description,
            members,
            invited,
        });
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let mut followers: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (share, user) in &graph.follows {
        followers.entry(share.0).or_default().push(name_of(&names, *user));
    }
    let mut shares: Vec<ExportShare> = graph
        .shares
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                ShareState::Offered | ShareState::Accepted | ShareState::Declined
            )
        })
        .map(|s| {
            let mut f = followers.get(&s.id.0).cloned().unwrap_or_default();
            f.sort();
            ExportShare {
                from: name_of(&names, s.from),
                channel: s.channel.to_string(),
                to: match s.to {
                    Grantee::User(u) => ExportGrantee::User(name_of(&names, u)),
                    Grantee::Group(g) => {
                        ExportGrantee::Group(group_names.get(&g).cloned().unwrap_or_default())
                    }
                    Grantee::Everyone => ExportGrantee::Everyone,
                },
                kind: s.kind.to_string(),
                onward: s.onward,
                state: s.state.to_string(),
                followers: f,
            }
        })
        .collect();
    shares.sort_by(|a, b| (&a.from, &a.channel, &a.to).cmp(&(&b.from, &b.channel, &b.to)));
    let mut blocks: Vec<(String, String)> = graph
        .blocks
        .iter()
        .map(|(a, b)| (name_of(&names, *a), name_of(&names, *b)))
        .collect();
    blocks.sort();
    let mut users: Vec<ExportUser> = users
        .into_iter()
        .map(|u| ExportUser {
            name: u.name,
            email: u.email,
            enabled: u.enabled,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Export {
        format: FORMAT.into(),
        version: 1,
        users,
        authkeys,
        groups,
        shares,
        blocks,
    })
}

fn invalid(what: impl std::fmt::Display) -> SocialError {
    SocialError::Invalid(what.to_string())
}

/// Most problems [`check`] lists before it stops looking.
const MAX_PROBLEMS: usize = 20;

/// Everything [`import`] would refuse, found before anything is written: the file's own
/// consistency (names, addresses, idents, channels, free text, who refers to whom) and its
/// clashes with what `store` holds. An import writes through the social operations, one
/// record at a time, so it checks the whole file first: a file that passes is written
/// whole (short of the database failing meanwhile), one that does not leaves the database
/// as it was. `--dry-run` runs exactly this.
pub fn check(store: &Store, e: &Export) -> Result<(), SocialError> {
    use crate::config::limits::{MAX_GROUP_DESCRIPTION, MAX_KEY_COMMENT, MAX_SECRET_LEN};
    use crate::domain::text::problem;
    use std::collections::BTreeSet;
    if e.format != FORMAT || e.version != 1 {
        return Err(invalid(format!("not an {FORMAT} version 1 file")));
    }
    let mut problems: Vec<String> = Vec::new();
    let mut users = BTreeSet::new();
    for u in &e.users {
        if !ops::valid_name(&u.name) {
            problems.push(format!("user {:?}: not a valid user name", u.name));
        }
        let email = u.email.trim();
        if !ops::valid_email(email) {
            problems.push(format!("user {:?}: invalid email address {email:?}", u.name));
        }
        if !users.insert(u.name.to_lowercase()) {
            problems.push(format!("user {:?} appears twice", u.name));
        }
        if store.user_by_name(&u.name)?.is_some() {
            problems.push(format!("user {:?} exists already in this database", u.name));
        }
    }
    let known = |name: &str| -> Result<bool, SocialError> {
        Ok(users.contains(&name.to_lowercase()) || store.user_by_name(name)?.is_some())
    };
    let mut idents = BTreeSet::new();
    for k in &e.authkeys {
        match Ident::new(&k.ident) {
            Ok(i) => {
                if store.authkey_owner(&i)?.is_some() {
                    problems.push(format!("authkey {:?} exists already in this database", k.ident));
                }
            }
            Err(err) => problems.push(format!("authkey {:?}: {err}", k.ident)),
        }
        if !idents.insert(k.ident.clone()) {
            problems.push(format!("authkey {:?} appears twice", k.ident));
        }
        if !known(&k.owner)? {
            problems.push(format!("authkey {:?}: no user {:?}", k.ident, k.owner));
        }
        for c in k.publish.iter().chain(&k.subscribe) {
            if let Err(err) = Channel::new(c) {
                problems.push(format!("authkey {:?}: channel {c:?}: {err}", k.ident));
            }
        }
        if let Some(p) = problem(&k.comment, MAX_KEY_COMMENT, false) {
            problems.push(format!("authkey {:?}: comment: {p}", k.ident));
        }
        if let Some(secret) = &k.secret
            && (secret.is_empty() || secret.len() > MAX_SECRET_LEN)
        {
            problems.push(format!(
                "authkey {:?}: the secret must be 1 to {MAX_SECRET_LEN} bytes",
                k.ident
            ));
        }
    }
    let mut groups = BTreeSet::new();
    for g in &e.groups {
        if !ops::valid_name(&g.name) {
            problems.push(format!("group {:?}: not a valid group name", g.name));
        }
        if !groups.insert(g.name.to_lowercase()) {
            problems.push(format!("group {:?} appears twice", g.name));
        }
        if store.group_by_name(&g.name)?.is_some() {
            problems.push(format!("group {:?} exists already in this database", g.name));
        }
        if let Some(p) = problem(&g.description, MAX_GROUP_DESCRIPTION, true) {
            problems.push(format!("group {:?}: description: {p}", g.name));
        }
        for m in std::iter::once(&g.owner).chain(&g.members).chain(&g.invited) {
            if !known(m)? {
                problems.push(format!("group {:?}: no user {m:?}", g.name));
            }
        }
    }
    for (blocker, blocked) in &e.blocks {
        for u in [blocker, blocked] {
            if !known(u)? {
                problems.push(format!("block {blocker:?} → {blocked:?}: no user {u:?}"));
            }
        }
    }
    for sh in &e.shares {
        let what = format!("share of {:?} by {:?}", sh.channel, sh.from);
        if let Err(err) = Channel::new(&sh.channel) {
            problems.push(format!("{what}: {err}"));
        }
        if sh.kind.parse::<ShareKind>().is_err() {
            problems.push(format!("{what}: unknown kind {:?}", sh.kind));
        }
        if sh.state.parse::<ShareState>().is_err() {
            problems.push(format!("{what}: unknown state {:?}", sh.state));
        }
        for u in std::iter::once(&sh.from).chain(&sh.followers) {
            if !known(u)? {
                problems.push(format!("{what}: no user {u:?}"));
            }
        }
        match &sh.to {
            ExportGrantee::User(u) if !known(u)? => problems.push(format!("{what}: no user {u:?}")),
            ExportGrantee::Group(g)
                if !groups.contains(&g.to_lowercase()) && store.group_by_name(g)?.is_none() =>
            {
                problems.push(format!("{what}: no group {g:?}"));
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let more = problems.len().saturating_sub(MAX_PROBLEMS);
    problems.truncate(MAX_PROBLEMS);
    let mut text = format!("nothing was imported: {}", problems.join("; "));
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    Err(invalid(text))
}

/// Recreates an export in `store` (best empty), through the social operations: users,
/// keys (a new random secret where the export holds none), groups and their members,
/// shares in their states with their followers, blocks. `step` is called after each of
/// [`Export::steps`] items. Returns a summary line.
pub fn import(store: &Store, e: &Export, step: &dyn Fn()) -> Result<String, SocialError> {
    check(store, e)?;
    for u in &e.users {
        ops::register(store, &u.name, &u.email, super::import::IMPORT_ACTOR)?;
        if !u.enabled {
            ops::set_user_enabled(store, &u.name, false, super::import::IMPORT_ACTOR)?;
        }
        step();
    }
    let mut new_secrets = 0;
    for k in &e.authkeys {
        let owner = ops::find_user(store, &k.owner)?;
        let chans = |v: &[String]| -> Result<Vec<Channel>, SocialError> {
            v.iter().map(|c| Channel::new(c).map_err(invalid)).collect()
        };
        new_secrets += usize::from(k.secret.is_none());
        let ident = Ident::new(&k.ident).map_err(invalid)?;
        ops::create_key(
            store,
            &owner,
            Some(ident.clone()),
            k.secret.as_deref().map(Secret::new),
            chans(&k.publish)?,
            chans(&k.subscribe)?,
            k.comment.clone(),
        )?;
        if !k.enabled {
            ops::set_key_enabled(store, &owner, &ident, false)?;
        }
        step();
    }
    for g in &e.groups {
        let owner = ops::find_user(store, &g.owner)?;
        ops::create_group(store, &owner, &g.name, &g.description)?;
        for m in g.members.iter().chain(&g.invited) {
            ops::invite(store, &owner, &g.name, m)?;
        }
        for m in &g.members {
            ops::accept_invitation(store, &ops::find_user(store, m)?, &g.name)?;
        }
        step();
    }
    // Blocks last would decline offers made meanwhile; first, as in the exported state.
    for (blocker, blocked) in &e.blocks {
        ops::block_user(store, &ops::find_user(store, blocker)?, blocked)?;
        step();
    }
    for s in &e.shares {
        let from = ops::find_user(store, &s.from)?;
        let channel = Channel::new(&s.channel).map_err(invalid)?;
        let to = match &s.to {
            ExportGrantee::User(u) => GranteeName::User(u.clone()),
            ExportGrantee::Group(g) => GranteeName::Group(g.clone()),
            ExportGrantee::Everyone => GranteeName::Everyone,
        };
        let kind: ShareKind = s.kind.parse().map_err(invalid)?;
        let state: ShareState = s.state.parse().map_err(invalid)?;
        let id = ops::offer_share(store, &from, &channel, &to, kind, s.onward)?;
        let answerer = match &s.to {
            ExportGrantee::User(u) => Some(u.clone()),
            ExportGrantee::Group(g) => e.groups.iter().find(|x| &x.name == g).map(|x| x.owner.clone()),
            ExportGrantee::Everyone => None,
        };
        let now = store.share(id)?.map(|x| x.state);
        if let Some(who) = answerer
            && now == Some(ShareState::Offered)
            && state != ShareState::Offered
        {
            ops::answer_share(
                store,
                &ops::find_user(store, &who)?,
                id,
                state == ShareState::Accepted,
            )?;
        }
        for f in &s.followers {
            ops::follow_share(store, &ops::find_user(store, f)?, id)?;
        }
        step();
    }
    Ok(format!("{} ({new_secrets} key(s) with a new secret)", e.counts()))
}
