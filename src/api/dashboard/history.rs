//! Each node's height over the last hour, sampled from the status snapshots for the dashboard's
//! sparklines. Pure and bounded: at most one sample per [`History::step_secs`] per node, none older
//! than [`History::window_secs`], only the nodes of the latest snapshot.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::status::Snapshot;

/// The heights seen, per node: `(unix seconds, height)`, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct History {
    /// The shortest time between two samples of a node.
    pub step_secs: i64,
    /// How far back samples are kept.
    pub window_secs: i64,
    /// The samples, per node name.
    pub nodes: BTreeMap<String, VecDeque<(i64, u64)>>,
}

impl Default for History {
    /// One sample every 10 s over an hour: at most 361 per node.
    fn default() -> History {
        History::new(10, 3600)
    }
}

impl History {
    /// An empty history (`step_secs` and `window_secs` at least 1).
    pub fn new(step_secs: i64, window_secs: i64) -> History {
        History {
            step_secs: step_secs.max(1),
            window_secs: window_secs.max(1),
            nodes: BTreeMap::new(),
        }
    }

    /// The most samples a node can have.
    pub fn capacity(&self) -> usize {
        usize::try_from(self.window_secs / self.step_secs + 1).unwrap_or(usize::MAX)
    }

    /// Records the heights of `snapshot`, taken at `at` (unix seconds): a node's sample when its
    /// last one is at least a step old; nodes gone from the snapshot are forgotten, samples older
    /// than the window dropped. A clock that went back drops the samples from the future.
    pub fn record(&mut self, at: i64, snapshot: &Snapshot) {
        let capacity = self.capacity();
        self.nodes
            .retain(|name, _| snapshot.nodes.iter().any(|node| &node.name == name));
        for node in &snapshot.nodes {
            let samples = self.nodes.entry(node.name.clone()).or_default();
            while samples.back().is_some_and(|&(time, _)| time > at) {
                samples.pop_back();
            }
            if let Some(height) = node.height
                && samples
                    .back()
                    .is_none_or(|&(time, _)| at - time >= self.step_secs)
            {
                samples.push_back((at, height));
            }
            while samples
                .front()
                .is_some_and(|&(time, _)| at - time > self.window_secs)
                || samples.len() > capacity
            {
                samples.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::NodeLine;

    fn pool(heights: &[(&str, Option<u64>)]) -> Snapshot {
        Snapshot {
            nodes: heights
                .iter()
                .map(|&(name, height)| NodeLine {
                    name: name.into(),
                    height,
                    ..NodeLine::default()
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn samples(history: &History, node: &str) -> Vec<(i64, u64)> {
        history.nodes[node].iter().copied().collect()
    }

    #[test]
    fn one_sample_per_step_and_none_without_a_height() {
        let mut history = History::new(10, 60);
        history.record(100, &pool(&[("a", Some(1)), ("b", None)]));
        history.record(105, &pool(&[("a", Some(2)), ("b", Some(7))]));
        history.record(110, &pool(&[("a", Some(3)), ("b", Some(8))]));
        assert_eq!(samples(&history, "a"), [(100, 1), (110, 3)]);
        assert_eq!(samples(&history, "b"), [(105, 7)]);
    }

    #[test]
    fn old_samples_and_gone_nodes_are_dropped_and_the_size_is_bounded() {
        let mut history = History::new(10, 60);
        for tick in 0..1000 {
            history.record(tick, &pool(&[("a", Some(tick as u64)), ("b", Some(1))]));
        }
        let a = samples(&history, "a");
        assert_eq!(a.first(), Some(&(940, 940)));
        assert_eq!(a.last(), Some(&(990, 990)));
        assert!(a.len() <= history.capacity(), "{}", a.len());
        history.record(1000, &pool(&[("a", Some(1000))]));
        assert!(!history.nodes.contains_key("b"));
    }

    #[test]
    fn a_clock_that_went_back_drops_the_samples_from_the_future() {
        let mut history = History::new(10, 60);
        history.record(100, &pool(&[("a", Some(1))]));
        history.record(200, &pool(&[("a", Some(2))]));
        history.record(150, &pool(&[("a", Some(3))]));
        assert_eq!(samples(&history, "a"), [(150, 3)]);
    }
}
