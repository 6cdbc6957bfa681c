//! What the session's watch of the pool's prefix holds, as plain data: every key under
//! `{prefix}/` with its value and creation revision, and what the view reads from it (the elected
//! instance, the live peers' snapshots, the producer, a request for one of this instance's
//! nodes). Pure: the task feeds it the watch's answers.

use std::collections::BTreeMap;

use crate::cluster::{ClusterSettings, InstanceSnapshot};

/// One key's value and creation revision.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    value: Vec<u8>,
    create_revision: i64,
}

/// The keys under the pool's prefix as last seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Store {
    keys: BTreeMap<String, Entry>,
}

/// What the view reads from the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Derived {
    /// The value of the election key with the lowest creation revision (etcd's own rule).
    pub leader: Option<String>,
    /// Every other instance's live snapshot.
    pub peers: BTreeMap<String, InstanceSnapshot>,
    /// The producer key's value.
    pub producer: Option<String>,
    /// The request key's value when it names a node of this instance.
    pub requested: Option<String>,
}

impl Store {
    /// Replaces everything with a read of the whole prefix.
    pub fn reset(&mut self, kvs: impl IntoIterator<Item = (String, Vec<u8>, i64)>) {
        self.keys = kvs
            .into_iter()
            .map(|(key, value, create_revision)| {
                (
                    key,
                    Entry {
                        value,
                        create_revision,
                    },
                )
            })
            .collect();
    }

    /// A put seen by the watch.
    pub fn put(&mut self, key: String, value: Vec<u8>, create_revision: i64) {
        self.keys.insert(
            key,
            Entry {
                value,
                create_revision,
            },
        );
    }

