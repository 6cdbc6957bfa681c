//! What cardano-node's Prometheus text (`hasPrometheus`, default `:12798/metrics`) says, pure:
//! the exposition lines decoded, and the `cardano_node_metrics_*` values nodekeeper reads, under
//! either suffix a node version uses (`_int` or `_counter`; `_real` for ratios). Nothing here
//! panics on any bytes a node sends; a line that does not parse is skipped, but a value nodekeeper
//! needs that is present and not a number makes the answer `Malformed`.

use std::collections::BTreeMap;

use crate::chain::{NodeState, NodeStatus, ProbeError};

/// The prefix of every cardano-node metric.
pub const PREFIX: &str = "cardano_node_metrics_";

/// The values nodekeeper reads; `None` when the node does not (yet) export one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// `blockNum`: the tip's block number.
    pub block_num: Option<u64>,
    /// `slotNum`: the tip's slot; 0 while starting or replaying.
    pub slot_num: Option<u64>,
    /// `epoch`.
    pub epoch: Option<u64>,
    /// `slotInEpoch`.
    pub slot_in_epoch: Option<u64>,
    /// `density` (ratio).
    pub density: Option<f64>,
    /// `forks`.
    pub forks: Option<u64>,
    /// `Forge_forge_about_to_lead` (legacy tracing; `Forge_about_to_lead` under the new one):
    /// slots the forge loop checked; moves every slot while block forging is enabled, stops when
    /// it is disabled (the demotion's evidence; cardano-node #6576: an 11.0.1 node started
    /// non-producing moves it before its first SIGHUP).
    pub about_to_lead: Option<u64>,
    /// `forging_enabled` (cardano-node 8.10 on): 1 after a reconfiguration enabled block forging,
    /// 0 after one disabled it (cardano-node #6113: 1 at a first start as non-producing node).
    pub forging_enabled: Option<u64>,
    /// `Forge_forged`: blocks this node forged.
    pub forged: Option<u64>,
    /// `Forge_adopted`: of those, adopted.
    pub adopted: Option<u64>,
    /// `Forge_node_is_leader`: slots it was leader of.
    pub is_leader: Option<u64>,
    /// `slotsMissedNum`.
    pub slots_missed: Option<u64>,
    /// `currentKESPeriod`.
    pub current_kes_period: Option<u64>,
    /// `remainingKESPeriods`: KES evolutions left on the operational certificate.
    pub remaining_kes_periods: Option<u64>,
}

impl Metrics {
    /// The chain-neutral status: starting while `slotNum` is 0 or absent (replaying), else
    /// Running with `blockNum` as its height. How far behind the slot of now it is, is the
    /// policy's judgement.
    pub fn status(&self, version: &str) -> NodeStatus {
        let state = match (self.slot_num, self.block_num) {
            (Some(slot), Some(_)) if slot > 0 => NodeState::Running,
            _ => NodeState::Booting("Starting".into()),
        };
        let running = state == NodeState::Running;
        NodeStatus {
            state,
            version: version.to_string(),
            height: self.block_num.filter(|_| running),
            irreversible_height: None,
            tip_hash: None,
            tip_date: match (self.epoch, self.slot_in_epoch) {
                (Some(epoch), Some(slot)) if running => Some(format!("{epoch}.{slot}")),
                _ => None,
            },
            last_block_time: None,
            tip_time: None,
            uptime_secs: None,
        }
    }
}

impl Metrics {
    /// When the tip's slot began, through `genesis` (`systemStart + slotNum × slotLength`), as
    /// seen at `now`; `None` while `slotNum` is 0 or absent (starting, replaying), and when that
    /// date is more than an epoch back: the Shelley-only arithmetic (`genesis`) does not know an
    /// earlier era's slots (mainnet's and preprod's Byron, 20 s slots), which put every tip months
    /// or years back; such a tip is judged by its height alone rather than restarted for an era.
    pub fn tip_time(
        &self,
        genesis: &super::genesis::Genesis,
        now: std::time::SystemTime,
    ) -> Option<std::time::SystemTime> {
        let slot = self.slot_num.filter(|slot| *slot > 0)?;
        let time = genesis.slot_time(slot);
        let epoch = genesis
            .slot_length
            .saturating_mul(u32::try_from(genesis.epoch_length).unwrap_or(u32::MAX));
        let age = now.duration_since(time).unwrap_or_default();
        (age <= epoch).then_some(time)
    }
}

