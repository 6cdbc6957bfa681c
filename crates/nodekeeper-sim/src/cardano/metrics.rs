//! The `GET /metrics` text: cardano-node's Prometheus exposition, rendered from a node at an instant.
//!
//! Owns the metric names and which of them exist when. Names are cardano-node's (`cardano_node_metrics_` +
//! the EKG name with dots as underscores + a type suffix). With `--metrics-suffix int` (legacy tracing, the
//! default) every integer ends in `_int` and the text has no comment lines, as cardano-node-tests expects of a
//! 1.3x/8.x node; with `--metrics-suffix counter` (new tracing) the counters end in `_counter` and `# TYPE` lines
//! precede the samples. Gauges (`blockNum`, `slotNum`, `epoch`, `slotInEpoch`, the KES periods, …) keep `_int`
//! either way; `density` is `_real`; the connection-manager and peer-selection gauges have no suffix.
//!
//! When: the chain gauges read 0 while the node replays. The forge counters and the KES gauges appear once the
//! node has loaded its credentials (at boot or on SIGHUP) and stay after forging is disabled, as real nodes keep
//! their last values (cardano-node #5751).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::config::MetricsSuffix;
use super::node::Node;

/// The common prefix.
const PREFIX: &str = "cardano_node_metrics_";

#[derive(Clone, Copy)]
enum Kind {
    /// `_int` gauge.
    Gauge,
    /// `_int` or `_counter`, by the suffix mode.
    Counter,
    /// `_real` gauge.
    Real,
    /// No suffix.
    Bare,
}

struct Writer {
    text: String,
    suffix: MetricsSuffix,
}

impl Writer {
    fn sample(&mut self, name: &str, kind: Kind, value: impl std::fmt::Display) {
        let (suffix, type_name) = match kind {
            Kind::Gauge => ("_int", "gauge"),
            Kind::Counter => match self.suffix {
                MetricsSuffix::Int => ("_int", "counter"),
                MetricsSuffix::Counter => ("_counter", "counter"),
            },
            Kind::Real => ("_real", "gauge"),
            Kind::Bare => ("", "gauge"),
        };
        if self.suffix == MetricsSuffix::Counter {
            let _ = writeln!(self.text, "# TYPE {PREFIX}{name}{suffix} {type_name}");
        }
        let _ = writeln!(self.text, "{PREFIX}{name}{suffix} {value}");
    }
}

/// Deterministic small numbers per node name (connections, peers), so nodes differ but do not flicker.
fn name_number(name: &str, modulo: u64) -> u64 {
    name.bytes().fold(0u64, |acc, byte| {
        acc.wrapping_mul(31).wrapping_add(u64::from(byte))
    }) % modulo
}