    /// A delete seen by the watch.
    pub fn delete(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Whether `key` exists with this creation revision (a leader key still leads).
    pub fn holds(&self, key: &str, create_revision: i64) -> bool {
        self.keys
            .get(key)
            .is_some_and(|entry| entry.create_revision == create_revision)
    }

    /// What the view shows of the store, for instance `settings.name`.
    pub fn derive(&self, settings: &ClusterSettings) -> Derived {
        let election = format!("{}/", settings.election_key());
        let leader = self
            .keys
            .iter()
            .filter(|(key, _)| key.starts_with(&election))
            .min_by_key(|(_, entry)| entry.create_revision)
            .map(|(_, entry)| String::from_utf8_lossy(&entry.value).into_owned());
        let instances = settings.instances_prefix();
        let peers = self
            .keys
            .iter()
            .filter_map(|(key, entry)| {
                let name = key.strip_prefix(&instances)?;
                (!name.is_empty() && name != settings.name)
                    .then(|| (name.to_string(), peer_snapshot(name, &entry.value)))
            })
            .collect();
        let text = |key: String| {
            self.keys
                .get(&key)
                .map(|entry| String::from_utf8_lossy(&entry.value).into_owned())
        };
        let requested = text(settings.request_key())
            .filter(|node| settings.instance_of(node) == Some(settings.name.as_str()));
        Derived {
            leader,
            peers,
            producer: text(settings.producer_key()),
            requested,
        }
    }
}

/// A live peer's snapshot; one that cannot be read counts as maybe holding the key (nothing
/// proves it passive).
fn peer_snapshot(name: &str, value: &[u8]) -> InstanceSnapshot {
    serde_json::from_slice(value).unwrap_or_else(|_| InstanceSnapshot {
        instance: name.to_string(),
        may_hold: true,
        ..InstanceSnapshot::default()
    })
}

/// Whether two snapshots say the same thing (the moment they were taken aside), so that an idle
/// instance does not put its snapshot every tick.
pub(super) fn same_facts(a: &InstanceSnapshot, b: &InstanceSnapshot) -> bool {
    InstanceSnapshot {
        taken_at: String::new(),
        ..a.clone()
    } == InstanceSnapshot {
        taken_at: String::new(),
        ..b.clone()
    }
}

/// Whether the deletion of `deleted` at `revision` ends the leadership of `leader_key` created at
/// `created`: the same key name comes back with each campaign under one lease (a resignation
/// deletes it, the next campaign creates it again), so only a deletion after this campaign's
/// creation counts.
pub(super) fn deletes_leader_key(
    leader_key: &str,
    created: i64,
    deleted: &str,
    revision: i64,
) -> bool {
    leader_key == deleted && revision > created
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> ClusterSettings {
        ClusterSettings {
            name: "a".to_string(),
            endpoints: vec!["http://127.0.0.1:2379".to_string()],
            ca_file: None,
            client_cert: None,
            credentials: None,
            lease_ttl: Duration::from_secs(10),
            prefix: "/nk".to_string(),
            instances: [
                ("a".to_string(), vec!["node1".to_string()]),
                ("b".to_string(), vec!["node2".to_string()]),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn snapshot(name: &str, may_hold: bool, taken_at: &str) -> InstanceSnapshot {
        InstanceSnapshot {
            instance: name.to_string(),
            taken_at: taken_at.to_string(),
            may_hold,
            ..InstanceSnapshot::default()
        }
    }

    fn json(snapshot: &InstanceSnapshot) -> Vec<u8> {
        serde_json::to_vec(snapshot).unwrap()
    }

    #[test]
    fn the_leader_is_the_oldest_election_key_and_peers_exclude_this_instance() {
        let mut store = Store::default();
        store.reset([
            ("/nk/election/2".to_string(), b"b".to_vec(), 7),
            ("/nk/election/1".to_string(), b"a".to_vec(), 9),
            (
                "/nk/instances/a".to_string(),
                json(&snapshot("a", true, "t")),
                3,
            ),
            (
                "/nk/instances/b".to_string(),
                json(&snapshot("b", false, "t")),
                4,
            ),
            ("/nk/producer".to_string(), b"node2@b".to_vec(), 5),
        ]);
        let derived = store.derive(&settings());
        assert_eq!(derived.leader.as_deref(), Some("b"));
        assert_eq!(derived.peers.keys().collect::<Vec<_>>(), ["b"]);
        assert!(!derived.peers["b"].may_hold);
        assert_eq!(derived.producer.as_deref(), Some("node2@b"));
        store.delete("/nk/election/2");
        assert_eq!(store.derive(&settings()).leader.as_deref(), Some("a"));
    }

    #[test]
    fn an_unreadable_peer_snapshot_counts_as_maybe_holding() {
        let mut store = Store::default();
        store.put("/nk/instances/b".to_string(), b"{not json".to_vec(), 4);
        assert!(store.derive(&settings()).peers["b"].may_hold);
    }

    #[test]
    fn a_request_shows_only_on_the_instance_that_owns_the_node() {
        let mut store = Store::default();
        store.put("/nk/request".to_string(), b"node2".to_vec(), 4);
        assert_eq!(store.derive(&settings()).requested, None);
        store.put("/nk/request".to_string(), b"node1".to_vec(), 4);
        assert_eq!(
            store.derive(&settings()).requested.as_deref(),
            Some("node1")
        );
    }

    #[test]
    fn a_leader_key_holds_only_with_its_own_creation_revision() {
        let mut store = Store::default();
        store.put("/nk/election/1".to_string(), b"a".to_vec(), 9);
        assert!(store.holds("/nk/election/1", 9));
        assert!(!store.holds("/nk/election/1", 8));
        store.delete("/nk/election/1");
        assert!(!store.holds("/nk/election/1", 9));
    }

    #[test]
    fn only_a_deletion_after_the_campaign_ends_its_leadership() {
        assert!(deletes_leader_key(
            "/nk/election/7",
            10,
            "/nk/election/7",
            12
        ));
        // The resignation of the previous campaign under the same lease, reported late.
        assert!(!deletes_leader_key(
            "/nk/election/7",
            10,
            "/nk/election/7",
            9
        ));
        assert!(!deletes_leader_key(
            "/nk/election/7",
            10,
            "/nk/election/8",
            12
        ));
    }

    #[test]
    fn snapshots_differing_only_in_when_they_were_taken_are_the_same() {
        assert!(same_facts(
            &snapshot("a", false, "t1"),
            &snapshot("a", false, "t2")
        ));
        assert!(!same_facts(
            &snapshot("a", false, "t1"),
            &snapshot("a", true, "t1")
        ));
    }
}