/// Decodes the exposition text into the values nodekeeper reads.
pub fn parse(body: &[u8]) -> Result<Metrics, ProbeError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ProbeError::Malformed("metrics are not UTF-8 text".into()))?;
    let samples = samples(text);
    if !samples.keys().any(|name| name.starts_with(PREFIX)) {
        return Err(ProbeError::Malformed(format!(
            "no {PREFIX}* metric in {} bytes",
            body.len()
        )));
    }
    let count = |name: &str| count(&samples, name);
    Ok(Metrics {
        block_num: count("blockNum")?,
        slot_num: count("slotNum")?,
        epoch: count("epoch")?,
        slot_in_epoch: count("slotInEpoch")?,
        density: ratio(&samples, "density")?,
        forks: count("forks")?,
        about_to_lead: match count("Forge_forge_about_to_lead")? {
            Some(value) => Some(value),
            None => count("Forge_about_to_lead")?,
        },
        forging_enabled: count("forging_enabled")?,
        forged: count("Forge_forged")?,
        adopted: count("Forge_adopted")?,
        is_leader: count("Forge_node_is_leader")?,
        slots_missed: count("slotsMissedNum")?,
        current_kes_period: count("currentKESPeriod")?,
        remaining_kes_periods: count("remainingKESPeriods")?,
    })
}

/// Every `name value` sample line (labels dropped, the first sample of a name kept; comments and
/// lines that do not parse skipped).
fn samples(text: &str) -> BTreeMap<&str, &str> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ', '\t']) {
            Some(at) => line.split_at(at),
            None => continue,
        };
        let rest = match rest.strip_prefix('{') {
            Some(labelled) => match labelled.find('}') {
                Some(end) => &labelled[end + 1..],
                None => continue,
            },
            None => rest,
        };
        if let Some(value) = rest.split_whitespace().next() {
            samples.entry(name).or_insert(value);
        }
    }
    samples
}

/// `{PREFIX}{name}_int`, else `_counter`, else bare, as a whole number.
fn count(samples: &BTreeMap<&str, &str>, name: &str) -> Result<Option<u64>, ProbeError> {
    let Some((key, value)) = lookup(samples, name, &["_int", "_counter", ""]) else {
        return Ok(None);
    };
    let number: f64 = value
        .parse()
        .map_err(|_| ProbeError::Malformed(format!("{key} is {value:?}, not a number")))?;
    if !(number.is_finite() && number >= 0.0 && number.fract() == 0.0 && number < 1e15) {
        return Err(ProbeError::Malformed(format!(
            "{key} is {value}, not a count"
        )));
    }
    // A finite whole number under 10^15: exact as an integer.
    Ok(Some(number as u64))
}

/// `{PREFIX}{name}_real`, else bare, as a number.
fn ratio(samples: &BTreeMap<&str, &str>, name: &str) -> Result<Option<f64>, ProbeError> {
    let Some((key, value)) = lookup(samples, name, &["_real", ""]) else {
        return Ok(None);
    };
    value
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
        .map(Some)
        .ok_or_else(|| ProbeError::Malformed(format!("{key} is {value:?}, not a number")))
}