/// Renders the metrics of `node` at `now`.
pub fn render(node: &Node, now: DateTime<Utc>, suffix: MetricsSuffix) -> String {
    let mut w = Writer {
        text: String::new(),
        suffix,
    };
    let params = node.params();
    let tip = node.tip(now);
    let (slot, block, epoch, slot_in_epoch, density) = match tip {
        Some(tip) => (
            tip.slot,
            tip.block,
            params.epoch_of(tip.slot),
            params.slot_in_epoch(tip.slot),
            params.density(tip),
        ),
        None => (0, 0, 0, 0, 0.0),
    };
    w.sample("blockNum", Kind::Gauge, block);
    w.sample("slotNum", Kind::Gauge, slot);
    w.sample("epoch", Kind::Gauge, epoch);
    w.sample("slotInEpoch", Kind::Gauge, slot_in_epoch);
    w.sample("density", Kind::Real, density);
    w.sample("forks", Kind::Counter, 0);
    w.sample("txsInMempool", Kind::Gauge, 0);
    w.sample("mempoolBytes", Kind::Gauge, 0);
    w.sample("txsProcessedNum", Kind::Counter, 0);
    w.sample("nodeStartTime", Kind::Gauge, node.started_at().timestamp());
    if node.kes_loaded() {
        let counters = node.counters();
        w.sample(
            "Forge_forge_about_to_lead",
            Kind::Counter,
            counters.about_to_lead,
        );
        w.sample(
            "Forge_node_is_leader",
            Kind::Counter,
            counters.node_is_leader,
        );
        w.sample(
            "Forge_node_not_leader",
            Kind::Counter,
            counters.node_not_leader,
        );
        w.sample("Forge_forged", Kind::Counter, counters.forged);
        w.sample("Forge_adopted", Kind::Counter, counters.adopted);
        w.sample("Forge_didnt_adopt", Kind::Counter, 0);
        w.sample("blocksForgedNum", Kind::Counter, counters.forged);
        w.sample("nodeIsLeaderNum", Kind::Counter, counters.node_is_leader);
        w.sample("slotsMissedNum", Kind::Counter, counters.slots_missed);
        w.sample(
            "currentKESPeriod",
            Kind::Gauge,
            node.current_kes_period(now),
        );
        w.sample(
            "operationalCertificateStartKESPeriod",
            Kind::Gauge,
            node.opcert_kes_period(),
        );
        w.sample(
            "operationalCertificateExpiryKESPeriod",
            Kind::Gauge,
            node.opcert_expiry_kes_period(),
        );
        w.sample(
            "remainingKESPeriods",
            Kind::Gauge,
            node.remaining_kes_periods(now),
        );
    }
    let replaying = tip.is_none();
    let spread = name_number(node.name(), 3);
    let (incoming, outgoing) = if replaying {
        (0, 0)
    } else {
        (1 + spread, 2 + spread)
    };
    w.sample("connectionManager_incomingConns", Kind::Bare, incoming);
    w.sample("connectionManager_outgoingConns", Kind::Bare, outgoing);
    w.sample(
        "connectionManager_duplexConns",
        Kind::Bare,
        incoming.min(outgoing),
    );
    w.sample(
        "connectionManager_unidirectionalConns",
        Kind::Bare,
        outgoing - incoming.min(outgoing),
    );
    let hot = if replaying { 0 } else { outgoing };
    w.sample("peerSelection_cold", Kind::Bare, 10 + spread);
    w.sample("peerSelection_warm", Kind::Bare, 4);
    w.sample("peerSelection_hot", Kind::Bare, hot);
    w.sample(
        "Mem_resident",
        Kind::Gauge,
        2_147_483_648u64 + 4096 * spread,
    );
    w.text
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::cardano::chain::ChainParams;
    use crate::cardano::node::{Credentials, NodeConfig};

    fn node(credentials: &Credentials) -> (Node, ChainParams) {
        let params = ChainParams::try_new(1_700_000_000, 1000, 600, 100, 62, 1, 1.0).unwrap();
        let config = NodeConfig {
            name: "bp1".into(),
            params: params.clone(),
            bootstrap: TimeDelta::seconds(2),
            opcert_kes_period: Some(5),
            non_producing: false,
        };
        (
            Node::new(config, credentials, params.slot_time(1000)).0,
            params,
        )
    }

    fn value(text: &str, name: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")).map(str::to_string))
    }

    #[test]
    fn replaying_nodes_report_slot_zero() {
        let (node, params) = node(&Credentials::Present);
        let text = render(&node, params.slot_time(1001), MetricsSuffix::Int);
        assert_eq!(
            value(&text, "cardano_node_metrics_slotNum_int").as_deref(),
            Some("0")
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_blockNum_int").as_deref(),
            Some("0")
        );
        assert!(!text.contains('#'));
    }

    #[test]
    fn names_and_values_in_both_suffixes() {
        let (mut node, params) = node(&Credentials::Present);
        let now = params.slot_time(1010);
        node.advance(params.slot_time(1009));
        node.advance(now);
        let text = render(&node, now, MetricsSuffix::Int);
        let tip = params.tip_at(1010);
        assert_eq!(
            value(&text, "cardano_node_metrics_slotNum_int"),
            Some(tip.slot.to_string())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_blockNum_int"),
            Some(tip.block.to_string())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_epoch_int"),
            Some("1".into())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_slotInEpoch_int"),
            Some((tip.slot - 600).to_string())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_Forge_forged_int"),
            Some("2".into())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_currentKESPeriod_int"),
            Some("10".into())
        );
        assert_eq!(
            value(&text, "cardano_node_metrics_remainingKESPeriods_int"),
            Some("57".into())
        );
        for name in [
            "cardano_node_metrics_density_real",
            "cardano_node_metrics_forks_int",
            "cardano_node_metrics_Forge_adopted_int",
            "cardano_node_metrics_Forge_node_is_leader_int",
            "cardano_node_metrics_slotsMissedNum_int",
            "cardano_node_metrics_connectionManager_incomingConns",
            "cardano_node_metrics_connectionManager_outgoingConns",
            "cardano_node_metrics_peerSelection_cold",
            "cardano_node_metrics_peerSelection_warm",
            "cardano_node_metrics_peerSelection_hot",
            "cardano_node_metrics_Mem_resident_int",
        ] {
            assert!(value(&text, name).is_some(), "{name} missing:\n{text}");
        }
        let counter = render(&node, now, MetricsSuffix::Counter);
        assert_eq!(
            value(&counter, "cardano_node_metrics_Forge_forged_counter"),
            Some("2".into())
        );
        assert_eq!(
            value(&counter, "cardano_node_metrics_forks_counter"),
            Some("0".into())
        );
        assert_eq!(
            value(&counter, "cardano_node_metrics_Forge_forged_int"),
            None
        );
        assert!(value(&counter, "cardano_node_metrics_slotNum_int").is_some());
        assert!(counter.contains("# TYPE cardano_node_metrics_Forge_forged_counter counter\n"));
    }

    #[test]
    fn forge_and_kes_metrics_appear_with_credentials() {
        let (node, params) = node(&Credentials::Missing(vec!["kes.skey".into()]));
        let text = render(&node, params.slot_time(1010), MetricsSuffix::Int);
        assert!(!text.contains("Forge_"));
        assert!(!text.contains("KESPeriod"));
    }
}
