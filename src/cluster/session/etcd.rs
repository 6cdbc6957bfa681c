//! The session's task: one loop that owns everything the session knows and starts each etcd call
//! as a small task of its own (connect, grant, the keep-alives of a lease, the campaign, the
//! watch of the pool's prefix, puts, resignations), each answering with an `Event`. The loop
//! never waits for the network, so a dead member delays nothing but the call sent to it, and every
//! call but the campaign (which blocks until elected) and the watch has a timeout.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    LeaderKey, LeaseKeepAliveStream, LeaseKeeper, PutOptions, ResignOptions, TlsOptions, Txn,
    TxnOp, WatchOptions,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::store::{Store, deletes_leader_key, same_facts};
use super::{ClusterView, FenceError};
use crate::backoff::ExponentialBackoff;
use crate::cluster::{ClusterSettings, InstanceSnapshot, rules};

/// Retries after failed calls (grant, campaign, watch, puts): quick at first, at most 2 s apart.
const RETRY: ExponentialBackoff =
    ExponentialBackoff::constant(Duration::from_millis(100), Duration::from_secs(2));

/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the session is asked by its handle.
#[derive(Debug)]
pub(super) enum Command {
    /// The fenced write of the producer.
    Fence {
        node: String,
        reply: oneshot::Sender<Result<(), FenceError>>,
    },
    /// Give up the election, then campaign again.
    Resign,
    /// Ask the pool to move the key to this node.
    Request(String),
    /// Delete the request for one of this instance's nodes.
    ClearRequest,
}

/// The outcome of one keep-alive.
#[derive(Debug)]
enum Renewal {
    Alive,
    Gone,
    Failed(String),
}

/// A change the watch of the prefix saw.
#[derive(Debug)]
enum Change {
    Put {
        key: String,
        value: Vec<u8>,
        create_revision: i64,
    },
    Delete {
        key: String,
        /// The revision of the deletion.
        revision: i64,
    },
}

/// What a call's task reports to the loop.
enum Event {
    Connected(Result<Box<Client>, String>),
    Granted(Result<i64, String>, Instant),
    Renewed {
        generation: u64,
        renewal: Renewal,
        at: Instant,
    },
    Campaigned {
        generation: u64,
        result: Result<LeaderKey, String>,
    },
    Resigned {
        generation: u64,
        result: Result<(), String>,
    },
    /// A fresh read of the whole prefix at `revision`.
    Read {
        kvs: Vec<(String, Vec<u8>, i64)>,
        revision: i64,
    },
    Changed(Vec<Change>),
    WatchFailed(String),
    Put {
        generation: u64,
        snapshot: Box<InstanceSnapshot>,
        result: Result<(), String>,
    },
    RequestPut {
        node: String,
        result: Result<(), String>,
    },
    /// A call whose outcome only counts for reachability (a fence, a clear).
    Called(Result<(), String>),
}

/// A call's task, aborted when dropped (a new lease, a new client, the session's end).
#[derive(Debug)]
struct Child(JoinHandle<()>);

impl Drop for Child {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Child {
    Child(tokio::spawn(future))
}

/// The loop's state.
pub(super) struct Task {
    settings: ClusterSettings,
    /// Each call's timeout: a keep-alive period, so a dead member never holds a renewal long.
    call_timeout: Duration,
    view: watch::Sender<ClusterView>,
    commands: mpsc::UnboundedReceiver<Command>,
    wanted: watch::Receiver<Option<InstanceSnapshot>>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,

    client: Option<Client>,
    connecting: Option<Child>,
    watcher: Option<Child>,
    store: Store,

    /// The current lease and its generation (a counter of grants: answers about an older lease
    /// are ignored).
    lease: Option<i64>,
    generation: u64,
    granting: Option<Child>,
    keeper: Option<Child>,
    renewed: Option<Instant>,

    campaign: Option<Child>,
    leader_key: Option<LeaderKey>,
    /// A resignation to send (kept until etcd answered it).
    resign_key: Option<LeaderKey>,
    resigning: Option<Child>,

    /// The snapshot put under the current lease.
    published: Option<InstanceSnapshot>,
    putting: Option<Child>,
    request: Option<String>,
    requesting: Option<Child>,

