//! Named IP sets and their incremental membership.
//!
//! A set is defined by a [`SetKey`]: a selector (members: the networks of every endpoint and
//! network set it selects), a named port under an optional selector (members: `addr . protocol
//! . port` of every selected endpoint declaring that port), or a fixed list of networks.
//! [`IpSetIndex`] keeps membership up to date as entities come, go and change, and reports
//! exactly the member additions and removals each update causes. A label change only
//! re-evaluates the sets whose selectors read one of the changed label keys (found through an
//! inverted index), so its cost is proportional to the sets it can affect.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::fingerprint::fingerprint;
use crate::model::{EndpointId, Labels, NamedPort};
use crate::rule::Protocol;
use crate::selector::Selector;

/// What defines a set's members.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKey {
    /// Networks of the entities the selector selects.
    Selector(Selector),
    /// `addr . protocol . port` of selected entities declaring the named port.
    NamedPort {
        /// Restricting selector (`None`: every entity).
        selector: Option<Selector>,
        /// Port name.
        name: String,
    },
    /// A fixed list of networks (from `nets` / `notNets`).
    Nets(Vec<IpNetwork>),
}

impl SetKey {
    /// The set's stable name: `s:` (selector), `p:` (named port) or `n:` (nets) plus a
    /// fingerprint of its definition.
    pub fn id(&self) -> IpSetId {
        let (prefix, text) = match self {
            SetKey::Selector(s) => ("s", s.canonical().to_string()),
            SetKey::NamedPort { selector, name } => (
                "p",
                format!(
                    "{name}|{}",
                    selector.as_ref().map(Selector::canonical).unwrap_or("")
                ),
            ),
            SetKey::Nets(nets) => {
                let sorted: BTreeSet<String> = nets.iter().map(ToString::to_string).collect();
                ("n", sorted.into_iter().collect::<Vec<_>>().join(","))
            }
        };
        IpSetId(format!("{prefix}:{:016x}", fingerprint(text.as_bytes())))
    }

    fn selects(&self, labels: &Labels) -> bool {
        match self {
            SetKey::Selector(s) => s.matches(labels),
            SetKey::NamedPort { selector, .. } => {
                selector.as_ref().is_none_or(|s| s.matches(labels))
            }
            SetKey::Nets(_) => false,
        }
    }

    fn contributions(&self, data: &EntityData) -> Vec<Member> {
        match self {
            SetKey::Selector(_) => data.nets.iter().map(|n| Member::Net(*n)).collect(),
            SetKey::NamedPort { name, .. } => data
                .ports
                .iter()
                .filter(|p| &p.name == name)
                .flat_map(|p| {
                    data.nets.iter().map(|n| Member::NamedPort {
                        addr: n.ip(),
                        protocol: p.protocol,
                        port: p.port,
                    })
                })
                .collect(),
            SetKey::Nets(_) => Vec::new(),
        }
    }

    fn label_keys(&self) -> Option<BTreeSet<&str>> {
        match self {
            SetKey::Selector(s) => Some(s.label_keys()),
            SetKey::NamedPort { selector, .. } => Some(
                selector
                    .as_ref()
                    .map(Selector::label_keys)
                    .unwrap_or_default(),
            ),
            SetKey::Nets(_) => None,
        }
    }
}

/// A set's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpSetId(pub String);

impl fmt::Display for IpSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One set member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    /// An address or network.
    Net(IpNetwork),
    /// An address with protocol and port (named-port sets).
    NamedPort {
        /// Address.
        addr: IpAddr,
        /// Protocol.
        protocol: Protocol,
        /// Port number.
        port: u16,
    },
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetChange {
    /// `member` joined `set`.
    Added {
        /// The set.
        set: IpSetId,
        /// The member.
        member: Member,
    },
    /// `member` left `set`.
    Removed {
        /// The set.
        set: IpSetId,
        /// The member.
        member: Member,
    },
}

/// Identity of something selectors select.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKey {
    /// A workload endpoint.
    Endpoint(EndpointId),
    /// A network set (`namespace == None` for global ones).
    NetworkSet {
        /// Namespace.
        namespace: Option<String>,
        /// Name.
        name: String,
    },
}

