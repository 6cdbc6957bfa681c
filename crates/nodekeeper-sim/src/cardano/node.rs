//! One simulated cardano-node as a state machine over time: replay, faults, dynamic block forging and the forge
//! counters.
//!
//! Owns everything a node *is*, but does no I/O and never reads the clock: every method takes `now`, the shell
//! reads the credential files and hands over a [`Credentials`] verdict, and [`Node::advance`] returns the blocks
//! forged for the shell to record. The HTTP layer and the tasks in `mod.rs` call it under a mutex.
//!
//! ## Forging model (after cardano-node's `Run.hs` and the wiki's "dynamic block forging")
//!
//! * At boot the node forges iff it was not started with `--start-as-non-producing-node` and all three credential
//!   files existed; it logs `Performing block forging reconfiguration: Enabling …` / `Disabling …` either way.
//! * SIGHUP re-reads the files: all present → forging enabled; a file missing (or no credential flags at all) →
//!   forging disabled; a file present but unreadable → `Block forging reconfiguration error`, nothing changes.
//!   While the node is still replaying, SIGHUP only logs `Changing block forging is not effective until consensus
//!   has started.` (the real node installs its forging-aware handler only once consensus runs). Under the
//!   `ignore-sighup` fault SIGHUP does nothing at all.
//! * The forge loop looks at every slot. While forging is enabled and the node is running, each slot counts in
//!   `Forge_forge_about_to_lead`; each of the pool's leader slots counts in `Forge_node_is_leader`, and makes one
//!   block iff the node is in sync (not `stuck`, not lagging), the slot is the current one (slots the loop only
//!   notices late are missed) and the operational certificate is valid for the slot's KES period; otherwise it
//!   counts in `slotsMissedNum`. `hang` and `slow` concern HTTP only: a hung node keeps forging, which is the
//!   case nodekeeper must not mistake for a dead node.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::chain::{ChainParams, Tip};
use super::fault::Fault;

/// What reading the three credential files gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// The node was started without credential flags (a relay).
    NotConfigured,
    /// All three files exist and were read.
    Present,
    /// These files do not exist.
    Missing(Vec<String>),
    /// A file exists but could not be read.
    Unreadable(String),
}

/// What a (re)configuration of block forging concluded, as cardano-node logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Forging is now enabled.
    Enabled,
    /// Forging is now disabled.
    Disabled,
    /// SIGHUP came before consensus started (while replaying): nothing changed.
    NotEffective,
    /// A credential file could not be read: nothing changed.
    Error(String),
}

impl Reload {
    /// The short name in `/sim/state`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reload::Enabled => "enabled",
            Reload::Disabled => "disabled",
            Reload::NotEffective => "not-effective",
            Reload::Error(_) => "error",
        }
    }

    /// The message cardano-node logs (`ppStartupInfoTrace` of `BlockForgingUpdate` / `BlockForgingUpdateError`).
    pub fn message(&self) -> String {
        match self {
            Reload::Enabled => "Performing block forging reconfiguration: Enabling block forging. To disable it please \
                 move/rename/remove the credentials files and then trigger reconfiguration via SIGHUP signal."
                .to_string(),
            Reload::Disabled => "Performing block forging reconfiguration: Disabling block forging, to enable it please \
                 make the credentials files available again and then re-trigger reconfiguration via SIGHUP signal."
                .to_string(),
            Reload::NotEffective => "Performing block forging reconfiguration: Changing block forging is not effective \
                 until consensus has started. "
                .to_string(),
            Reload::Error(error) => format!(
                "Block forging reconfiguration error: {error}\nBlock forging is not reconfigured."
            ),
        }
    }
}

/// A block this node forged: one line of the events file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgeEvent {
    /// The node's name.
    pub node: String,
    /// The absolute slot.
    pub slot: u64,
    /// The slot's epoch.
    pub epoch: u64,
    /// The slot within its epoch.
    pub slot_in_epoch: u64,
    /// The forged block's number (the node's tip + 1).
    pub block: u64,
    /// When the node forged it (RFC 3339).
    pub time: String,
}