    /// No call may start before this (after a failure).
    retry_at: Option<Instant>,
    attempts: u32,
    reachable: bool,
    outage_since: Option<Instant>,
    failures: u64,
}

impl Task {
    pub(super) fn new(
        settings: ClusterSettings,
        view: watch::Sender<ClusterView>,
        commands: mpsc::UnboundedReceiver<Command>,
        wanted: watch::Receiver<Option<InstanceSnapshot>>,
    ) -> Task {
        let (events_tx, events) = mpsc::unbounded_channel();
        Task {
            call_timeout: call_timeout(settings.lease_ttl),
            settings,
            view,
            commands,
            wanted,
            events_tx,
            events,
            client: None,
            connecting: None,
            watcher: None,
            store: Store::default(),
            lease: None,
            generation: 0,
            granting: None,
            keeper: None,
            renewed: None,
            campaign: None,
            leader_key: None,
            resign_key: None,
            resigning: None,
            published: None,
            putting: None,
            request: None,
            requesting: None,
            retry_at: None,
            attempts: 0,
            reachable: false,
            outage_since: None,
            failures: 0,
        }
    }

    /// Runs until the handle is gone (dropped or shut down), then resigns and revokes the lease.
    pub(super) async fn run(mut self) {
        let mut wanted_open = true;
        loop {
            self.start_calls();
            let wake = self.retry_at;
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                changed = self.wanted.changed(), if wanted_open => {
                    if changed.is_err() {
                        wanted_open = false;
                    }
                }
                Some(event) = self.events.recv() => self.event(event),
                () = sleep_until_some(wake) => self.retry_at = None,
            }
            self.publish_view();
        }
        self.close().await;
    }

