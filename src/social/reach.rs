//! The reach of a user's data: on each channel they share, who receives it and through
//! whom, derived from the graph, with the names of a group's members kept to its members.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::ops::Result;
use crate::domain::listing::User;
use crate::domain::model::Grantee;
use crate::domain::{GroupId, ShareId};
use crate::store::Store;
use crate::wire::Channel;

/// One receiver of the actor's data: who, and the redistributors it travels through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The receiving user.
    pub user: String,
    /// The users who pass it on, in the order the data travels (empty: a direct share).
    pub through: Vec<String>,
    /// The share of the actor's (or a redistributor's) that admits it.
    pub share: ShareId,
    /// How many receivers this line stands for (more than one only for members of a
    /// group the actor is not in, whose names it does not see).
    pub count: usize,
}

/// The reach of the actor's data on each channel their shares name: who receives it and
/// through whom.
pub fn reach(store: &Store, actor: &User) -> Result<Vec<(Channel, Vec<Reached>)>> {
    let graph = store.load_graph()?;
    let mut channels: Vec<Channel> = graph
        .shares
        .iter()
        .filter(|s| s.from == actor.id)
        .map(|s| s.channel.clone())
        .collect();
    channels.sort();
    channels.dedup();
    let names: std::collections::HashMap<crate::domain::UserId, String> =
        store.users()?.into_iter().map(|u| (u.id, u.name)).collect();
    let name = |u: crate::domain::UserId| names.get(&u).cloned().unwrap_or_else(|| u.to_string());
    // Who is in a group is for its members to know: a sharer outside the group sees that
    // its members receive, not who they are ("a member of G", counted).
    let mut hidden: HashMap<GroupId, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for c in channels {
        let mut reached: Vec<Reached> = Vec::new();
        for (_, why) in crate::domain::acl::reach(&graph, actor.id, c.as_str()) {
            let crate::domain::acl::Why::Share { share, to, chain } = why else {
                continue;
            };
            let mut names_on_path: Vec<String> = chain.iter().map(|u| name(*u)).collect();
            if let Grantee::Group(g) = to
                && !graph.groups.get(&g).is_some_and(|m| m.contains(&actor.id))
            {
                let label = match hidden.entry(g) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => e.insert(store.group_name(g)?).clone(),
                };
                if let Some(last) = names_on_path.last_mut() {
                    *last = format!("a member of group {}", label.unwrap_or_else(|| g.0.to_string()));
                }
            }
            let user = names_on_path.first().cloned().unwrap_or_default();
            let through: Vec<String> = names_on_path.into_iter().skip(1).rev().collect();
            match reached
                .iter_mut()
                .find(|r| r.user == user && r.through == through)
            {
                // Several hidden members on the same path: one line, counted.
                Some(r) => r.count += 1,
                None => reached.push(Reached {
                    user,
                    through,
                    share,
                    count: 1,
                }),
            }
        }
        for r in &mut reached {
            if r.count > 1
                && let Some(group) = r.user.strip_prefix("a member of group ")
            {
                r.user = format!("{} members of group {group}", r.count);
            }
        }
        out.push((c, reached));
    }
    Ok(out)
}
