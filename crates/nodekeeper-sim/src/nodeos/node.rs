//! One simulated nodeos as a state machine over time: syncing then in sync, faults, the producer's pause flag,
//! and the blocks it makes. No I/O and no clock: every method takes `now`; [`Node::advance`] returns the blocks
//! this node made since the last call for the shell to record.
//!
//! ## Head
//! In sync, the head is the chain head ([`ChainParams::head_at`]). A node starts *syncing*: its head starts
//! [`SYNC_GAP_SECS`] of blocks behind and closes the gap linearly over `--bootstrap-secs` (monotonic, faster than
//! the chain), then follows the chain. The `bootstrap` fault holds it that far behind; clearing it restarts the
//! catch-up. `stuck` freezes the head where it was; `lag N` keeps it `N` behind.
//!
//! ## Production
//! The node makes block `n` when `n` is its producer's turn, the block's time is at or after the moment the node
//! got in sync, and at that block the node is not paused and has no fault that stops production (`stuck`, `lag`,
//! `hang`, `bootstrap`; the exits never get that far). Everything that changes pause or fault first settles the
//! blocks up to now under the old state (the shell calls [`Node::advance`] before any change), so state is
//! constant between two advances and settling a range of blocks at once is exact. Blocks from before the process
//! started are never made.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::chain::{ChainParams, nodeos_time};
use super::fault::Fault;

/// How far behind (in seconds of blocks) a syncing node starts, and where the `bootstrap` fault holds it.
pub const SYNC_GAP_SECS: i64 = 3600;

/// One block this node made: one line of the events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockEvent {
    /// The node's name (`--name`).
    pub node: String,
    /// The producer account it produced for (`--producer`).
    pub producer: String,
    /// The block number.
    pub block_num: u64,
    /// The round the block belongs to (block_num / (12 x producers)).
    pub round: u64,
    /// The block's timestamp, nodeos style (UTC, no zone).
    pub time: String,
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Name in logs and events.
    pub name: String,
    /// The producer account this node produces for.
    pub producer: String,
    /// The chain.
    pub params: ChainParams,
    /// `server_version_string`, e.g. `v1.2.2`.
    pub version: String,
    /// Time from process start to in sync.
    pub bootstrap: TimeDelta,
    /// Whether production starts paused (`--pause-on-startup`).
    pub pause_on_startup: bool,
}

/// The simulated node.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    started_at: DateTime<Utc>,
    fault: Fault,
    paused: bool,
    /// The current catch-up: from `sync_from` (full gap) to `synced_at` (in sync).
    sync_from: DateTime<Utc>,
    synced_at: DateTime<Utc>,
    /// The head frozen by `stuck`.
    frozen: Option<u64>,
    /// The last chain block whose production was settled.
    last_settled: u64,
    blocks_made: u64,
}