    /// Starts every call that is due and not in flight.
    fn start_calls(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            // Only the calls that never wait for a retry: none. Everything waits out the backoff
            // except the keep-alives, which run on their own schedule.
            return;
        }
        let Some(client) = self.client.clone() else {
            if self.connecting.is_none() {
                let settings = self.settings.clone();
                let events = self.events_tx.clone();
                self.connecting = Some(spawn(async move {
                    let _ = events.send(Event::Connected(connect(&settings).await.map(Box::new)));
                }));
            }
            return;
        };
        if self
            .watcher
            .as_ref()
            .is_some_and(|child| child.0.is_finished())
        {
            // It loops until aborted: it ended only by a panic in the client library.
            self.watcher = None;
            self.failed("watch", "the watch task ended");
            return;
        }
        if self.watcher.is_none() {
            self.watcher = Some(spawn(watch_prefix(
                client.clone(),
                format!("{}/", self.settings.prefix),
                self.call_timeout,
                self.events_tx.clone(),
            )));
        }
        let Some(lease) = self.lease else {
            if self.granting.is_none() {
                let mut client = client.clone();
                let ttl = lease_seconds(self.settings.lease_ttl);
                let call_timeout = self.call_timeout;
                let events = self.events_tx.clone();
                self.granting = Some(spawn(async move {
                    let result = within(call_timeout, client.lease_grant(ttl, None))
                        .await
                        .map(|answer| answer.id());
                    let _ = events.send(Event::Granted(result, Instant::now()));
                }));
            }
            return;
        };
        let generation = self.generation;
        if self.keeper.is_none() {
            self.keeper = Some(spawn(keep_alive(
                client.clone(),
                lease,
                generation,
                rules::keepalive_every(self.settings.lease_ttl),
                self.call_timeout,
                self.events_tx.clone(),
            )));
        }
        if let Some(key) = self.resign_key.clone() {
            if self.resigning.is_none() {
                let mut client = client.clone();
                let call_timeout = self.call_timeout;
                let events = self.events_tx.clone();
                self.resigning = Some(spawn(async move {
                    let resign = client.resign(Some(ResignOptions::new().with_leader(key)));
                    let result = within(call_timeout, resign).await.map(|_| ());
                    let _ = events.send(Event::Resigned { generation, result });
                }));
            }
        } else if self.leader_key.is_none() && self.campaign.is_none() {
            let mut client = client.clone();
            let election = self.settings.election_key();
            let name = self.settings.name.clone();
            let events = self.events_tx.clone();
            self.campaign = Some(spawn(async move {
                // No timeout: the campaign blocks until this instance is elected.
                let result = match client.campaign(election, name, lease).await {
                    Ok(mut answer) => answer
                        .take_leader()
                        .ok_or_else(|| "campaign answered without a leader key".to_string()),
                    Err(e) => Err(describe(&e)),
                };
                let _ = events.send(Event::Campaigned { generation, result });
            }));
        }
        let wanted = self.wanted.borrow().clone();
        if let Some(snapshot) = wanted
            && self.putting.is_none()
            && self
                .published
                .as_ref()
                .is_none_or(|published| !same_facts(published, &snapshot))
        {
            let mut client = client.clone();
            let key = self.settings.instance_key(&self.settings.name);
            let call_timeout = self.call_timeout;
            let events = self.events_tx.clone();
            self.putting = Some(spawn(async move {
                let result = match serde_json::to_vec(&snapshot) {
                    Ok(json) => {
                        let put = client.put(key, json, Some(PutOptions::new().with_lease(lease)));
                        within(call_timeout, put).await.map(|_| ())
                    }
                    Err(e) => Err(format!("the snapshot does not serialize: {e}")),
                };
                let _ = events.send(Event::Put {
                    generation,
                    snapshot: Box::new(snapshot),
                    result,
                });
            }));
        }
        if let Some(node) = self.request.clone()
            && self.requesting.is_none()
        {
            let mut client = client.clone();
            let key = self.settings.request_key();
            let call_timeout = self.call_timeout;
            let events = self.events_tx.clone();
            self.requesting = Some(spawn(async move {
                let put = client.put(key, node.clone(), Some(PutOptions::new().with_lease(lease)));
                let result = within(call_timeout, put).await.map(|_| ());
                let _ = events.send(Event::RequestPut { node, result });
            }));
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Fence { node, reply } => self.fence(node, reply),
            Command::Resign => {
                if let Some(key) = self.leader_key.take() {
                    tracing::info!(
                        "etcd: resigning the election {} (a voluntary move)",
                        self.settings.election_key()
                    );
                    self.resign_key = Some(key);
                    self.campaign = None;
                }
            }
            Command::Request(node) => {
                self.request = Some(node);
                self.requesting = None;
            }
            Command::ClearRequest => self.clear_request(),
        }
    }

    fn fence(&mut self, node: String, reply: oneshot::Sender<Result<(), FenceError>>) {
        let Some(key) = self.leader_key.clone() else {
            let _ = reply.send(Err(FenceError::NotLeader(None)));
            return;
        };
        let Some(mut client) = self.client.clone() else {
            let _ = reply.send(Err(FenceError::Unreachable(
                "authenticating again".to_string(),
            )));
            return;
        };
        let producer_key = self.settings.producer_key();
        let value = format!("{node}@{}", self.settings.name);
        let call_timeout = self.call_timeout;
        let events = self.events_tx.clone();
        // Detached: the caller waits for the answer, the loop does not.
        tokio::spawn(async move {
            let rev = key.rev();
            let txn = Txn::new()
                .when([Compare::create_revision(
                    key.key().to_vec(),
                    CompareOp::Equal,
                    rev,
                )])
                .and_then([TxnOp::put(producer_key, value, None)]);
            let answer = within(call_timeout, client.txn(txn)).await;
            let _ = events.send(Event::Called(
                answer.as_ref().map(|_| ()).map_err(Clone::clone),
            ));
            let _ = reply.send(match answer {
                Ok(answer) if answer.succeeded() => Ok(()),
                Ok(_) => Err(FenceError::NotLeader(Some(rev))),
                Err(e) => Err(FenceError::Unreachable(e)),
            });
        });
    }

    fn clear_request(&mut self) {
        let Some(node) = self.store.derive(&self.settings).requested else {
            return;
        };
        if self.request.as_ref() == Some(&node) {
            self.request = None;
            self.requesting = None;
        }
        let Some(mut client) = self.client.clone() else {
            return;
        };
        let key = self.settings.request_key();
        let call_timeout = self.call_timeout;
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            // Only this request: a newer one for another node stays.
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, node)])
                .and_then([TxnOp::delete(key, None)]);
            let result = within(call_timeout, client.txn(txn)).await.map(|_| ());
            let _ = events.send(Event::Called(result));
        });
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected(result) => {
                self.connecting = None;
                match result {
                    Ok(client) => self.client = Some(*client),
                    Err(e) => self.failed("connect", &e),
                }
            }
            Event::Granted(result, at) => {
                self.granting = None;
                match result {
                    Ok(id) => {
                        self.succeeded();
                        self.generation += 1;
                        self.lease = Some(id);
                        self.renewed = Some(at);
                        tracing::debug!("etcd: lease {id:x} granted");
                    }
                    Err(e) => self.failed("lease grant", &e),
                }
            }
            Event::Renewed {
                generation,
                renewal,
                at,
            } if generation == self.generation => match renewal {
                Renewal::Alive => {
                    self.succeeded();
                    self.renewed = Some(at);
                }
                Renewal::Gone => {
                    self.succeeded();
                    tracing::warn!(
                        "etcd: the lease expired (not renewed within {}); a new lease and a new \
                         campaign",
                        humantime::format_duration(self.settings.lease_ttl)
                    );
                    self.drop_lease();
                }
                // The keep-alive task tries again on its own schedule.
                Renewal::Failed(e) => self.failed("lease keep-alive", &e),
            },
            Event::Campaigned { generation, result } if generation == self.generation => {
                self.campaign = None;
                match result {
                    Ok(key) => {
                        self.succeeded();
                        tracing::info!(
                            "etcd: elected in {} (fencing token {})",
                            self.settings.election_key(),
                            key.rev()
                        );
                        self.leader_key = Some(key);
                    }
                    Err(e) => self.failed("campaign", &e),
                }
            }
            Event::Resigned { generation, result } if generation == self.generation => {
                self.resigning = None;
                match result {
                    Ok(()) => {
                        self.succeeded();
                        self.resign_key = None;
                    }
                    Err(e) => self.failed("resign", &e),
                }
            }
            Event::Read { kvs, revision } => {
                self.succeeded();
                self.store.reset(kvs);
                if let Some(key) = &self.leader_key
                    && revision >= key.rev()
                    && !self.store.holds(&key_text(key), key.rev())
                {
                    self.lost_leader_key();
                }
            }
            Event::Changed(changes) => {
                self.succeeded();
                for change in changes {
                    match change {
                        Change::Put {
                            key,
                            value,
                            create_revision,
                        } => self.store.put(key, value, create_revision),
                        Change::Delete { key, revision } => {
                            self.store.delete(&key);
                            if self.leader_key.as_ref().is_some_and(|leader| {
                                deletes_leader_key(&key_text(leader), leader.rev(), &key, revision)
                            }) {
                                self.lost_leader_key();
                            }
                        }
                    }
                }
            }
            Event::WatchFailed(e) => self.failed("watch", &e),
            Event::Put {
                generation,
                snapshot,
                result,
            } if generation == self.generation => {
                self.putting = None;
                match result {
                    Ok(()) => {
                        self.succeeded();
                        self.published = Some(*snapshot);
                    }
                    Err(e) => self.failed("snapshot put", &e),
                }
            }
            Event::RequestPut { node, result } => {
                self.requesting = None;
                match result {
                    Ok(()) => {
                        self.succeeded();
                        if self.request.as_ref() == Some(&node) {
                            self.request = None;
                        }
                    }
                    Err(e) => self.failed("request put", &e),
                }
            }
            Event::Called(result) => match result {
                Ok(()) => self.succeeded(),
                Err(e) => self.failed("transaction", &e),
            },
            // Answers about an earlier lease.
            Event::Renewed { .. }
            | Event::Campaigned { .. }
            | Event::Resigned { .. }
            | Event::Put { .. } => {}
        }
    }

    /// The lease is gone in etcd: everything under it is.
    fn drop_lease(&mut self) {
        self.lease = None;
        self.renewed = None;
        self.keeper = None;
        self.campaign = None;
        self.leader_key = None;
        self.resign_key = None;
        self.resigning = None;
        self.published = None;
        self.putting = None;
        self.requesting = None;
    }

    fn lost_leader_key(&mut self) {
        tracing::warn!(
            "etcd: this instance's leader key in {} was deleted; campaigning again",
            self.settings.election_key()
        );
        self.leader_key = None;
        self.campaign = None;
    }

    fn succeeded(&mut self) {
        self.attempts = 0;
        self.reachable = true;
        if let Some(since) = self.outage_since.take() {
            tracing::info!(
                "etcd reachable again after {}; promotions may resume",
                humantime::format_duration(Duration::from_millis(
                    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
                ))
            );
        }
    }

    fn failed(&mut self, call: &str, error: &str) {
        self.failures = self.failures.saturating_add(1);
        self.reachable = false;
        self.retry_at = Some(Instant::now() + RETRY.delay(self.attempts));
        self.attempts = self.attempts.saturating_add(1);
        if error.contains("auth token") {
            // etcd forgot the token (a restart): authenticate again, keeping the lease.
            self.client = None;
            self.watcher = None;
            self.keeper = None;
            self.granting = None;
            self.campaign = None;
            self.resigning = None;
            self.putting = None;
            self.requesting = None;
        }
        if self.outage_since.is_none() {
            self.outage_since = Some(Instant::now());
            tracing::warn!(
                "etcd unreachable: {call} at {}: {error}; promotions stop, local restarts go on",
                self.settings
                    .endpoints
                    .iter()
                    .map(|url| crate::http::redact_url(url))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else {
            tracing::debug!("etcd: {call} failed: {error}");
        }
    }

    fn publish_view(&self) {
        let derived = self.store.derive(&self.settings);
        let view = ClusterView {
            ttl: self.settings.lease_ttl,
            renewed: self.renewed,
            elected: self.leader_key.as_ref().map(LeaderKey::rev),
            leader: derived.leader,
            peers: derived.peers,
            producer: derived.producer,
            reachable: self.reachable,
            requested: derived.requested,
            failures: self.failures,
        };
        self.view.send_if_modified(|current| {
            let changed = *current != view;
            if changed {
                *current = view;
            }
            changed
        });
    }

    /// A clean stop: resign, revoke the lease (its keys go with it), each within a timeout.
    async fn close(mut self) {
        self.campaign = None;
        self.keeper = None;
        self.watcher = None;
        let Some(mut client) = self.client.take() else {
            return;
        };
        if let Some(key) = self.leader_key.take().or(self.resign_key.take()) {
            let resign = client.resign(Some(ResignOptions::new().with_leader(key)));
            if let Err(e) = within(self.call_timeout, resign).await {
                tracing::warn!("etcd: resigning at shutdown failed: {e}");
            }
        }
        if let Some(lease) = self.lease.take() {
            match within(self.call_timeout, client.lease_revoke(lease)).await {
                Ok(_) => tracing::info!("etcd: lease revoked at shutdown"),
                Err(e) => tracing::warn!(
                    "etcd: revoking the lease at shutdown failed ({e}); it expires within {}",
                    humantime::format_duration(self.settings.lease_ttl)
                ),
            }
        }
    }
}

/// Each call's timeout for a lease of `ttl`: one keep-alive period (at most a fifth of the lease).
pub(super) fn call_timeout(ttl: Duration) -> Duration {
    rules::keepalive_every(ttl)
}

/// The lease's TTL in whole seconds, at least 1.
fn lease_seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn describe(error: &etcd_client::Error) -> String {
    crate::describe::chain(error)
}

/// `call` within `limit`, its error described.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match timeout(limit, call).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        )),
    }
}