/// The forge counters, as the `Forge_*` and `*Num` metrics report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    /// Slots the forge loop checked while forging was enabled.
    pub about_to_lead: u64,
    /// Leader slots checked.
    pub node_is_leader: u64,
    /// Non-leader slots checked.
    pub node_not_leader: u64,
    /// Blocks forged.
    pub forged: u64,
    /// Forged blocks adopted (all of them: the simulator has no competing chains).
    pub adopted: u64,
    /// Leader slots without a block.
    pub slots_missed: u64,
}

/// What a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Name in logs and events.
    pub name: String,
    /// The chain.
    pub params: ChainParams,
    /// Time from process start to the end of the replay.
    pub bootstrap: TimeDelta,
    /// The operational certificate's start KES period; `None`: the KES period at start.
    pub opcert_kes_period: Option<u64>,
    /// `--start-as-non-producing-node`.
    pub non_producing: bool,
}

/// How the node's tip relates to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Live,
    Frozen(Tip),
    Lag(u64),
}

/// The simulated node.
#[derive(Debug)]
pub struct Node {
    name: String,
    params: ChainParams,
    started_at: DateTime<Utc>,
    bootstrap: TimeDelta,
    fault: Fault,
    view: View,
    forging: bool,
    /// Whether credentials were ever loaded (the KES metrics appear then, and stay).
    kes_loaded: bool,
    opcert_kes_period: u64,
    counters: Counters,
    /// The last slot the forge loop processed.
    last_slot: Option<u64>,
    sighups: u64,
    last_reload: Option<Reload>,
}

