//! `/metrics`: every metric of the agent in one prometheus-client registry.
//!
//! Three sources:
//! - counters fed as things happen: the agent's events (transitions,
//!   answer changes, reloads) and every check result;
//! - read at scrape time: the kernel's per-CPU packet counters (summed) and
//!   the userspace server's answer counters;
//! - from the last status snapshot the agent's loop published: per-endpoint
//!   and per-record gauges, the data plane's size.
//!
//! prometheus-client writes OpenMetrics; [`to_text_004`] turns that into
//! the Prometheus text format 0.0.4, served unless the scraper asks for
//! OpenMetrics.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use failover_common::{Counter as KernelCounter, MAX_RECORDS};
use log::debug;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::checks::result::{CheckObserver, CheckResult};
use crate::control::StatusReport;
use crate::dataplane::CounterReader;
use crate::events::{EndpointState, Event, Observer};
use crate::notify::Notifier;
use crate::serve::server::{RESPONSE_KINDS, ServerStats};

/// Label sets: (name, value) pairs, in the order shown.
type Labels = Vec<(&'static str, String)>;

/// `Content-Type` of the Prometheus text format.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/metrics` reads at scrape time besides its own counters.
pub struct Sources {
    pub status: watch::Receiver<Arc<StatusReport>>,
    /// The kernel's counters (None: no data plane, e.g. in unit tests).
    pub kernel: Option<CounterReader>,
    /// The userspace DNS server's counters (None in mode front).
    pub server: Option<Arc<ServerStats>>,
    /// The `[[notify]]` hooks and their counters (None: not counted).
    pub hooks: Option<Notifier>,
}

/// The registry and the handles the agent's loop feeds.
pub struct Metrics {
    registry: Registry,
    feed: Arc<Feed>,
    /// The last scrape's size: the next one's buffer is allocated once.
    last_size: AtomicU64,
}

/// Counters fed from the agent's loop (events and check results).
#[derive(Debug)]
struct Feed {
    transitions: Family<Labels, Counter>,
    answer_changes: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    standing_changes: Family<Labels, Counter>,
    last_reload_success: Gauge<f64, AtomicU64>,
    check_duration: Family<Labels, Histogram, fn() -> Histogram>,
    check_results: Family<Labels, Counter>,
}

fn check_histogram() -> Histogram {
    // 0.5 ms to ~16 s: loopback connects to timeouts.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new(sources: Sources) -> Metrics {
        let feed = Arc::new(Feed {
            transitions: Family::default(),
            answer_changes: Family::default(),
            reloads: Family::default(),
            standing_changes: Family::default(),
            last_reload_success: Gauge::default(),
            check_duration: Family::new_with_constructor(check_histogram),
            check_results: Family::default(),
        });
        // The configuration in force was loaded successfully at start.
        feed.last_reload_success.set(now_unix());
        for result in ["applied", "refused"] {
            let _ = feed
                .reloads
                .get_or_create(&vec![("result", result.to_string())]);
        }
        let mut registry = Registry::default();
        registry.register(
            "failover_build",
            "The agent's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]),
        );
        registry.register(
            "failover_endpoint_transitions",
            "State changes of an endpoint of a record, by the state it changed to",
            feed.transitions.clone(),
        );
        registry.register(
            "failover_answer_changes",
            "Changes of a record's published answer",
            feed.answer_changes.clone(),
        );
        registry.register(
            "failover_config_reloads",
            "Configuration reloads, applied or refused",
            feed.reloads.clone(),
        );
        registry.register(
            "failover_cluster_standing_changes",
            "With [cluster]: changes of this node's standing, by the standing it changed to (joined, alone)",
            feed.standing_changes.clone(),
        );
        registry.register(
            "failover_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded (Unix time)",
            feed.last_reload_success.clone(),
        );
        registry.register(
            "failover_check_duration_seconds",
            "How long health checks took, by check",
            feed.check_duration.clone(),
        );
        registry.register(
            "failover_check_results",
            "Health check results by check, result and failure reason",
            feed.check_results.clone(),
        );
        registry.register_collector(Box::new(Live::new(sources)));
        Metrics {
            registry,
            feed,
            last_size: AtomicU64::new(0),
        }
    }

    /// The observer that counts the agent's events.
    pub fn event_observer(&self) -> impl Observer + 'static {
        let feed = self.feed.clone();
        move |event: &Event| feed.event(event)
    }

    /// The observer that counts check results.
    pub fn check_observer(&self) -> Arc<dyn CheckObserver> {
        self.feed.clone()
    }

    /// OpenMetrics text, `# EOF` included.
    pub fn openmetrics(&self) -> String {
        let hint = self.last_size.load(Ordering::Relaxed) as usize;
        let mut out = String::with_capacity((hint + hint / 8).max(64 * 1024));
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        self.last_size.store(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// The Prometheus text format 0.0.4.
    pub fn text(&self) -> String {
        to_text_004(&self.openmetrics())
    }
}

impl Feed {
    fn event(&self, event: &Event) {
        match event {
            Event::Transition(t) => {
                self.transitions
                    .get_or_create(&vec![
                        ("record", t.record.clone()),
                        ("type", t.rtype.clone()),
                        ("endpoint", t.endpoint.to_string()),
                        ("to", t.to.name().to_string()),
                    ])
                    .inc();
            }
            Event::AnswerChange(a) => {
                self.answer_changes
                    .get_or_create(&vec![
                        ("record", a.record.clone()),
                        ("type", a.rtype.clone()),
                    ])
                    .inc();
            }
            Event::Reload(r) => {
                let result = if r.error.is_none() {
                    self.last_reload_success.set(crate::events::unix_time(r.at));
                    "applied"
                } else {
                    "refused"
                };
                self.reloads
                    .get_or_create(&vec![("result", result.to_string())])
                    .inc();
            }
            Event::Override(_) => {}
            Event::Cluster(c) => {
                self.standing_changes
                    .get_or_create(&vec![("to", c.to.clone())])
                    .inc();
            }
        }
    }
}

impl CheckObserver for Feed {
    fn check_done(&self, check: &str, kind: &'static str, result: &CheckResult) {
        self.check_duration
            .get_or_create(&vec![
                ("check", check.to_string()),
                ("kind", kind.to_string()),
            ])
            .observe(result.latency.as_secs_f64());
        let (outcome, reason) = match &result.outcome {
            Ok(()) => ("success", "none"),
            Err(failure) => ("failure", failure.reason()),
        };
        self.check_results
            .get_or_create(&vec![
                ("check", check.to_string()),
                ("kind", kind.to_string()),
                ("result", outcome.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }
}

fn now_unix() -> f64 {
    crate::events::unix_time(std::time::SystemTime::now())
}

/// What is read at scrape time.
struct Live {
    sources: Sources,
    /// Kernel counter reads that failed (logged at debug, once per scrape).
    kernel_errors: AtomicU64,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    fn new(sources: Sources) -> Live {
        Live {
            sources,
            kernel_errors: AtomicU64::new(0),
        }
    }
}

/// One family: its descriptor, then each (labels, value) as `kind`.
fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value as u64).encode(sample)?,
            // Whole numbers (states, counts) print as such.
            _ if value.fract() == 0.0 && value.abs() < 9.0e15 => {
                ConstGauge::new(value as i64).encode(sample)?
            }
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut responses: Vec<(Labels, f64)> = Vec::new();
        let mut rate_limited: Vec<([(&str, &str); 2], f64)> = Vec::new();
        if let Some(kernel) = &self.sources.kernel {
            match kernel.counters() {
                Ok(counters) => {
                    family(
                        &mut encoder,
                        "failover_xdp_packets",
                        "Packets the XDP program saw, by what it did (tx, pass, drop) and why",
                        MetricType::Counter,
                        // `rate_limited` is counted on top of an outcome:
                        // it has its own family below.
                        counters.iter().filter_map(|(c, n)| {
                            Some((
                                vec![
                                    ("verdict", c.verdict()?.to_string()),
                                    ("reason", c.name().to_string()),
                                ],
                                *n as f64,
                            ))
                        }),
                    )?;
                    for (c, n) in &counters {
                        let action = match c {
                            KernelCounter::RateLimited => "limited",
                            KernelCounter::RateLimitSlipped => "slipped",
                            KernelCounter::RateLimitDropped => "dropped",
                            _ => continue,
                        };
                        rate_limited.push(([("path", "kernel"), ("action", action)], *n as f64));
                    }
                    for (c, n) in &counters {
                        let rcode = match c {
                            KernelCounter::Answered => "NOERROR",
                            KernelCounter::AnsweredNodata => "NODATA",
                            KernelCounter::AnsweredServfail => "SERVFAIL",
                            _ => continue,
                        };
                        responses.push((response_labels("kernel", "udp", rcode), *n as f64));
                    }
                }
                Err(e) => {
                    self.kernel_errors.fetch_add(1, Ordering::Relaxed);
                    debug!("metrics: reading the kernel counters: {e:#}");
                }
            }
        }
        if let Some(server) = &self.sources.server {
            for (action, n) in [
                ("limited", &server.udp_rate_limited),
                ("slipped", &server.udp_slipped),
                ("dropped", &server.udp_dropped),
            ] {
                rate_limited.push((
                    [("path", "userspace"), ("action", action)],
                    n.load(Ordering::Relaxed) as f64,
                ));
            }
            for (proto, counts) in [
                ("udp", &server.udp_responses),
                ("tcp", &server.tcp_responses),
            ] {
                for (kind, n) in RESPONSE_KINDS.iter().zip(counts.iter()) {
                    responses.push((
                        response_labels("userspace", proto, kind),
                        n.load(Ordering::Relaxed) as f64,
                    ));
                }
            }
        }
        family(
            &mut encoder,
            "failover_dns_responses",
            "DNS answers sent, by path (kernel: XDP, userspace: the agent's server), transport and rcode (NODATA: NOERROR without answer records)",
            MetricType::Counter,
            responses,
        )?;
        family(
            &mut encoder,
            "failover_rate_limited_responses",
            "UDP answers over their source prefix's rate ([rate_limit]), by path and what became of them: limited (all of them, log_only included), slipped (sent TC=1 without records), dropped",
            MetricType::Counter,
            rate_limited,
        )?;
        if let Some(hooks) = &self.sources.hooks {
            let counters = hooks.counters();
            family(
                &mut encoder,
                "failover_notify_events",
                "Events of the [[notify]] hooks, by hook and outcome: queued, delivered, failed (given up), retried (attempts after a failure), dropped (queue full, or the hook removed by a reload)",
                MetricType::Counter,
                counters.iter().flat_map(|(hook, c)| {
                    [
                        ("queued", &c.queued),
                        ("delivered", &c.delivered),
                        ("failed", &c.failed),
                        ("retried", &c.retried),
                        ("dropped", &c.dropped),
                    ]
                    .map(|(outcome, n)| {
                        (
                            [("hook", hook.as_str()), ("outcome", outcome)],
                            n.load(Ordering::Relaxed) as f64,
                        )
                    })
                }),
            )?;
        }
        family(
            &mut encoder,
            "failover_kernel_read_errors",
            "Scrapes that could not read the kernel's packet counters",
            MetricType::Counter,
            [(NO_LABELS, self.kernel_errors.load(Ordering::Relaxed) as f64)],
        )?;

        // Cloned out of the watch at once: the loop's next send never waits.
        let status = self.sources.status.borrow().clone();
        encode_status(&mut encoder, &status)
    }
}

fn response_labels(path: &str, proto: &str, rcode: &str) -> Labels {
    vec![
        ("path", path.to_string()),
        ("proto", proto.to_string()),
        ("rcode", rcode.to_string()),
    ]
}

/// The gauges read from a status snapshot. Labels borrow from it: 10,000
/// endpoints make 70,000 series, and a scrape allocates none of them.
fn encode_status(encoder: &mut DescriptorEncoder, status: &StatusReport) -> fmt::Result {
    let endpoints = || {
        status
            .records
            .iter()
            .flat_map(|r| r.endpoints.iter().map(move |e| (r, e)))
    };
    family(
        encoder,
        "failover_endpoint_up",
        "1 when an endpoint's checks say healthy, 0 otherwise (unknown, unhealthy)",
        MetricType::Gauge,
        endpoints().map(|(r, e)| {
            (
                [
                    ("record", r.name.as_str()),
                    ("type", r.rtype.as_str()),
                    ("endpoint", e.address.as_str()),
                ],
                f64::from(u8::from(e.health == "healthy")),
            )
        }),
    )?;
    family(
        encoder,
        "failover_endpoint_state",
        "1 for the state the policy sees for an endpoint (its health, or an override), 0 for the others",
        MetricType::Gauge,
        endpoints().flat_map(|(r, e)| {
            EndpointState::ALL.iter().map(move |s| {
                (
                    [
                        ("record", r.name.as_str()),
                        ("type", r.rtype.as_str()),
                        ("endpoint", e.address.as_str()),
                        ("state", s.name()),
                    ],
                    f64::from(u8::from(e.state == s.name())),
                )
            })
        }),
    )?;
    let record_labels = |r: &'_ crate::control::RecordStatus| {
        [("record", r.name.clone()), ("type", r.rtype.clone())]
    };
    family(
        encoder,
        "failover_record_answer_addresses",
        "Addresses in a record's published answer (0 for NODATA, SERVFAIL or none yet)",
        MetricType::Gauge,
        status
            .records
            .iter()
            .map(|r| (record_labels(r), r.addresses.len() as f64)),
    )?;
    family(
        encoder,
        "failover_record_all_down",
        "1 while no endpoint of a record is usable (the answer is when_all_down's)",
        MetricType::Gauge,
        status
            .records
            .iter()
            .map(|r| (record_labels(r), f64::from(u8::from(r.all_down)))),
    )?;
    family(
        encoder,
        "failover_dataplane_records",
        "(name, type) entries the kernel's record map holds",
        MetricType::Gauge,
        [(NO_LABELS, status.answer_sets as f64)],
    )?;
    family(
        encoder,
        "failover_dataplane_records_capacity",
        "Most entries the kernel's record map can hold",
        MetricType::Gauge,
        [(NO_LABELS, f64::from(MAX_RECORDS))],
    )?;
    // With [cluster]: whether this node decides with the others, and how
    // many are live (a node alone shows as 1 on "alone").
    if let Some(cluster) = &status.cluster {
        family(
            encoder,
            "failover_cluster_standing",
            "1 for this node's standing in the cluster: joining, joined (the quorum decides) or alone (etcd out of reach: its own checks decide)",
            MetricType::Gauge,
            ["joining", "joined", "alone"].map(|standing| {
                (
                    [("node", cluster.node.as_str()), ("standing", standing)],
                    f64::from(u8::from(cluster.standing == standing)),
                )
            }),
        )?;
        family(
            encoder,
            "failover_cluster_config_mismatch",
            "Live nodes whose configuration digest (records, checks, policies, quorum) differs from this node's",
            MetricType::Gauge,
            [(NO_LABELS, cluster.config_mismatch.len() as f64)],
        )?;
        family(
            encoder,
            "failover_cluster_live_nodes",
            "Nodes whose etcd lease is alive, as this node last saw them",
            MetricType::Gauge,
            [(NO_LABELS, cluster.live.len() as f64)],
        )?;
    }
    Ok(())
}