/// What the index needs to know about an entity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntityData {
    /// Effective labels.
    pub labels: Labels,
    /// Networks it contributes.
    pub nets: Vec<IpNetwork>,
    /// Named ports it declares.
    pub ports: Vec<NamedPort>,
}

#[derive(Debug, Clone)]
struct SetState {
    key: SetKey,
    /// Member → number of entities contributing it.
    members: BTreeMap<Member, u32>,
}

#[derive(Debug, Clone)]
struct EntityState {
    data: EntityData,
    in_sets: HashSet<IpSetId>,
}

/// Incrementally maintained set membership.
#[derive(Debug, Clone, Default)]
pub struct IpSetIndex {
    sets: HashMap<IpSetId, SetState>,
    /// label key → sets whose selector reads it.
    by_label: HashMap<String, HashSet<IpSetId>>,
    entities: HashMap<EntityKey, EntityState>,
}

impl IpSetIndex {
    /// An empty index.
    pub fn new() -> IpSetIndex {
        IpSetIndex::default()
    }

    /// Current members of a set.
    pub fn members(&self, id: &IpSetId) -> Option<BTreeSet<Member>> {
        self.sets
            .get(id)
            .map(|s| s.members.keys().copied().collect())
    }

    /// The definition of one set.
    pub fn key(&self, id: &IpSetId) -> Option<&SetKey> {
        self.sets.get(id).map(|s| &s.key)
    }

    /// All sets and their definitions.
    pub fn sets(&self) -> impl Iterator<Item = (&IpSetId, &SetKey)> {
        self.sets.iter().map(|(id, s)| (id, &s.key))
    }

    /// Registers a set (idempotent) and returns its id and initial members as changes.
    pub fn add_set(&mut self, key: SetKey) -> (IpSetId, Vec<SetChange>) {
        let id = key.id();
        if self.sets.contains_key(&id) {
            return (id, Vec::new());
        }
        let mut state = SetState {
            key: key.clone(),
            members: BTreeMap::new(),
        };
        if let SetKey::Nets(nets) = &key {
            for n in nets {
                *state.members.entry(Member::Net(*n)).or_default() += 1;
            }
        }
        if let Some(keys) = key.label_keys() {
            for k in keys {
                self.by_label
                    .entry(k.to_string())
                    .or_default()
                    .insert(id.clone());
            }
        }
        let mut changes = Vec::new();
        for entity in self.entities.values_mut() {
            if key.selects(&entity.data.labels) {
                entity.in_sets.insert(id.clone());
                for m in key.contributions(&entity.data) {
                    *state.members.entry(m).or_default() += 1;
                }
            }
        }
        for m in state.members.keys() {
            changes.push(SetChange::Added {
                set: id.clone(),
                member: *m,
            });
        }
        self.sets.insert(id.clone(), state);
        (id, changes)
    }

    /// Unregisters a set; its members are reported as removed.
    pub fn remove_set(&mut self, id: &IpSetId) -> Vec<SetChange> {
        let Some(state) = self.sets.remove(id) else {
            return Vec::new();
        };
        for sets in self.by_label.values_mut() {
            sets.remove(id);
        }
        self.by_label.retain(|_, sets| !sets.is_empty());
        for e in self.entities.values_mut() {
            e.in_sets.remove(id);
        }
        state
            .members
            .into_keys()
            .map(|member| SetChange::Removed {
                set: id.clone(),
                member,
            })
            .collect()
    }

    fn add_members(&mut self, id: &IpSetId, members: Vec<Member>, out: &mut Vec<SetChange>) {
        if let Some(state) = self.sets.get_mut(id) {
            for m in members {
                let count = state.members.entry(m).or_default();
                *count += 1;
                if *count == 1 {
                    out.push(SetChange::Added {
                        set: id.clone(),
                        member: m,
                    });
                }
            }
        }
    }

    fn remove_members(&mut self, id: &IpSetId, members: Vec<Member>, out: &mut Vec<SetChange>) {
        if let Some(state) = self.sets.get_mut(id) {
            for m in members {
                if let Some(count) = state.members.get_mut(&m) {
                    *count -= 1;
                    if *count == 0 {
                        state.members.remove(&m);
                        out.push(SetChange::Removed {
                            set: id.clone(),
                            member: m,
                        });
                    }
                }
            }
        }
    }