fn lookup<'a>(
    samples: &BTreeMap<&'a str, &'a str>,
    name: &str,
    suffixes: &[&str],
) -> Option<(String, &'a str)> {
    suffixes.iter().find_map(|suffix| {
        let key = format!("{PREFIX}{name}{suffix}");
        samples.get(key.as_str()).map(|value| (key, *value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_8: &str = "\
# TYPE cardano_node_metrics_blockNum_int gauge
cardano_node_metrics_blockNum_int 10480210
cardano_node_metrics_slotNum_int 123456789
cardano_node_metrics_epoch_int 480
cardano_node_metrics_slotInEpoch_int 313989
cardano_node_metrics_density_real 4.9e-2
cardano_node_metrics_forks_int 3
cardano_node_metrics_Forge_forge_about_to_lead_int 86400
cardano_node_metrics_Forge_forged_int 12
cardano_node_metrics_Forge_adopted_int 11
cardano_node_metrics_Forge_node_is_leader_int 12
cardano_node_metrics_slotsMissedNum_int 0
cardano_node_metrics_currentKESPeriod_int 952
cardano_node_metrics_remainingKESPeriods_int 40
cardano_node_metrics_connectionManager_incomingConns 4
cardano_node_metrics_peerSelection_hot{kind=\"all\"} 20
rts_gc_gc_cpu_ms 1234
";

    #[test]
    fn the_int_names_are_read() {
        let metrics = parse(NODE_8.as_bytes()).unwrap();
        assert_eq!(metrics.block_num, Some(10_480_210));
        assert_eq!(metrics.slot_num, Some(123_456_789));
        assert_eq!(metrics.forged, Some(12));
        assert_eq!(metrics.about_to_lead, Some(86_400));
        assert_eq!(metrics.remaining_kes_periods, Some(40));
        assert_eq!(metrics.density, Some(0.049));
        let status = metrics.status("cardano-node 8.9.0");
        assert_eq!(status.state, NodeState::Running);
        assert_eq!(status.height, Some(10_480_210));
        assert_eq!(status.tip_date.as_deref(), Some("480.313989"));
    }

    #[test]
    fn the_counter_names_of_other_versions_are_read_alike() {
        let counters = NODE_8.replace("_int ", "_counter ");
        assert_eq!(parse(counters.as_bytes()), parse(NODE_8.as_bytes()));
    }

    #[test]
    fn the_new_tracing_forge_names_are_read() {
        let text = "cardano_node_metrics_Forge_about_to_lead_counter 77\n\
                    cardano_node_metrics_forging_enabled 0\n";
        let metrics = parse(text.as_bytes()).unwrap();
        assert_eq!(metrics.about_to_lead, Some(77));
        assert_eq!(metrics.forging_enabled, Some(0));
        assert_eq!(parse(NODE_8.as_bytes()).unwrap().forging_enabled, None);
    }

    #[test]
    fn slot_zero_is_a_node_still_starting() {
        let starting = "cardano_node_metrics_slotNum_int 0\ncardano_node_metrics_blockNum_int 0\n";
        let status = parse(starting.as_bytes()).unwrap().status("v");
        assert_eq!(status.state, NodeState::Booting("Starting".into()));
        assert_eq!(status.height, None);
    }

    #[test]
    fn garbage_is_malformed_and_unknown_lines_are_skipped() {
        for (body, why) in [
            ("hello", "no cardano_node_metrics_"),
            ("cardano_node_metrics_blockNum_int many\n", "not a number"),
            ("cardano_node_metrics_blockNum_int -3\n", "not a count"),
            ("cardano_node_metrics_blockNum_int 1.5\n", "not a count"),
        ] {
            match parse(body.as_bytes()) {
                Err(ProbeError::Malformed(detail)) => assert!(detail.contains(why), "{detail}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(parse(&[0xff, 0xfe]).is_err());
        let odd = "cardano_node_metrics_slotNum_int 5\n{broken\nname_only\n";
        assert_eq!(parse(odd.as_bytes()).unwrap().slot_num, Some(5));
    }

    #[test]
    fn the_tips_time_comes_from_the_genesis_within_an_epoch() {
        use std::time::{Duration, SystemTime};
        let genesis = crate::chain::cardano::genesis::Genesis {
            system_start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            slot_length: Duration::from_secs(1),
            epoch_length: 600,
            slots_per_kes_period: 129_600,
            max_kes_evolutions: 62,
        };
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs);
        let tip = |slot: u64| Metrics {
            slot_num: Some(slot),
            ..Metrics::default()
        };
        // slotNum 5000 began at systemStart + 5000 s.
        assert_eq!(tip(5000).tip_time(&genesis, at(5030)), Some(at(5000)));
        assert_eq!(tip(5000).tip_time(&genesis, at(5600)), Some(at(5000)));
        // Further back than an epoch: an era the genesis does not know, not an age.
        assert_eq!(tip(5000).tip_time(&genesis, at(5601)), None);
        // Replaying: no tip.
        assert_eq!(tip(0).tip_time(&genesis, at(10)), None);
    }
}
