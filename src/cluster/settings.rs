//! What `[cluster]` resolves to: this instance's name, how to reach etcd, the lease and which
//! nodes are whose.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// The default `cluster.lease_ttl`.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The default `cluster.prefix`: every key of the pool lives under it.
pub const DEFAULT_PREFIX: &str = "/nodekeeper";

/// One instance's cluster settings (`[cluster]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// This instance (`cluster.name`).
    pub name: String,
    /// etcd client URLs (`cluster.etcd`), `http://` or `https://`.
    pub endpoints: Vec<String>,
    /// The CA that signs etcd's server certificates (`cluster.ca_file`).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (`cluster.cert_file`, `cluster.key_file`), both or none.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// etcd user and password (`cluster.user`, `cluster.password_file`).
    pub credentials: Option<(String, Secret)>,
    /// The lease's time to live, whole seconds (`cluster.lease_ttl`).
    pub lease_ttl: Duration,
    /// Key prefix of the pool (`cluster.prefix`).
    pub prefix: String,
    /// Every instance of the pool and its nodes, in configuration order (`nodes[].instance`).
    pub instances: BTreeMap<String, Vec<String>>,
}

impl ClusterSettings {
    /// The election every instance campaigns in.
    pub fn election_key(&self) -> String {
        format!("{}/election", self.prefix)
    }

    /// Where instance `name` publishes its snapshot (under its lease).
    pub fn instance_key(&self, name: &str) -> String {
        format!("{}/instances/{name}", self.prefix)
    }

    /// The prefix of every instance's snapshot.
    pub fn instances_prefix(&self) -> String {
        format!("{}/instances/", self.prefix)
    }

    /// The current producer, written only through the fenced transaction.
    pub fn producer_key(&self) -> String {
        format!("{}/producer", self.prefix)
    }

    /// An operator's request to move the key to a node of another instance.
    pub fn request_key(&self) -> String {
        format!("{}/request", self.prefix)
    }

    /// The instance that runs `node`.
    pub fn instance_of(&self, node: &str) -> Option<&str> {
        self.instances
            .iter()
            .find(|(_, nodes)| nodes.iter().any(|n| n == node))
            .map(|(instance, _)| instance.as_str())
    }

    /// How long after the last successful keep-alive this instance stops producing: half the
    /// lease, well before the server can expire it and elect another instance.
    pub fn deadline_after_renewal(&self) -> Duration {
        self.lease_ttl / 2
    }
}