impl Node {
    /// A node that starts at `now`.
    pub fn new(config: NodeConfig, now: DateTime<Utc>) -> Node {
        let last_settled = config.params.head_at(now);
        Node {
            paused: config.pause_on_startup,
            sync_from: now,
            synced_at: now + config.bootstrap,
            started_at: now,
            config,
            fault: Fault::None,
            frozen: None,
            last_settled,
            blocks_made: 0,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The producer account this node produces for.
    pub fn producer(&self) -> &str {
        &self.config.producer
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.config.params
    }

    /// `server_version_string`.
    pub fn version(&self) -> &str {
        &self.config.version
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// Whether production is paused (what `/v1/producer/paused` answers).
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Blocks made since start.
    pub fn blocks_made(&self) -> u64 {
        self.blocks_made
    }

    /// Seconds since start.
    pub fn uptime(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from((now - self.started_at).num_seconds()).unwrap_or(0)
    }

    /// Whether the node is in sync at `now` (not syncing, not under `bootstrap`).
    pub fn in_sync(&self, now: DateTime<Utc>) -> bool {
        self.fault != Fault::Bootstrap && now >= self.synced_at
    }

    fn gap_blocks(&self) -> u64 {
        self.params().blocks_in(TimeDelta::seconds(SYNC_GAP_SECS))
    }

    /// The node's head block number at `now`.
    pub fn head(&self, now: DateTime<Utc>) -> u64 {
        let params = self.params();
        let chain = params.head_at(now);
        let gap = self.gap_blocks();
        let base = if self.fault == Fault::Bootstrap {
            chain.saturating_sub(gap)
        } else if now < self.synced_at {
            let total = (self.synced_at - self.sync_from).num_milliseconds().max(1);
            let left = (self.synced_at - now).num_milliseconds().clamp(0, total);
            let behind = u128::from(gap) * u128::try_from(left).unwrap_or(0)
                / u128::try_from(total).unwrap_or(1);
            chain.saturating_sub(u64::try_from(behind).unwrap_or(gap))
        } else {
            chain
        };
        match self.fault {
            Fault::Stuck => self.frozen.unwrap_or(base),
            Fault::Lag { blocks } => base.min(chain.saturating_sub(blocks)),
            _ => base,
        }
        .max(1)
    }

    /// The last irreversible block at `now`: the head minus the chain's LIB lag (at least 1).
    pub fn lib(&self, now: DateTime<Utc>) -> u64 {
        self.head(now)
            .saturating_sub(self.params().lib_lag())
            .max(1)
    }

    /// Whether, fault- and pause-wise, the node would make its producer's blocks now.
    pub fn may_produce(&self) -> bool {
        !self.paused
            && matches!(
                self.fault,
                Fault::None | Fault::Slow { .. } | Fault::RefusePause
            )
    }

    /// Whether the node makes its producer's blocks right now (in sync too, and the producer is scheduled).
    pub fn producing(&self, now: DateTime<Utc>) -> bool {
        self.may_produce()
            && self.in_sync(now)
            && self.params().producers().contains(&self.config.producer)
    }

    /// `POST /v1/producer/pause`: pauses, except under `refuse-pause`, which leaves production running.
    /// Returns whether the node is paused afterwards.
    pub fn pause(&mut self) -> bool {
        if self.fault != Fault::RefusePause {
            self.paused = true;
        }
        self.paused
    }

    /// `POST /v1/producer/resume`.
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Switches to `fault` at `now` (call [`Node::advance`] first). The exits are the shell's job.
    pub fn set_fault(&mut self, fault: Fault, now: DateTime<Utc>) {
        if fault == Fault::Stuck {
            if self.fault != Fault::Stuck {
                self.frozen = Some(self.head(now));
            }
        } else {
            self.frozen = None;
        }
        if self.fault == Fault::Bootstrap && fault != Fault::Bootstrap {
            self.sync_from = now;
            self.synced_at = now + self.config.bootstrap;
        }
        self.fault = fault;
    }

    /// Settles the chain's blocks up to `now`: returns those this node made, oldest first.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<BlockEvent> {
        let chain = self.params().head_at(now);
        let mut events = Vec::new();
        if chain <= self.last_settled {
            return events;
        }
        if self.may_produce() && self.fault != Fault::Bootstrap {
            let params = self.params().clone();
            let ours = self.config.producer.as_str();
            let mut n = self.last_settled + 1;
            while n <= chain {
                if params.producer_of(n) != ours {
                    match params.next_turn_of(ours, n) {
                        Some(next) => n = next,
                        None => break,
                    }
                    continue;
                }
                let time = params.block_time(n);
                if time >= self.synced_at {
                    events.push(BlockEvent {
                        node: self.config.name.clone(),
                        producer: ours.to_string(),
                        block_num: n,
                        round: params.round_of(n),
                        time: nodeos_time(time),
                    });
                }
                n += 1;
            }
        }
        self.blocks_made += events.len() as u64;
        self.last_settled = chain;
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS_MS: i64 = 1_700_000_000_000;

    fn at_block(n: i64, plus_ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(GENESIS_MS + n * 500 + plus_ms).unwrap()
    }

    fn config(name: &str, pause: bool, bootstrap_ms: i64) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            producer: "ours".into(),
            params: ChainParams::try_new(
                1_700_000_000,
                500,
                vec!["ours".into(), "other".into()],
                [7; 32],
                3,
            )
            .unwrap(),
            version: "v1.2.2".into(),
            bootstrap: TimeDelta::milliseconds(bootstrap_ms),
            pause_on_startup: pause,
        }
    }

    fn nums(events: &[BlockEvent]) -> Vec<u64> {
        events.iter().map(|e| e.block_num).collect()
    }

    #[test]
    fn syncs_then_follows_the_chain() {
        // Start mid-way through block 10000 with a 2 s catch-up.
        let start = at_block(10_000, 100);
        let node = Node::new(config("n", false, 2000), start);
        assert!(!node.in_sync(start));
        assert_eq!(node.head(start), 10_000 - 7200);
        let mid = at_block(10_002, 100);
        assert_eq!(node.head(mid), 10_002 - 3600);
        let synced = at_block(10_004, 100);
        assert!(node.in_sync(synced));
        assert_eq!(node.head(synced), 10_004);
        assert_eq!(node.lib(synced), 10_001);
        // Monotonic through the catch-up.
        let mut last = 0;
        for ms in (0..3000).step_by(50) {
            let head = node.head(start + TimeDelta::milliseconds(ms));
            assert!(head >= last);
            last = head;
        }
    }

    #[test]
    fn makes_only_its_producers_blocks_once_in_sync() {
        // Block 24 starts a turn of `ours` (blocks 24..=35), `other` has 36..=47.
        let start = at_block(20, 10);
        let mut node = Node::new(config("n", false, 1000), start);
        assert!(node.advance(at_block(23, 10)).is_empty());
        // In sync from block 22 (start + 1 s); blocks 24..=30 are made.
        let events = node.advance(at_block(30, 10));
        assert_eq!(nums(&events), (24..=30).collect::<Vec<_>>());
        assert_eq!(events[0].producer, "ours");
        assert_eq!(events[0].node, "n");
        assert_eq!(events[0].round, 1);
        assert_eq!(events[0].time, "2023-11-14T22:13:32.000");
        // Nothing twice; the other producer's turn makes nothing; the next round's turn does.
        assert!(node.advance(at_block(30, 400)).is_empty());
        let events = node.advance(at_block(60, 10));
        assert_eq!(nums(&events), (31..=35).chain(48..=59).collect::<Vec<_>>());
        assert_eq!(node.blocks_made(), 24);
    }

    #[test]
    fn a_syncing_node_makes_nothing_from_before_it_was_in_sync() {
        let start = at_block(0, 10);
        let mut node = Node::new(config("n", false, 3000), start);
        // In sync at block 6: 7..=11 are made, 1..=5 are not.
        assert_eq!(
            nums(&node.advance(at_block(12, 0))),
            (7..=11).collect::<Vec<_>>()
        );
    }

    #[test]
    fn pause_and_faults_stop_production() {
        let start = at_block(20, 10);
        let mut node = Node::new(config("n", true, 0), start);
        assert!(node.paused());
        assert!(node.advance(at_block(36, 10)).is_empty());
        node.resume();
        assert!(node.advance(at_block(47, 10)).is_empty());
        assert_eq!(
            nums(&node.advance(at_block(52, 10))),
            vec![48, 49, 50, 51, 52]
        );
        node.set_fault(Fault::Stuck, at_block(52, 10));
        let frozen = node.head(at_block(52, 10));
        assert!(node.advance(at_block(55, 10)).is_empty());
        assert_eq!(node.head(at_block(55, 10)), frozen);
        node.set_fault(Fault::Lag { blocks: 4 }, at_block(55, 10));
        assert_eq!(node.head(at_block(56, 10)), 52);
        assert!(node.advance(at_block(56, 10)).is_empty());
        node.set_fault(Fault::Hang, at_block(56, 10));
        assert!(node.advance(at_block(57, 10)).is_empty());
        node.set_fault(Fault::Slow { delay_ms: 10 }, at_block(57, 10));
        assert_eq!(nums(&node.advance(at_block(58, 10))), vec![58]);
        assert!(node.pause());
        assert!(node.advance(at_block(59, 10)).is_empty());
    }

    #[test]
    fn refuse_pause_keeps_producing() {
        let start = at_block(20, 10);
        let mut node = Node::new(config("n", false, 0), start);
        node.set_fault(Fault::RefusePause, start);
        assert!(!node.pause());
        assert!(!node.paused());
        assert_eq!(nums(&node.advance(at_block(26, 10))), vec![24, 25, 26]);
        node.set_fault(Fault::None, at_block(26, 10));
        assert!(node.pause());
        assert!(node.advance(at_block(30, 10)).is_empty());
    }

    #[test]
    fn bootstrap_falls_behind_then_catches_up() {
        // 100_008..=100_019 is a turn of `ours`.
        let start = at_block(100_000, 10);
        let mut node = Node::new(config("n", false, 1000), start);
        let now = at_block(100_010, 10);
        assert!(node.in_sync(now));
        assert_eq!(nums(&node.advance(now)), vec![100_008, 100_009, 100_010]);
        node.set_fault(Fault::Bootstrap, now);
        assert!(!node.in_sync(now));
        assert_eq!(node.head(now), 100_010 - 7200);
        assert!(node.advance(at_block(100_012, 10)).is_empty());
        node.set_fault(Fault::None, at_block(100_012, 10));
        assert_eq!(node.head(at_block(100_012, 10)), 100_012 - 7200);
        assert!(!node.in_sync(at_block(100_013, 10)));
        assert!(node.advance(at_block(100_013, 10)).is_empty());
        assert!(node.in_sync(at_block(100_014, 10)));
        assert_eq!(node.head(at_block(100_014, 10)), 100_014);
        assert_eq!(nums(&node.advance(at_block(100_015, 10))), vec![100_015]);
    }

    #[test]
    fn two_nodes_make_the_same_blocks() {
        let start = at_block(20, 10);
        let mut a = Node::new(config("a", false, 0), start);
        let mut b = Node::new(config("b", false, 0), at_block(21, 300));
        let now = at_block(30, 10);
        assert_eq!(nums(&a.advance(now)), nums(&b.advance(now)));
    }
}
