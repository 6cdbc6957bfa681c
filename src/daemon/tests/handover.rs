//! Hand-overs of the pool's key through the chain adapters' leader control.

use std::time::Duration;

use super::{Pool, until, wait};
use crate::events::Event;
use crate::status::{ActionState, NodeAction};

const MINUTE: Duration = Duration::from_secs(60);

fn leadership() -> serde_json::Value {
    serde_json::json!({"leadership": {"enabled": true, "secret_file": "secret.yaml", "slot_window": 3}})
}

#[tokio::test(start_paused = true)]
async fn the_key_goes_to_one_node_and_an_operator_moves_it_demote_first() {
    let pool = Pool::new(&["node1", "node2"], leadership());
    let running = pool.run();
    until("a node is promoted", MINUTE, || async {
        (!pool.calls.matching("promote").is_empty()).then_some(())
    })
    .await;
    until("the status shows the leader", MINUTE, || async {
        running.shared.line("node1").leader.then_some(())
    })
    .await;
    assert_eq!(pool.calls.all(), ["promote node1"]);
    assert_eq!(pool.node("node1").enclave().len(), 1);
    assert!(pool.node("node2").enclave().is_empty());

    let view = running.ask("node2", NodeAction::Leader).await.unwrap();
    assert_eq!(view.state, ActionState::Running);
    let done = running.finished(&view.id).await;
    assert!(
        matches!(&done.state, ActionState::Done { message } if message.contains("node2 promoted")),
        "{done:?}"
    );
    // Demote, verify, promote: never two holders.
    assert_eq!(
        pool.calls.all(),
        ["promote node1", "demote node1", "promote node2"]
    );
    assert!(pool.node("node1").enclave().is_empty());
    assert_eq!(pool.node("node2").enclave().len(), 1);
    until("the leader switch is reported", MINUTE, || async {
        running
            .shared
            .events()
            .iter()
            .any(|event| {
                matches!(event, Event::LeaderSwitched { node, previous: Some(previous), reason, .. }
                    if node == "node2" && previous == "node1" && reason == "operator request")
            })
            .then_some(())
    })
    .await;
    // The operator's choice stays: nothing moves it back.
    wait(Duration::from_secs(30)).await;
    assert_eq!(pool.calls.all().len(), 3, "{:?}", pool.calls.all());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_promotion_leaves_no_holder_and_is_tried_again() {
    let pool = Pool::new(&["node1", "node2"], leadership());
    pool.node("node1").refuse_promotion();
    let running = pool.run();
    until("some node holds the key", MINUTE, || async {
        (pool.node("node1").enclave().len() + pool.node("node2").enclave().len() == 1).then_some(())
    })
    .await;
    let promotions = pool.calls.matching("promote");
    assert_eq!(promotions[0], "promote node1", "{promotions:?}");
    assert!(promotions.len() >= 2, "{promotions:?}");
    wait(Duration::from_secs(20)).await;
    assert_eq!(
        pool.node("node1").enclave().len() + pool.node("node2").enclave().len(),
        1,
        "never two holders"
    );
    running.stop().await;
}