/// The label set of a series without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// OpenMetrics text as the Prometheus text format 0.0.4: counters' HELP
/// and TYPE take the `_total` sample name, info becomes a gauge named
/// `_info`, `unknown` is `untyped`; `# UNIT`, `# EOF` and exemplars go.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some((help_name, text)) = help.take()
                && help_name == rest.split(' ').next().unwrap_or_default()
            {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if line.starts_with('#') {
            // # UNIT, # EOF: not in 0.0.4.
            continue;
        }
        if line.is_empty() {
            continue;
        }
        // A sample, without its exemplar (` # {...} value`).
        let sample = match line
            .match_indices(" # ")
            .map(|(at, _)| at)
            .find(|&at| !in_quotes(line, at))
        {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// Whether byte `at` of a sample line is inside a quoted label value.
fn in_quotes(line: &str, at: usize) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    for b in line.as_bytes()[..at].iter() {
        match (*b, escaped) {
            (_, true) => escaped = false,
            (b'\\', false) => escaped = true,
            (b'"', false) => quoted = !quoted,
            _ => {}
        }
    }
    quoted
}

/// Whether an `Accept` header asks for OpenMetrics over the text format:
/// its best quality for `application/openmetrics-text` beats that of
/// `text/plain` (or of anything else that matches).
pub fn wants_openmetrics(accept: &str) -> bool {
    let mut openmetrics = 0.0f32;
    let mut text = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::result::Failure;
    use crate::control::{EndpointReport, RecordStatus};
    use crate::events::{AnswerChange, Reload, Transition};
    use std::time::{Duration, SystemTime};

    fn status() -> StatusReport {
        let endpoint = |address: &str, health: &str, state: &str| EndpointReport {
            address: address.into(),
            health: health.into(),
            state: state.into(),
            ..EndpointReport::default()
        };
        StatusReport {
            answering: true,
            answer_sets: 3,
            records: vec![RecordStatus {
                name: "www.example.test.".into(),
                rtype: "A".into(),
                answer: "addresses".into(),
                addresses: vec!["192.0.2.11".into()],
                endpoints: vec![
                    endpoint("192.0.2.10", "unhealthy", "unhealthy"),
                    endpoint("192.0.2.11", "healthy", "drained"),
                ],
                ..RecordStatus::default()
            }],
            ..StatusReport::default()
        }
    }

    fn metrics() -> Metrics {
        let (_tx, rx) = watch::channel(Arc::new(status()));
        // The sender may go: the last value stays readable.
        Metrics::new(Sources {
            status: rx,
            kernel: None,
            server: Some(Arc::new(ServerStats::default())),
            hooks: None,
        })
    }

    fn feed(m: &Metrics) {
        let observer = m.event_observer();
        observer.observe(&Event::Transition(Transition {
            at: SystemTime::now(),
            record: "www.example.test.".into(),
            rtype: "A".into(),
            endpoint: "192.0.2.10".parse().unwrap(),
            from: EndpointState::Healthy,
            to: EndpointState::Unhealthy,
            reason: "3 checks failed".into(),
        }));
        observer.observe(&Event::AnswerChange(AnswerChange {
            at: SystemTime::now(),
            record: "www.example.test.".into(),
            rtype: "A".into(),
            answer: "192.0.2.11".into(),
            previous: Some("192.0.2.10".into()),
            addresses: vec!["192.0.2.11".parse().unwrap()],
            ttl: 30,
            all_down: false,
            degraded: false,
        }));
        observer.observe(&Event::Reload(Reload {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            error: None,
            changes: None,
        }));
        observer.observe(&Event::Cluster(crate::events::ClusterStanding {
            at: SystemTime::now(),
            node: "ns1".into(),
            from: "joined".into(),
            to: "alone".into(),
            live: vec![],
            reason: "no answer from etcd".into(),
        }));
        let checks = m.check_observer();
        checks.check_done(
            "web",
            "tcp",
            &CheckResult::new(Err(Failure::Refused), Duration::from_millis(3)),
        );
        checks.check_done(
            "web",
            "tcp",
            &CheckResult::new(Ok("connected".into()), Duration::from_millis(1)),
        );
    }

    #[test]
    fn text_format_has_every_family_with_counters_named_total() {
        let m = metrics();
        feed(&m);
        let text = m.text();
        for line in [
            "# TYPE failover_endpoint_transitions_total counter",
            r#"failover_endpoint_transitions_total{record="www.example.test.",type="A",endpoint="192.0.2.10",to="unhealthy"} 1"#,
            "# TYPE failover_answer_changes_total counter",
            r#"failover_answer_changes_total{record="www.example.test.",type="A"} 1"#,
            r#"failover_config_reloads_total{result="applied"} 1"#,
            r#"failover_config_reloads_total{result="refused"} 0"#,
            r#"failover_cluster_standing_changes_total{to="alone"} 1"#,
            "failover_config_last_reload_success_timestamp_seconds 1800000000.0",
            "# TYPE failover_check_duration_seconds histogram",
            r#"failover_check_duration_seconds_count{check="web",kind="tcp"} 2"#,
            r#"failover_check_duration_seconds_bucket{le="0.001",check="web",kind="tcp"} 1"#,
            r#"failover_check_results_total{check="web",kind="tcp",result="failure",reason="refused"} 1"#,
            r#"failover_check_results_total{check="web",kind="tcp",result="success",reason="none"} 1"#,
            r#"failover_endpoint_up{record="www.example.test.",type="A",endpoint="192.0.2.10"} 0"#,
            r#"failover_endpoint_up{record="www.example.test.",type="A",endpoint="192.0.2.11"} 1"#,
            r#"failover_endpoint_state{record="www.example.test.",type="A",endpoint="192.0.2.11",state="drained"} 1"#,
            r#"failover_endpoint_state{record="www.example.test.",type="A",endpoint="192.0.2.11",state="healthy"} 0"#,
            r#"failover_record_answer_addresses{record="www.example.test.",type="A"} 1"#,
            r#"failover_record_all_down{record="www.example.test.",type="A"} 0"#,
            "failover_dataplane_records 3",
            "failover_dataplane_records_capacity 16384",
            "# TYPE failover_build_info gauge",
            "# TYPE failover_dns_responses_total counter",
            r#"failover_dns_responses_total{path="userspace",proto="tcp",rcode="NXDOMAIN"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.contains(&format!(
            "failover_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        // Nothing of OpenMetrics' own syntax is left.
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut parts = line.split(' ').skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            // Every family has its HELP right before its TYPE.
            let help = format!("# HELP {name} ");
            let at = text.find(line).unwrap();
            let before = text[..at].lines().last().unwrap();
            assert!(before.starts_with(&help), "{before:?} before {line:?}");
        }
    }

    #[test]
    fn rate_limits_hooks_and_the_cluster_standing_are_counted() {
        let mut report = status();
        report.cluster = Some(crate::control::ClusterReport {
            node: "ns1".into(),
            standing: "alone".into(),
            live: vec!["ns1".into(), "ns2".into()],
            config_mismatch: vec!["ns2".into()],
            ..Default::default()
        });
        let (_tx, rx) = watch::channel(Arc::new(report));
        let server = Arc::new(ServerStats::default());
        server.udp_rate_limited.store(7, Ordering::Relaxed);
        server.udp_slipped.store(3, Ordering::Relaxed);
        server.udp_dropped.store(4, Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let hooks = Notifier::new(runtime.handle().clone());
        let m = Metrics::new(Sources {
            status: rx,
            kernel: None,
            server: Some(server),
            hooks: Some(hooks),
        });
        let text = m.text();
        for line in [
            r#"failover_rate_limited_responses_total{path="userspace",action="limited"} 7"#,
            r#"failover_rate_limited_responses_total{path="userspace",action="slipped"} 3"#,
            r#"failover_rate_limited_responses_total{path="userspace",action="dropped"} 4"#,
            "# TYPE failover_notify_events_total counter",
            r#"failover_cluster_standing{node="ns1",standing="alone"} 1"#,
            r#"failover_cluster_standing{node="ns1",standing="joined"} 0"#,
            "failover_cluster_live_nodes 2",
            "failover_cluster_config_mismatch 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // Without [cluster] there is no cluster family at all.
        assert!(!metrics().text().contains("failover_cluster_"));
    }

    #[test]
    fn ten_thousand_endpoints_have_every_series() {
        let records = crate::http::tests::ten_thousand_endpoints();
        let (_tx, rx) = watch::channel(Arc::new(StatusReport {
            records,
            ..StatusReport::default()
        }));
        let m = Metrics::new(Sources {
            status: rx,
            kernel: None,
            server: None,
            hooks: None,
        });
        let started = std::time::Instant::now();
        let om = m.openmetrics();
        let encoded = started.elapsed();
        let text = to_text_004(&om);
        eprintln!(
            "10,000 endpoints: {} bytes of text in {:?} ({encoded:?} encoding, the rest converting)",
            text.len(),
            started.elapsed()
        );
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        assert_eq!(count("failover_endpoint_up{"), 10_000);
        assert_eq!(count("failover_endpoint_state{"), 60_000);
        assert_eq!(count("failover_endpoint_state{") / 6, 10_000);
        let set = text
            .lines()
            .filter(|l| l.starts_with("failover_endpoint_state{") && l.ends_with(" 1"))
            .count();
        assert_eq!(set, 10_000, "one state set per endpoint");
        assert_eq!(count("failover_record_answer_addresses{"), 625);
    }

    #[test]
    fn openmetrics_keeps_its_own_names_and_eof() {
        let m = metrics();
        feed(&m);
        let om = m.openmetrics();
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE failover_endpoint_transitions counter\n"));
        assert!(om.contains("# TYPE failover_build info\n"));
    }

    #[test]
    fn conversion_of_each_openmetrics_type() {
        let om = "# HELP a_seconds A.\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total{x=\"1 # 2\"} 3 # {trace=\"q\"} 1.0\n\
                  # HELP b B.\n# TYPE b info\nb_info{v=\"1\"} 1\n\
                  # HELP c C.\n# TYPE c unknown\nc 1\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP a_seconds_total A.\n# TYPE a_seconds_total counter\na_seconds_total{x=\"1 # 2\"} 3\n\
             # HELP b_info B.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n\
             # HELP c C.\n# TYPE c untyped\nc 1\n"
        );
    }

    #[test]
    fn accept_negotiation() {
        // What Prometheus 2.x sends: OpenMetrics first.
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics(
            "text/plain;q=1,application/openmetrics-text;q=0.5"
        ));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
        assert!(wants_openmetrics("Application/OpenMetrics-Text"));
    }
}
