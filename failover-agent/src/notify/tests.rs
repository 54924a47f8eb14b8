use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::exec::environment;
use super::queue::{HookCounters, Queue};
use super::*;
use crate::events::{ClusterStanding, Override, Reload};

fn reload(error: Option<&str>) -> Event {
    Event::Reload(Reload {
        at: SystemTime::UNIX_EPOCH + Duration::from_millis(1500),
        error: error.map(str::to_string),
        changes: None,
    })
}

#[test]
fn the_body_is_the_event_with_host_and_version() {
    let body: serde_json::Value = serde_json::from_str(&body(&reload(Some("bad")), "ns1")).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "event": "reload",
            "at": 1.5,
            "error": "bad",
            "changes": null,
            "host": "ns1",
            "agent_version": env!("CARGO_PKG_VERSION"),
        })
    );
}

#[test]
fn every_event_has_its_variables() {
    let env = |event: &Event| -> Vec<(String, String)> {
        environment(event, "ns1")
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    };
    let common = |event: &str| {
        vec![
            ("FAILOVER_EVENT".to_string(), event.to_string()),
            ("FAILOVER_TIME".to_string(), "1.500".to_string()),
            ("FAILOVER_HOST".to_string(), "ns1".to_string()),
            (
                "FAILOVER_AGENT_VERSION".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ]
    };
    let mut want = common("reload");
    want.push(("FAILOVER_RESULT".into(), "refused".into()));
    want.push(("FAILOVER_ERROR".into(), "bad file".into()));
    assert_eq!(env(&reload(Some("bad\0 file"))), want, "NUL bytes go");
    let ended = Event::Override(Override {
        at: SystemTime::UNIX_EPOCH + Duration::from_millis(1500),
        record: "www.example.test.".into(),
        rtype: "AAAA".into(),
        endpoint: "2001:db8::1".parse().unwrap(),
        mode: None,
        until: None,
        origin: "admin state file".into(),
    });
    let mut want = common("override");
    for (k, v) in [
        ("FAILOVER_RECORD", "www.example.test."),
        ("FAILOVER_TYPE", "AAAA"),
        ("FAILOVER_ENDPOINT", "2001:db8::1"),
        ("FAILOVER_MODE", ""),
        ("FAILOVER_UNTIL", ""),
        ("FAILOVER_ORIGIN", "admin state file"),
    ] {
        want.push((k.into(), v.into()));
    }
    assert_eq!(env(&ended), want);
    let alone = Event::Cluster(ClusterStanding {
        at: SystemTime::UNIX_EPOCH + Duration::from_millis(1500),
        node: "ns2".into(),
        from: "joined".into(),
        to: "alone".into(),
        live: vec![],
        reason: "no answer from etcd for 3s (lease_ttl)".into(),
    });
    let mut want = common("cluster");
    for (k, v) in [
        ("FAILOVER_NODE", "ns2"),
        ("FAILOVER_FROM", "joined"),
        ("FAILOVER_TO", "alone"),
        ("FAILOVER_LIVE", ""),
        ("FAILOVER_REASON", "no answer from etcd for 3s (lease_ttl)"),
    ] {
        want.push((k.into(), v.into()));
    }
    assert_eq!(env(&alone), want);
    let body: serde_json::Value = serde_json::from_str(&body(&alone, "ns2")).unwrap();
    assert_eq!(body["event"], "cluster");
    assert_eq!(body["to"], "alone");
    assert_eq!(body["live"], serde_json::json!([]));
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_a_closed_one_drops_the_rest() {
    let counters = Arc::new(HookCounters::default());
    let queue = Queue::new("test".into(), 2, counters.clone());
    let delivery = |n: usize| {
        Arc::new(Delivery {
            event: reload(Some(&n.to_string())),
            json: n.to_string(),
        })
    };
    for n in 0..5 {
        queue.push(delivery(n));
    }
    assert_eq!(queue.len(), 2);
    let c = counters.snapshot();
    assert_eq!((c.queued, c.dropped), (5, 3));
    assert_eq!(queue.pop().await.unwrap().json, "3");
    queue.push(delivery(5));
    queue.close();
    assert!(queue.pop().await.is_none(), "closed: nothing more");
    queue.push(delivery(6));
    let c = counters.snapshot();
    assert_eq!(
        (c.queued, c.dropped),
        (6, 5),
        "4 and 5 dropped at close, 6 refused"
    );
}