    /// Adds or updates an entity; returns the membership changes it causes.
    pub fn upsert_entity(&mut self, key: EntityKey, data: EntityData) -> Vec<SetChange> {
        let mut out = Vec::new();
        let Some(old) = self.entities.remove(&key) else {
            // New entity: every set must be checked once.
            let matching: Vec<IpSetId> = self
                .sets
                .iter()
                .filter(|(_, s)| s.key.selects(&data.labels))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &matching {
                let contributions = self.sets[id].key.contributions(&data);
                self.add_members(id, contributions, &mut out);
            }
            self.entities.insert(
                key,
                EntityState {
                    data,
                    in_sets: matching.into_iter().collect(),
                },
            );
            return out;
        };
        let addresses_changed = old.data.nets != data.nets || old.data.ports != data.ports;
        let changed_keys: BTreeSet<&String> = old
            .data
            .labels
            .iter()
            .filter(|(k, v)| data.labels.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(
                data.labels
                    .keys()
                    .filter(|k| !old.data.labels.contains_key(*k)),
            )
            .collect();
        let mut candidates: BTreeSet<IpSetId> = changed_keys
            .iter()
            .filter_map(|k| self.by_label.get(k.as_str()))
            .flat_map(|sets| sets.iter().cloned())
            .collect();
        if addresses_changed {
            candidates.extend(old.in_sets.iter().cloned());
        }
        let mut in_sets = old.in_sets.clone();
        for id in candidates {
            let Some(state) = self.sets.get(&id) else {
                continue;
            };
            let was = old.in_sets.contains(&id);
            let now = state.key.selects(&data.labels);
            let old_members = if was {
                state.key.contributions(&old.data)
            } else {
                Vec::new()
            };
            let new_members = if now {
                state.key.contributions(&data)
            } else {
                Vec::new()
            };
            if old_members == new_members {
                // Same contribution (e.g. selected before and after): nothing to do.
            } else {
                // Add first so members contributed both before and after never flap.
                self.add_members(&id, new_members, &mut out);
                self.remove_members(&id, old_members, &mut out);
            }
            if now {
                in_sets.insert(id);
            } else {
                in_sets.remove(&id);
            }
        }
        self.entities.insert(key, EntityState { data, in_sets });
        out
    }

    /// Removes an entity; returns the membership changes it causes.
    pub fn remove_entity(&mut self, key: &EntityKey) -> Vec<SetChange> {
        let mut out = Vec::new();
        if let Some(old) = self.entities.remove(key) {
            for id in old.in_sets {
                let members = match self.sets.get(&id) {
                    Some(s) => s.key.contributions(&old.data),
                    None => continue,
                };
                self.remove_members(&id, members, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::labels;

    fn data(l: &[(&str, &str)], net: &str) -> EntityData {
        EntityData {
            labels: labels(l),
            nets: vec![net.parse().expect("net")],
            ports: vec![],
        }
    }

    fn ep(name: &str) -> EntityKey {
        EntityKey::Endpoint(EndpointId::new("ns", name))
    }

    fn net(s: &str) -> Member {
        Member::Net(s.parse().expect("net"))
    }

    fn set(s: &str) -> SetKey {
        SetKey::Selector(Selector::parse(s).expect("selector"))
    }

    #[test]
    fn membership_follows_labels() {
        let mut idx = IpSetIndex::new();
        assert!(
            idx.upsert_entity(ep("a"), data(&[("app", "web")], "10.0.0.1/32"))
                .is_empty()
        );
        let (web, changes) = idx.add_set(set("app == 'web'"));
        assert_eq!(
            changes,
            vec![SetChange::Added {
                set: web.clone(),
                member: net("10.0.0.1/32")
            }]
        );
        let (db, changes) = idx.add_set(set("app == 'db'"));
        assert!(changes.is_empty());

        // Relabel web -> db: exactly one removal and one addition.
        let changes = idx.upsert_entity(ep("a"), data(&[("app", "db")], "10.0.0.1/32"));
        let mut sorted = changes.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![
                SetChange::Added {
                    set: db.clone(),
                    member: net("10.0.0.1/32")
                },
                SetChange::Removed {
                    set: web.clone(),
                    member: net("10.0.0.1/32")
                },
            ]
        );
        // A label no selector reads changes nothing.
        assert!(
            idx.upsert_entity(ep("a"), data(&[("app", "db"), ("x", "1")], "10.0.0.1/32"))
                .is_empty()
        );
        // Address change moves the member.
        let changes = idx.upsert_entity(ep("a"), data(&[("app", "db"), ("x", "1")], "10.0.0.9/32"));
        assert_eq!(
            changes,
            vec![
                SetChange::Added {
                    set: db.clone(),
                    member: net("10.0.0.9/32")
                },
                SetChange::Removed {
                    set: db.clone(),
                    member: net("10.0.0.1/32")
                },
            ]
        );
        assert_eq!(
            idx.remove_entity(&ep("a")),
            vec![SetChange::Removed {
                set: db.clone(),
                member: net("10.0.0.9/32")
            }]
        );
        assert_eq!(idx.members(&db), Some(BTreeSet::new()));
        assert!(idx.remove_set(&web).is_empty());
        assert_eq!(idx.members(&web), None);
    }

    #[test]
    fn shared_members_are_reference_counted() {
        let mut idx = IpSetIndex::new();
        let (s, _) = idx.add_set(set("has(ext)"));
        let a = EntityKey::NetworkSet {
            namespace: None,
            name: "a".into(),
        };
        let b = EntityKey::NetworkSet {
            namespace: None,
            name: "b".into(),
        };
        assert_eq!(
            idx.upsert_entity(a.clone(), data(&[("ext", "")], "192.0.2.0/24"))
                .len(),
            1
        );
        assert!(
            idx.upsert_entity(b.clone(), data(&[("ext", "")], "192.0.2.0/24"))
                .is_empty()
        );
        assert!(idx.remove_entity(&a).is_empty());
        assert_eq!(
            idx.remove_entity(&b),
            vec![SetChange::Removed {
                set: s,
                member: net("192.0.2.0/24")
            }]
        );
    }

    #[test]
    fn label_change_only_touches_sets_reading_that_key() {
        let mut idx = IpSetIndex::new();
        for i in 0..100 {
            idx.add_set(set(&format!("k{i} == 'v'")));
        }
        let (all, _) = idx.add_set(set("all()"));
        idx.upsert_entity(ep("a"), data(&[("k1", "v")], "10.0.0.1/32"));
        assert_eq!(idx.members(&all).map(|m| m.len()), Some(1));
        let changes = idx.upsert_entity(ep("a"), data(&[("k2", "v")], "10.0.0.1/32"));
        assert_eq!(changes.len(), 2, "{changes:?}");
        // The inverted index reaches only the two affected sets.
        assert_eq!(idx.by_label.get("k1").map(HashSet::len), Some(1));
        assert_eq!(idx.by_label.get("k2").map(HashSet::len), Some(1));
    }

    #[test]
    fn named_port_and_nets_sets() {
        let mut idx = IpSetIndex::new();
        let mut d = data(&[("app", "web")], "10.0.0.2/32");
        d.ports = vec![NamedPort {
            name: "http".into(),
            protocol: Protocol::TCP,
            port: 8080,
        }];
        idx.upsert_entity(ep("web"), d);
        idx.upsert_entity(ep("other"), data(&[("app", "other")], "10.0.0.3/32"));
        let key = SetKey::NamedPort {
            selector: None,
            name: "http".into(),
        };
        let (id, changes) = idx.add_set(key.clone());
        assert!(id.0.starts_with("p:"));
        let member = Member::NamedPort {
            addr: "10.0.0.2".parse().expect("addr"),
            protocol: Protocol::TCP,
            port: 8080,
        };
        assert_eq!(
            changes,
            vec![SetChange::Added {
                set: id.clone(),
                member
            }]
        );
        let nets = SetKey::Nets(vec!["192.0.2.0/24".parse().expect("net")]);
        let (nid, changes) = idx.add_set(nets.clone());
        assert!(nid.0.starts_with("n:"));
        assert_eq!(changes.len(), 1);
        // Idempotent registration.
        assert!(idx.add_set(nets).1.is_empty());
        assert_eq!(idx.sets().count(), 2);
        assert_eq!(key.id(), id);
    }
}
