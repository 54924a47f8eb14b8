use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::*;
use crate::events::{
    AnswerChange, ClusterStanding, EndpointState, Event, Observer as _, Override, Reload,
    ReloadChanges, Transition,
};

/// Lines written by a subscriber, kept for the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// What `observe` makes the log say in `format`.
fn logged(format: LogFormat, events: &[Event]) -> Vec<String> {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = subscriber(format, move || writer.clone());
    let observer = LogObserver::new();
    tracing::subscriber::with_default(subscriber, || {
        for event in events {
            observer.observe(event);
        }
    });
    lines.take()
}

fn transition(to: EndpointState) -> Event {
    Event::Transition(Transition {
        at: SystemTime::now(),
        record: "www.example.test.".into(),
        rtype: "A".into(),
        endpoint: "192.0.2.1".parse().unwrap(),
        from: EndpointState::Healthy,
        to,
        reason: "3 consecutive failures".into(),
    })
}

fn answer() -> Event {
    Event::AnswerChange(AnswerChange {
        at: SystemTime::now(),
        record: "www.example.test.".into(),
        rtype: "A".into(),
        answer: "192.0.2.2".into(),
        previous: None,
        addresses: vec!["192.0.2.2".parse().unwrap()],
        ttl: 30,
        all_down: false,
        degraded: false,
    })
}

#[test]
fn text_lines_read_as_before() {
    let lines = logged(
        LogFormat::Text,
        &[
            transition(EndpointState::Unhealthy),
            answer(),
            {
                let Event::AnswerChange(mut degraded) = answer() else {
                    unreachable!()
                };
                degraded.record = "api.example.test.".into();
                degraded.previous = Some("192.0.2.1 192.0.2.2".into());
                degraded.degraded = true;
                Event::AnswerChange(degraded)
            },
            Event::Override(Override {
                at: SystemTime::UNIX_EPOCH,
                record: "www.example.test.".into(),
                rtype: "A".into(),
                endpoint: "192.0.2.1".parse().unwrap(),
                mode: Some("drain"),
                until: Some(SystemTime::UNIX_EPOCH),
                origin: "control socket".into(),
            }),
            Event::Reload(Reload {
                at: SystemTime::now(),
                error: Some("agent.toml: record[0].name: bad".into()),
                changes: None,
            }),
        ],
    );
    let tails: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once("] ").expect("a [time LEVEL target] prefix").1)
        .collect();
    assert_eq!(
        tails,
        [
            "www.example.test. A 192.0.2.1 healthy -> unhealthy (3 consecutive failures)",
            "www.example.test. A answer: 192.0.2.2 ttl 30 (was nothing)",
            "api.example.test. A answer: 192.0.2.2 ttl 30 (was 192.0.2.1 192.0.2.2) [degraded]",
            "www.example.test. A 192.0.2.1: drained until 1970-01-01T00:00:00Z (control socket)",
            "reload refused, the running configuration stays: agent.toml: record[0].name: bad",
        ]
    );
    assert!(
        lines[0].starts_with('[') && lines[0].contains("Z INFO  failover_agent::events] "),
        "{}",
        lines[0]
    );
    assert!(
        lines[4].contains(" ERROR failover_agent::events] "),
        "{}",
        lines[4]
    );
}

#[test]
fn json_lines_carry_the_stable_fields() {
    let lines = logged(
        LogFormat::Json,
        &[
            transition(EndpointState::Drained),
            answer(),
            Event::Reload(Reload {
                at: SystemTime::now(),
                error: None,
                changes: Some(ReloadChanges {
                    records: 3,
                    records_added: 1,
                    ..Default::default()
                }),
            }),
        ],
    );
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(json.len(), 3);
    let t = &json[0];
    assert_eq!(t["level"], "INFO");
    assert_eq!(t["target"], TARGET);
    assert_eq!(t["event"], "transition");
    assert_eq!(t["record"], "www.example.test.");
    assert_eq!(t["type"], "A");
    assert_eq!(t["endpoint"], "192.0.2.1");
    assert_eq!(t["from"], "healthy");
    assert_eq!(t["to"], "drained");
    assert_eq!(t["reason"], "3 consecutive failures");
    assert_eq!(t["left_out"], 0);
    assert!(t["timestamp"].as_str().unwrap().ends_with('Z'));
    let a = &json[1];
    assert_eq!(a["event"], "answer_change");
    assert_eq!(a["answer"], "192.0.2.2");
    assert_eq!(a["ttl"], 30);
    assert_eq!(a["all_down"], false);
    assert!(a.get("previous").is_none(), "no previous answer: {a}");
    let r = &json[2];
    assert_eq!(r["event"], "reload");
    assert_eq!(r["result"], "applied");
    assert_eq!(r["records"], 3);
    assert_eq!(r["records_added"], 1);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("reload: 3 records (1 new")
    );
}

#[test]
fn one_endpoint_cannot_flood_the_log() {
    let events: Vec<Event> = (0..15)
        .map(|_| transition(EndpointState::Unhealthy))
        .chain([answer()])
        .collect();
    let lines = logged(LogFormat::Text, &events);
    assert_eq!(
        lines.iter().filter(|l| l.contains("->")).count(),
        limit::LINES_PER_WINDOW as usize
    );
    // Another thing (the record's answer) has its own budget.
    assert!(lines.last().unwrap().contains("answer: 192.0.2.2"));
}

#[test]
fn a_cluster_standing_change_is_one_line_with_its_fields() {
    let standing = |from: &str, to: &str, live: &[&str], reason: &str| {
        Event::Cluster(ClusterStanding {
            at: SystemTime::now(),
            node: "ns1".into(),
            from: from.into(),
            to: to.into(),
            live: live.iter().map(|s| s.to_string()).collect(),
            reason: reason.into(),
        })
    };
    let events = [
        standing(
            "joined",
            "alone",
            &[],
            "no answer from etcd for 3s (lease_ttl): deciding from this node's own checks until it answers again",
        ),
        standing(
            "alone",
            "joined",
            &["ns1", "ns2"],
            "rejoined etcd as node ns1 at revision 9: 2 live nodes (ns1, ns2); health by quorum majority",
        ),
    ];
    let lines = logged(LogFormat::Json, &events);
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(json.len(), 2);
    let alone = &json[0];
    assert_eq!(alone["level"], "WARN");
    assert_eq!(alone["target"], TARGET);
    assert_eq!(alone["event"], "cluster");
    assert_eq!(alone["node"], "ns1");
    assert_eq!(
        (&alone["from"], &alone["to"]),
        (&"joined".into(), &"alone".into())
    );
    assert_eq!(alone["live"], "");
    assert!(
        alone["message"]
            .as_str()
            .unwrap()
            .starts_with("cluster: no answer from etcd for 3s (lease_ttl)"),
        "{alone}"
    );
    let back = &json[1];
    assert_eq!(back["level"], "INFO");
    assert_eq!(back["to"], "joined");
    assert_eq!(back["live"], "ns1 ns2");
    let text = logged(LogFormat::Text, &events[1..]);
    assert!(
        text[0].ends_with("] cluster: rejoined etcd as node ns1 at revision 9: 2 live nodes (ns1, ns2); health by quorum majority"),
        "{}",
        text[0]
    );
}