fn key_text(key: &LeaderKey) -> String {
    String::from_utf8_lossy(key.key()).into_owned()
}

/// A client of the configured endpoints: TLS for `https://` ones, credentials when configured
/// (which makes connecting a call: the authentication).
async fn connect(settings: &ClusterSettings) -> Result<Client, String> {
    let keepalive = rules::keepalive_every(settings.lease_ttl);
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        // HTTP/2 pings, one a lease: a member that hangs without closing the connection (a
        // partition) fails the streams on it (the watch, the campaign), which then start anew.
        .with_keep_alive(settings.lease_ttl, keepalive)
        .with_require_leader(true);
    if settings
        .endpoints
        .iter()
        .any(|endpoint| endpoint.starts_with("https://"))
    {
        let mut tls = TlsOptions::new();
        if let Some(ca_file) = &settings.ca_file {
            let pem = tokio::fs::read(ca_file)
                .await
                .map_err(|e| format!("cluster.ca_file {}: {e}", ca_file.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some((cert_file, key_file)) = &settings.client_cert {
            let cert = tokio::fs::read(cert_file)
                .await
                .map_err(|e| format!("cluster.cert_file {}: {e}", cert_file.display()))?;
            let key = tokio::fs::read(key_file)
                .await
                .map_err(|e| format!("cluster.key_file {}: {e}", key_file.display()))?;
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(tls);
    }
    if let Some((user, password)) = &settings.credentials {
        options = options.with_user(user.clone(), password.expose().to_string());
    }
    match timeout(
        CONNECT_TIMEOUT * 2,
        Client::connect(&settings.endpoints, Some(options)),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(CONNECT_TIMEOUT * 2)
        )),
    }
}

/// Keeps lease `id` alive: a keep-alive every `every`, each answered within `call_timeout` or
/// counted failed (the stream is then opened anew), until etcd says the lease is gone.
async fn keep_alive(
    mut client: Client,
    id: i64,
    generation: u64,
    every: Duration,
    call_timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let renewal = match timeout(call_timeout, renew(&mut client, id, &mut stream)).await {
            Ok(renewal) => renewal,
            Err(_) => Renewal::Failed(format!(
                "no answer within {}",
                humantime::format_duration(call_timeout)
            )),
        };
        if !matches!(renewal, Renewal::Alive) {
            stream = None;
        }
        let gone = matches!(renewal, Renewal::Gone);
        let at = Instant::now();
        if events
            .send(Event::Renewed {
                generation,
                renewal,
                at,
            })
            .is_err()
            || gone
        {
            return;
        }
    }
}

async fn renew(
    client: &mut Client,
    id: i64,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Renewal {
    let Some((keeper, answers)) = stream else {
        // Opening the stream sends a keep-alive and reads its answer.
        return match client.lease_keep_alive(id).await {
            Ok(opened) => {
                *stream = Some(opened);
                Renewal::Alive
            }
            Err(etcd_client::Error::LeaseKeepAliveError(message))
                if message.contains("not found") =>
            {
                Renewal::Gone
            }
            Err(e) => Renewal::Failed(describe(&e)),
        };
    };
    if let Err(e) = keeper.keep_alive().await {
        return Renewal::Failed(describe(&e));
    }
    match answers.message().await {
        Ok(Some(answer)) if answer.ttl() > 0 => Renewal::Alive,
        Ok(Some(_)) => Renewal::Gone,
        Ok(None) => Renewal::Failed("the keep-alive stream ended".to_string()),
        Err(e) => Renewal::Failed(describe(&e)),
    }
}

/// Reads the whole `prefix`, then watches it from the next revision; again after any failure,
/// with backoff.
async fn watch_prefix(
    mut client: Client,
    prefix: String,
    call_timeout: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut attempts = 0u32;
    loop {
        let error = watch_once(&mut client, &prefix, call_timeout, &events, &mut attempts).await;
        if events.send(Event::WatchFailed(error)).is_err() {
            return;
        }
        tokio::time::sleep(RETRY.delay(attempts)).await;
        attempts = attempts.saturating_add(1);
    }
}

async fn watch_once(
    client: &mut Client,
    prefix: &str,
    call_timeout: Duration,
    events: &mpsc::UnboundedSender<Event>,
    attempts: &mut u32,
) -> String {
    let read = match within(
        call_timeout,
        client.get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    {
        Ok(read) => read,
        Err(e) => return e,
    };
    let revision = read.header().map_or(0, |header| header.revision());
    let kvs = read
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
                kv.create_revision(),
            )
        })
        .collect();
    let _ = events.send(Event::Read { kvs, revision });
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let (_watcher, mut stream) =
        match within(call_timeout, client.watch(prefix, Some(options))).await {
            Ok(watch) => watch,
            Err(e) => return e,
        };
    *attempts = 0;
    loop {
        let answer = match stream.message().await {
            Ok(Some(answer)) => answer,
            Ok(None) => return "the watch ended".to_string(),
            Err(e) => return describe(&e),
        };
        if answer.canceled() {
            return format!("the watch was canceled: {}", answer.cancel_reason());
        }
        let changes: Vec<Change> = answer
            .events()
            .iter()
            .filter_map(|event| {
                let kv = event.kv()?;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(match event.event_type() {
                    EventType::Put => Change::Put {
                        key,
                        value: kv.value().to_vec(),
                        create_revision: kv.create_revision(),
                    },
                    EventType::Delete => Change::Delete {
                        key,
                        revision: kv.mod_revision(),
                    },
                })
            })
            .collect();
        if !changes.is_empty() && events.send(Event::Changed(changes)).is_err() {
            return "the session ended".to_string();
        }
    }
}