impl Node {
    /// A node that starts at `now` with the boot-time credential verdict; returns the node and what it logs.
    pub fn new(
        config: NodeConfig,
        credentials: &Credentials,
        now: DateTime<Utc>,
    ) -> (Node, Reload) {
        let current_kes = config
            .params
            .kes_period(config.params.slot_at(now).unwrap_or(0));
        let forging = !config.non_producing && *credentials == Credentials::Present;
        let reload = if forging {
            Reload::Enabled
        } else {
            Reload::Disabled
        };
        let node = Node {
            name: config.name,
            params: config.params,
            started_at: now,
            bootstrap: config.bootstrap,
            fault: Fault::None,
            view: View::Live,
            forging,
            kes_loaded: forging,
            opcert_kes_period: config.opcert_kes_period.unwrap_or(current_kes),
            counters: Counters::default(),
            last_slot: None,
            sighups: 0,
            last_reload: Some(reload.clone()),
        };
        (node, reload)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chain parameters.
    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// Whether block forging is enabled.
    pub fn forging(&self) -> bool {
        self.forging
    }

    /// The forge counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// SIGHUPs received.
    pub fn sighups(&self) -> u64 {
        self.sighups
    }

    /// What the last (re)configuration concluded.
    pub fn last_reload(&self) -> Option<&Reload> {
        self.last_reload.as_ref()
    }

    /// When the node started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// Seconds since the node started.
    pub fn uptime(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from((now - self.started_at).num_seconds()).unwrap_or(0)
    }

    /// Whether the node is replaying the chain (start-up, or the `bootstrap` fault).
    pub fn replaying(&self, now: DateTime<Utc>) -> bool {
        self.fault == Fault::Bootstrap || now < self.started_at + self.bootstrap
    }

    /// Whether the node follows the chain's tip (not stuck, not lagging, not replaying).
    pub fn in_sync(&self, now: DateTime<Utc>) -> bool {
        !self.replaying(now) && self.view == View::Live
    }

    /// The wall-clock slot at `now` (0 before the system start).
    pub fn wall_slot(&self, now: DateTime<Utc>) -> u64 {
        self.params.slot_at(now).unwrap_or(0)
    }

    /// The node's tip at `now`; `None` while replaying.
    pub fn tip(&self, now: DateTime<Utc>) -> Option<Tip> {
        if self.replaying(now) {
            return None;
        }
        let slot = self.wall_slot(now);
        Some(match self.view {
            View::Live => self.params.tip_at(slot),
            View::Frozen(tip) => tip,
            View::Lag(slots) => self.params.tip_at(slot.saturating_sub(slots)),
        })
    }

    /// The KES period of the wall-clock slot.
    pub fn current_kes_period(&self, now: DateTime<Utc>) -> u64 {
        self.params.kes_period(self.wall_slot(now))
    }

    /// The operational certificate's start KES period.
    pub fn opcert_kes_period(&self) -> u64 {
        self.opcert_kes_period
    }

    /// The first KES period the operational certificate is no longer valid for.
    pub fn opcert_expiry_kes_period(&self) -> u64 {
        self.opcert_kes_period
            .saturating_add(self.params.max_kes_evolutions())
    }

    /// KES periods left before the certificate expires (0 once expired); what the `kes N` fault says while set.
    pub fn remaining_kes_periods(&self, now: DateTime<Utc>) -> u64 {
        if let Fault::Kes { remaining } = self.fault {
            return remaining;
        }
        self.opcert_expiry_kes_period()
            .saturating_sub(self.current_kes_period(now))
    }

    /// Whether the KES metrics are shown: once credentials were loaded, and from then on.
    pub fn kes_loaded(&self) -> bool {
        self.kes_loaded
    }

    /// Switches to `fault`. `Crash` is recorded but exiting is the shell's job.
    pub fn set_fault(&mut self, fault: Fault, now: DateTime<Utc>) {
        self.view = match fault {
            Fault::Stuck => match self.view {
                // Setting `stuck` twice keeps the first freeze point.
                View::Frozen(tip) => View::Frozen(tip),
                _ => View::Frozen(self.tip(now).unwrap_or_default()),
            },
            Fault::Lag { slots } => View::Lag(slots),
            Fault::None
            | Fault::Bootstrap
            | Fault::Hang
            | Fault::Slow { .. }
            | Fault::IgnoreSighup
            | Fault::Crash
            | Fault::Kes { .. } => View::Live,
        };
        self.fault = fault;
    }

    /// Handles a SIGHUP given the credential files' verdict; `None` under `ignore-sighup` (nothing happens,
    /// nothing is logged).
    pub fn sighup(&mut self, credentials: &Credentials, now: DateTime<Utc>) -> Option<Reload> {
        self.sighups += 1;
        if self.fault == Fault::IgnoreSighup {
            return None;
        }
        let reload = if self.replaying(now) {
            Reload::NotEffective
        } else {
            match credentials {
                Credentials::Present => {
                    self.forging = true;
                    self.kes_loaded = true;
                    Reload::Enabled
                }
                Credentials::NotConfigured | Credentials::Missing(_) => {
                    self.forging = false;
                    Reload::Disabled
                }
                Credentials::Unreadable(error) => Reload::Error(error.clone()),
            }
        };
        self.last_reload = Some(reload.clone());
        Some(reload)
    }

    /// Runs the forge loop up to `now`: every slot since the last call. Returns the blocks forged.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<ForgeEvent> {
        let Some(current) = self.params.slot_at(now) else {
            return Vec::new();
        };
        // The first call looks at the current slot only; a long gap (a suspended process) is cut short.
        let first = match self.last_slot {
            Some(last) if last >= current => return Vec::new(),
            Some(last) => (last + 1).max(current.saturating_sub(100_000)),
            None => current,
        };
        self.last_slot = Some(current);
        if !self.forging || self.replaying(now) {
            return Vec::new();
        }
        let mut events = Vec::new();
        for slot in first..=current {
            self.counters.about_to_lead += 1;
            if !self.params.is_leader(slot) {
                self.counters.node_not_leader += 1;
                continue;
            }
            self.counters.node_is_leader += 1;
            let kes = self.params.kes_period(slot);
            let certificate_valid =
                kes >= self.opcert_kes_period && kes < self.opcert_expiry_kes_period();
            match self.tip(now) {
                Some(tip) if slot == current && self.view == View::Live && certificate_valid => {
                    self.counters.forged += 1;
                    self.counters.adopted += 1;
                    events.push(ForgeEvent {
                        node: self.name.clone(),
                        slot,
                        epoch: self.params.epoch_of(slot),
                        slot_in_epoch: self.params.slot_in_epoch(slot),
                        block: tip.block + 1,
                        time: now.to_rfc3339(),
                    });
                }
                _ => self.counters.slots_missed += 1,
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(leader_rate: f64) -> ChainParams {
        ChainParams::try_new(1_700_000_000, 1000, 600, 100, 3, 11, leader_rate).unwrap()
    }

    fn config(leader_rate: f64, non_producing: bool) -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            params: params(leader_rate),
            bootstrap: TimeDelta::seconds(2),
            opcert_kes_period: None,
            non_producing,
        }
    }

    /// The start time of `slot` plus a little.
    fn at(slot: u64) -> DateTime<Utc> {
        params(0.0).slot_time(slot) + TimeDelta::milliseconds(10)
    }

    #[test]
    fn boot_reads_the_credentials_unless_non_producing() {
        let (node, reload) = Node::new(config(0.05, false), &Credentials::Present, at(1000));
        assert!(node.forging());
        assert_eq!(reload, Reload::Enabled);
        assert!(reload.message().contains("Enabling block forging"));
        let (node, reload) = Node::new(config(0.05, true), &Credentials::Present, at(1000));
        assert!(!node.forging());
        assert_eq!(reload, Reload::Disabled);
        assert!(!node.kes_loaded());
        let missing = Credentials::Missing(vec!["kes.skey".into()]);
        let (node, _) = Node::new(config(0.05, false), &missing, at(1000));
        assert!(!node.forging());
    }

    #[test]
    fn replay_then_the_chain_tip() {
        let (node, _) = Node::new(config(0.05, false), &Credentials::Present, at(1000));
        assert!(node.replaying(at(1001)));
        assert_eq!(node.tip(at(1001)), None);
        assert!(!node.replaying(at(1002)));
        assert_eq!(node.tip(at(1500)), Some(params(0.0).tip_at(1500)));
        assert!(node.in_sync(at(1500)));
    }

    #[test]
    fn forges_on_every_leader_slot_while_enabled() {
        let (mut node, _) = Node::new(config(1.0, false), &Credentials::Present, at(1000));
        assert!(node.advance(at(1001)).is_empty(), "replaying");
        let mut events = Vec::new();
        for slot in 1002..1012 {
            events.extend(node.advance(at(slot)));
        }
        assert_eq!(events.len(), 10);
        assert_eq!(events[0].slot, 1002);
        assert_eq!(events[0].epoch, 1);
        assert_eq!(events[0].slot_in_epoch, 402);
        assert_eq!(events[0].block, params(0.0).tip_at(1002).block + 1);
        assert_eq!(node.counters().forged, 10);
        assert_eq!(node.counters().node_is_leader, 10);
        // Calling again inside the same slot forges nothing more.
        assert!(node.advance(at(1011)).is_empty());
        // Slots noticed late are missed.
        let late = node.advance(at(1015));
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].slot, 1015);
        assert_eq!(node.counters().slots_missed, 3);
    }

    #[test]
    fn only_the_schedule_slots_make_blocks() {
        let (mut node, _) = Node::new(config(0.05, false), &Credentials::Present, at(0));
        let mut forged = Vec::new();
        for slot in 2..1200 {
            forged.extend(node.advance(at(slot)).into_iter().map(|e| e.slot));
        }
        let schedule: Vec<u64> = params(0.05)
            .leader_schedule(0)
            .into_iter()
            .chain(params(0.05).leader_schedule(1))
            .filter(|slot| *slot >= 2)
            .collect();
        // 100 slots per KES period, 3 evolutions: the certificate of period 0 ends at slot 300.
        let valid: Vec<u64> = schedule
            .iter()
            .copied()
            .filter(|slot| *slot < 300)
            .collect();
        assert_eq!(forged, valid);
        assert!(valid.len() < schedule.len());
        assert!(!forged.is_empty());
    }

    #[test]
    fn sighup_toggles_forging_after_replay_only() {
        let (mut node, _) = Node::new(config(1.0, true), &Credentials::Present, at(1000));
        assert_eq!(
            node.sighup(&Credentials::Present, at(1001)),
            Some(Reload::NotEffective)
        );
        assert!(!node.forging());
        assert!(
            Reload::NotEffective
                .message()
                .contains("not effective until consensus has started")
        );
        assert_eq!(
            node.sighup(&Credentials::Present, at(1003)),
            Some(Reload::Enabled)
        );
        assert!(node.forging());
        assert!(node.kes_loaded());
        let unreadable = Credentials::Unreadable("kes.skey: permission denied".into());
        let reload = node.sighup(&unreadable, at(1004)).unwrap();
        assert!(
            reload
                .message()
                .starts_with("Block forging reconfiguration error")
        );
        assert!(node.forging(), "an error changes nothing");
        let missing = Credentials::Missing(vec!["kes.skey".into()]);
        assert_eq!(node.sighup(&missing, at(1005)), Some(Reload::Disabled));
        assert!(!node.forging());
        assert!(node.kes_loaded(), "KES metrics stay");
        node.set_fault(Fault::IgnoreSighup, at(1006));
        assert_eq!(node.sighup(&Credentials::Present, at(1006)), None);
        assert!(!node.forging());
        assert_eq!(node.sighups(), 5);
        assert_eq!(node.last_reload(), Some(&Reload::Disabled));
    }

    #[test]
    fn out_of_sync_nodes_miss_their_slots() {
        let (mut node, _) = Node::new(config(1.0, false), &Credentials::Present, at(1000));
        node.advance(at(1002));
        node.set_fault(Fault::Stuck, at(1003));
        let frozen = node.tip(at(1003));
        assert!(node.advance(at(1003)).is_empty());
        assert_eq!(node.tip(at(1100)), frozen);
        node.set_fault(Fault::Lag { slots: 50 }, at(1101));
        assert_eq!(node.tip(at(1101)), Some(params(0.0).tip_at(1051)));
        assert!(node.advance(at(1101)).is_empty());
        node.set_fault(Fault::Hang, at(1102));
        assert_eq!(node.advance(at(1102)).len(), 1, "a hung node still forges");
        node.set_fault(Fault::Bootstrap, at(1103));
        assert_eq!(node.tip(at(1103)), None);
        assert!(node.advance(at(1103)).is_empty());
        node.set_fault(Fault::None, at(1104));
        assert_eq!(node.advance(at(1104)).len(), 1);
    }

    #[test]
    fn kes_periods_and_expiry() {
        // 100 slots per KES period, 3 evolutions: the certificate made at slot 1000 (period 10) ends at 13.
        let (mut node, _) = Node::new(config(1.0, false), &Credentials::Present, at(1000));
        assert_eq!(node.current_kes_period(at(1000)), 10);
        assert_eq!(node.opcert_kes_period(), 10);
        assert_eq!(node.opcert_expiry_kes_period(), 13);
        assert_eq!(node.remaining_kes_periods(at(1250)), 1);
        assert_eq!(node.remaining_kes_periods(at(1300)), 0);
        node.advance(at(1298));
        assert_eq!(node.advance(at(1299)).len(), 1);
        assert!(node.advance(at(1300)).is_empty(), "expired certificate");
        let mut config = config(1.0, false);
        config.opcert_kes_period = Some(4);
        let (node, _) = Node::new(config, &Credentials::Present, at(1000));
        assert_eq!(node.remaining_kes_periods(at(1000)), 0);
    }

    #[test]
    fn the_kes_fault_sets_the_remaining_periods_until_cleared() {
        let (mut node, _) = Node::new(config(1.0, false), &Credentials::Present, at(1000));
        assert_eq!(node.remaining_kes_periods(at(1050)), 3);
        node.set_fault(Fault::Kes { remaining: 1 }, at(1050));
        assert_eq!(node.remaining_kes_periods(at(1050)), 1);
        assert_eq!(
            node.tip(at(1051)),
            Some(params(0.0).tip_at(1051)),
            "otherwise healthy"
        );
        assert_eq!(node.advance(at(1052)).len(), 1, "still forges");
        node.set_fault(Fault::None, at(1060));
        assert_eq!(node.remaining_kes_periods(at(1060)), 3, "a new certificate");
    }
}
