use super::*;
use crate::checks::dns::DnsCheck;
use crate::checks::exec::ExecCheck;
use crate::checks::health::Damping;
use crate::checks::http::TlsCheck;
use crate::checks::settings::CheckKind;
use crate::checks::settings::CheckTarget;
use crate::checks::settings::{DEFAULT_FALL, DEFAULT_INTERVAL, DEFAULT_RISE, DEFAULT_TIMEOUT};
use crate::dns::rr::{RTYPE_AAAA, Rcode, Soa};
use crate::field::MAX_TTL;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The smallest valid configuration (one zone, one checked record), for
/// the tests of each section, which append theirs to it.
pub(crate) const ONE_RECORD: &str = r#"
[[zone]]
origin = "example.test."
[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "web"
endpoints = [{ address = "192.0.2.10" }]
[checks.web]
kind = "tcp"
port = 80
"#;

/// The example from the issue, verbatim.
const EXAMPLE: &str = r#"
[[zone]]
origin = "example.test."
ttl = 30

[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "web"
endpoints = [
  { address = "192.0.2.10", priority = 1 },
  { address = "192.0.2.11", priority = 2 },
]

[checks.web]
kind = "tcp"
port = 80
interval = "1s"
timeout = "500ms"
rise = 2
fall = 3
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml")
}

/// The example with `from` replaced by `to` (which must occur exactly once).
fn example_with(from: &str, to: &str) -> String {
    assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?} occurs once");
    EXAMPLE.replace(from, to)
}

fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(text: &str, expected: &[&str]) {
    let message = error_of(text);
    assert!(message.starts_with("test.toml:"), "{message}");
    for part in expected {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

/// The example's record with `extra` lines after `check = "web"`.
fn with_record_keys(extra: &str) -> String {
    example_with("check = \"web\"\n", &format!("check = \"web\"\n{extra}\n"))
}

/// A weighted record with `endpoints` (the inside of the list).
fn weighted(endpoints: &str) -> String {
    example_with(
        "policy = \"failover\"\ncheck = \"web\"\nendpoints = [\n  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n]",
        &format!("policy = \"weighted\"\ncheck = \"web\"\nendpoints = [{endpoints}]"),
    )
}

#[test]
fn policy_options_parse() {
    let record = |text: &str| parse(text).unwrap().records.remove(0);
    let r = record(EXAMPLE);
    assert_eq!(r.min_healthy, MinHealthy::Count(1));
    assert_eq!(r.max_answers, DEFAULT_MAX_ANSWERS);
    assert_eq!(r.when_all_down, WhenAllDown::FailOpen);
    assert_eq!(r.degraded_ttl, None);
    assert_eq!(r.endpoints[0].weight, 1);
    assert_eq!(
        record(&with_record_keys("min_healthy = 2")).min_healthy,
        MinHealthy::Count(2)
    );
    assert_eq!(
        record(&with_record_keys("min_healthy = \"50%\"")).min_healthy,
        MinHealthy::Percent(50)
    );
    let r = record(&with_record_keys("ttl = 60\ndegraded_ttl = 5"));
    assert_eq!((r.ttl, r.degraded_ttl), (60, Some(5)));
    for (mode, expected) in [
        ("fail-open", WhenAllDown::FailOpen),
        ("nodata", WhenAllDown::NoData),
        ("servfail", WhenAllDown::ServFail),
    ] {
        let r = record(&with_record_keys(&format!("when_all_down = \"{mode}\"")));
        assert_eq!(r.when_all_down, expected);
    }
    let r = record(&with_record_keys(
        "when_all_down = \"fallback\"\nfallback = [\"192.0.2.99\", \"192.0.2.98\"]",
    ));
    assert_eq!(
        r.when_all_down,
        WhenAllDown::Fallback(vec![
            Ipv4Addr::new(192, 0, 2, 99).into(),
            Ipv4Addr::new(192, 0, 2, 98).into()
        ])
    );
    let r = record(&example_with(
        "policy = \"failover\"",
        "policy = \"all-healthy\"\nmax_answers = 3",
    ));
    assert_eq!((r.policy, r.max_answers), (Policy::AllHealthy, 3));
    let r = record(&weighted(
        "{ address = \"192.0.2.10\", weight = 3 }, { address = \"192.0.2.11\", weight = 0 }",
    ));
    assert_eq!(r.policy, Policy::Weighted);
    assert_eq!(
        r.endpoints.iter().map(|e| e.weight).collect::<Vec<_>>(),
        [3, 0]
    );
}

#[test]
fn policy_option_errors_name_the_field() {
    let cases: &[(String, &[&str])] = &[
        (
            with_record_keys("min_healthy = 0"),
            &["record[0].min_healthy", "0 is out of range"],
        ),
        (
            with_record_keys("min_healthy = \"150%\""),
            &["record[0].min_healthy", "150% is out of range"],
        ),
        (
            with_record_keys("min_healthy = \"half\""),
            &["record[0].min_healthy", "not a percentage"],
        ),
        (
            with_record_keys("min_healthy = 1.5"),
            &["record[0].min_healthy", "a float"],
        ),
        (
            with_record_keys("max_answers = 2"),
            &[
                "record[0].max_answers",
                "only allowed with policy \"all-healthy\"",
            ],
        ),
        (
            example_with(
                "policy = \"failover\"",
                "policy = \"all-healthy\"\nmax_answers = 17",
            ),
            &["record[0].max_answers", "17 is out of range: 1 to 16"],
        ),
        (
            example_with(
                "policy = \"failover\"",
                "policy = \"all-healthy\"\nmin_healthy = 2",
            ),
            &[
                "record[0].min_healthy",
                "only allowed with policy \"failover\"",
            ],
        ),
        (
            with_record_keys("when_all_down = \"panic\""),
            &["record[0].when_all_down", "unknown mode \"panic\""],
        ),
        (
            with_record_keys("when_all_down = \"fallback\""),
            &[
                "record[0].fallback",
                "required with when_all_down = \"fallback\"",
            ],
        ),
        (
            with_record_keys("fallback = [\"192.0.2.99\"]"),
            &[
                "record[0].fallback",
                "only allowed with when_all_down = \"fallback\"",
            ],
        ),
        (
            with_record_keys("when_all_down = \"fallback\"\nfallback = []"),
            &["record[0].fallback", "0 addresses"],
        ),
        (
            with_record_keys("when_all_down = \"fallback\"\nfallback = [\"2001:db8::1\"]"),
            &["record[0].fallback[0]", "IPv6"],
        ),
        (
            with_record_keys(
                "when_all_down = \"fallback\"\nfallback = [\"192.0.2.9\", \"192.0.2.9\"]",
            ),
            &["record[0].fallback[1]", "listed twice"],
        ),
        (
            with_record_keys("degraded_ttl = 31"),
            &[
                "record[0].degraded_ttl",
                "longer than the record's TTL (30)",
            ],
        ),
        (
            with_record_keys("degraded_ttl = -1"),
            &["record[0].degraded_ttl"],
        ),
        (
            weighted("{ address = \"192.0.2.10\" }"),
            &[
                "record[0].endpoints[0].weight",
                "required with policy \"weighted\"",
            ],
        ),
        (
            weighted("{ address = \"192.0.2.10\", weight = 1000001 }"),
            &[
                "record[0].endpoints[0].weight",
                "out of range: 0 to 1000000",
            ],
        ),
        (
            weighted("{ address = \"192.0.2.10\", weight = 1, priority = 1 }"),
            &[
                "record[0].endpoints[0].priority",
                "not allowed with policy \"weighted\"",
            ],
        ),
        (
            example_with(
                "{ address = \"192.0.2.10\", priority = 1 }",
                "{ address = \"192.0.2.10\", priority = 1, weight = 2 }",
            ),
            &[
                "record[0].endpoints[0].weight",
                "only allowed with policy \"weighted\"",
            ],
        ),
    ];
    for (text, expected) in cases {
        assert_error(text, expected);
    }
}

#[test]
fn http_section() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(config.http, crate::config::Http::default());
    let config = parse(&format!("{EXAMPLE}\n[http]\nlisten = \"[::1]:9100\"\n")).unwrap();
    assert_eq!(config.http.listen, Some("[::1]:9100".parse().unwrap()));
    let config = parse(&format!("{EXAMPLE}\n[http]\nlisten = \"\"\n")).unwrap();
    assert_eq!(config.http.listen, None, "\"\" disables it");
    assert_error(
        &format!("{EXAMPLE}\n[http]\nlisten = \"localhost:9153\"\n"),
        &["http.listen", "not an address and port"],
    );
    assert_error(
        &format!("{EXAMPLE}\n[http]\nport = 9153\n"),
        &["http.port", "unknown field"],
    );
}

#[test]
fn admin_section() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(config.admin, Admin::default());
    assert_eq!(
        config.admin.control_socket.as_deref(),
        Some(Path::new("/run/failover-agent.sock"))
    );
    let config = parse(&format!(
        "{EXAMPLE}\n[admin]\nstate_file = \"/var/lib/failover/admin-state.toml\"\ncontrol_socket = \"/run/f.sock\"\n"
    ))
    .unwrap();
    assert_eq!(
        config.admin,
        Admin {
            state_file: Some(PathBuf::from("/var/lib/failover/admin-state.toml")),
            control_socket: Some(PathBuf::from("/run/f.sock")),
            control_socket_is_default: false,
        }
    );
    let config = parse(&format!("{EXAMPLE}\n[admin]\ncontrol_socket = \"\"\n")).unwrap();
    assert_eq!(config.admin.control_socket, None, "\"\" disables it");
    assert_error(
        &format!("{EXAMPLE}\n[admin]\nstate_file = \"admin.toml\"\n"),
        &["admin.state_file", "absolute path"],
    );
    assert_error(
        &format!("{EXAMPLE}\n[admin]\ncontrol_socket = \"f.sock\"\n"),
        &["admin.control_socket", "absolute path"],
    );
    assert_error(
        &format!("{EXAMPLE}\n[admin]\nsocket = \"/run/x\"\n"),
        &["admin.socket", "unknown field"],
    );
}

#[test]
fn example_loads() {
    let config = parse(EXAMPLE).unwrap();
    assert_eq!(
        config.zones,
        vec![Zone {
            origin: "example.test.".into(),
            ttl: 30,
            mname: "ns1.example.test.".into(),
            rname: "hostmaster.example.test.".into(),
            serial: DEFAULT_SERIAL,
            // Zone checkers' minimums (Zonemaster: 14400 and 3600).
            refresh: 14400,
            retry: 3600,
            expire: 1_209_600,
            minimum: 30,
            soa_ttl: 30,
            nameservers: vec![Nameserver {
                name: "ns1.example.test.".into(),
                addresses: vec![],
            }],
            nameservers_defaulted: true,
        }]
    );
    assert_eq!(
        config.records,
        vec![Record {
            name: "www.example.test.".into(),
            rtype: RecordType::A,
            zone: 0,
            ttl: 30,
            policy: Policy::Failover,
            check_name: "web".into(),
            check: Check {
                kind: CheckKind::Tcp,
                port: Some(80),
                interval: Duration::from_secs(1),
                timeout: Duration::from_millis(500),
                rise: 2,
                fall: 3,
                jitter: Duration::ZERO,
                // On by default: more than 4 changes a minute hold an
                // endpoint down until stable for 30 s.
                damping: Damping {
                    limit: 4,
                    window: Duration::from_secs(60),
                    hold: Duration::from_secs(30),
                },
                target_address: None,
            },
            endpoints: vec![
                Endpoint {
                    address: Ipv4Addr::new(192, 0, 2, 10).into(),
                    priority: 1,
                    weight: 1,
                    check_address: None,
                    check_port: None
                },
                Endpoint {
                    address: Ipv4Addr::new(192, 0, 2, 11).into(),
                    priority: 2,
                    weight: 1,
                    check_address: None,
                    check_port: None
                },
            ],
            min_healthy: MinHealthy::Count(1),
            max_answers: 8,
            when_all_down: WhenAllDown::FailOpen,
            degraded_ttl: None,
        }]
    );
    assert_eq!(config.endpoint_count(), 2);
    assert_eq!(config.server, Server::default());
    assert_eq!(config.server.mode, ServerMode::Authoritative);
    assert_eq!(
        config.server.listen,
        [
            "0.0.0.0:53".parse::<SocketAddr>().unwrap(),
            "[::]:53".parse().unwrap()
        ]
    );
    assert_eq!(config.server.tcp_idle_timeout, Duration::from_secs(10));
    assert_eq!(config.server.tcp_max_connections, 256);
    assert_eq!(
        config.zones[0].soa(),
        Soa {
            apex: "example.test.".into(),
            mname: "ns1.example.test.".into(),
            rname: "hostmaster.example.test.".into(),
            serial: 1,
            // Zone checkers' minimums (Zonemaster: 14400 and 3600).
            refresh: 14400,
            retry: 3600,
            expire: 1_209_600,
            minimum: 30,
            negative_ttl: 30,
        }
    );
    // Loads, but a delegation to it would be lame: say so.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("zone[0].nameservers") && warnings[0].contains("ns1.example.test."),
        "{warnings:?}"
    );
}

#[test]
fn default_config_is_the_loopback_demo() {
    let config = Config::default_demo();
    let record = &config.records[0];
    assert_eq!(record.name, "www.example.test.");
    assert_eq!(record.policy, Policy::Failover);
    assert_eq!(
        record.endpoints,
        vec![
            Endpoint {
                address: Ipv4Addr::new(127, 0, 0, 10).into(),
                priority: 1,
                weight: 1,
                check_address: None,
                check_port: None
            },
            Endpoint {
                address: Ipv4Addr::new(127, 0, 0, 11).into(),
                priority: 2,
                weight: 1,
                check_address: None,
                check_port: None
            },
        ]
    );
    assert_eq!(record.check.port, Some(8080));
    assert_eq!(record.check.interval, Duration::from_secs(1));
    assert_eq!(record.check.timeout, Duration::from_millis(500));
    assert_eq!((record.check.rise, record.check.fall), (2, 3));
}

#[test]
fn defaults_and_relative_names() {
    let text = r#"
[[zone]]
origin = "Example.test"
[[record]]
name = "api.EXAMPLE.test"
type = "a"
policy = "all-healthy"
check = "c"
ttl = 5
endpoints = [{ address = "192.0.2.1" }, { address = "192.0.2.2" }]
[[record]]
name = "www.example.test."
type = "A"
policy = "failover"
check = "c"
endpoints = [{ address = "192.0.2.1" }]
[checks.c]
kind = "tcp"
port = 443
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.zones[0].origin, "Example.test.");
    assert_eq!(config.zones[0].ttl, DEFAULT_TTL);
    let api = &config.records[0];
    assert_eq!(api.name, "api.EXAMPLE.test.");
    assert_eq!(api.ttl, 5, "record ttl overrides the zone's");
    assert_eq!(api.policy, Policy::AllHealthy);
    assert_eq!(api.endpoints[1].priority, 1);
    assert_eq!(config.records[1].ttl, DEFAULT_TTL);
    let check = &api.check;
    assert_eq!(check.interval, DEFAULT_INTERVAL);
    assert_eq!(check.timeout, DEFAULT_TIMEOUT);
    assert_eq!((check.rise, check.fall), (DEFAULT_RISE, DEFAULT_FALL));
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    assert_error(
        &example_with(
            "{ address = \"192.0.2.11\", priority = 2 }",
            "{ address = \"192.0.2.11\", priority = 2, wieght = 5 }",
        ),
        &["test.toml:13:43: record[0].endpoints[1].wieght: unknown field `wieght`"],
    );
    assert_error(
        &example_with("fall = 3", "fall = 3\nretries = 1"),
        &["checks.web", "unknown field `retries`"],
    );
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nserail = 1"),
        &["zone[0]", "unknown field `serail`"],
    );
    assert_error(
        &format!("{EXAMPLE}\n[server]\nport = 53\n"),
        &["server", "unknown field `port`"],
    );
    assert_error(
        &example_with(
            "ttl = 30",
            "ttl = 30\nnameservers = [{ name = \"ns.other.\", glue = [] }]",
        ),
        &["zone[0].nameservers[0]", "unknown field `glue`"],
    );
}

#[test]
fn type_errors_name_the_field() {
    assert_error(
        &example_with("port = 80", "port = \"80\""),
        &["checks.web.port", "invalid type: string \"80\""],
    );
    assert_error(
        &example_with("interval = \"1s\"", "interval = 1"),
        &["checks.web.interval", "invalid type: integer"],
    );
    assert_error(
        &example_with("policy = \"failover\"\n", ""),
        &["record[0]", "missing field `policy`"],
    );
    assert_error("[[zone]\n", &["test.toml:1:"]);
}

#[test]
fn bad_endpoint_addresses() {
    assert_error(
        &example_with("\"192.0.2.11\"", "\"192.0.2.300\""),
        &[
            "record[0].endpoints[1].address",
            "\"192.0.2.300\" is not an IPv4 address",
        ],
    );
    assert_error(
        &example_with("\"192.0.2.11\"", "\"2001:db8::1\""),
        &[
            "record[0].endpoints[1].address",
            "2001:db8::1 is an IPv6 address",
            "type \"AAAA\" record",
        ],
    );
    assert_error(
        &example_with("\"192.0.2.11\"", "\"0.0.0.0\""),
        &["record[0].endpoints[1].address", "not a unicast address"],
    );
    assert_error(
        &example_with("\"192.0.2.11\"", "\"192.0.2.10\""),
        &[
            "record[0].endpoints[1].address",
            "192.0.2.10 is already endpoint 0",
        ],
    );
}

#[test]
fn bad_priorities() {
    assert_error(
        &example_with("priority = 2", "priority = 0"),
        &[
            "record[0].endpoints[1].priority",
            "priority 0 is out of range",
        ],
    );
    assert_error(
        &example_with("priority = 1", "priority = -1"),
        &["record[0].endpoints[0].priority", "must be 1 or more"],
    );
}

#[test]
fn endpoint_count_limits() {
    assert_error(
        &example_with(
            "  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n",
            "",
        ),
        &["record[0].endpoints", "at least one endpoint is required"],
    );
    let seventeen: String = (1..=17)
        .map(|i| format!("{{ address = \"192.0.2.{i}\" }},"))
        .collect();
    let sixteen: String = (1..=16)
        .map(|i| format!("{{ address = \"192.0.2.{i}\" }},"))
        .collect();
    let with = |list: &str| {
        example_with(
            "  { address = \"192.0.2.10\", priority = 1 },\n  { address = \"192.0.2.11\", priority = 2 },\n",
            list,
        )
    };
    assert_error(
        &with(&seventeen),
        &["record[0].endpoints", "17 endpoints", "at most 16"],
    );
    assert_eq!(
        parse(&with(&sixteen)).unwrap().records[0].endpoints.len(),
        16
    );
}

#[test]
fn bad_names() {
    assert_error(
        &example_with("\"www.example.test.\"", "\"www..example.test.\""),
        &["record[0].name", "empty label"],
    );
    assert_error(
        &example_with("\"www.example.test.\"", "\"w w.example.test.\""),
        &["record[0].name", "contains ' '"],
    );
    let long_label = format!("\"{}.example.test.\"", "a".repeat(64));
    assert_error(
        &example_with("\"www.example.test.\"", &long_label),
        &["record[0].name", "1 to 63 bytes"],
    );
    let long_name = format!("\"{}.example.test.\"", vec!["a".repeat(63); 4].join("."));
    assert_error(
        &example_with("\"www.example.test.\"", &long_name),
        &["record[0].name", "longer than 255 bytes"],
    );
    assert_error(
        &example_with("\"www.example.test.\"", "\"www.example.org.\""),
        &[
            "record[0].name",
            "www.example.org. is not inside any configured zone (zones: example.test.)",
        ],
    );
    // A suffix match is not enough: the zone boundary is a label boundary.
    assert_error(
        &example_with("\"www.example.test.\"", "\"wwwexample.test.\""),
        &["record[0].name", "not inside any configured zone"],
    );
    assert_error(
        &example_with("origin = \"example.test.\"", "origin = \"\""),
        &["zone[0].origin", "empty"],
    );
}

#[test]
fn zone_and_record_duplicates() {
    assert_error(
        &format!("{EXAMPLE}\n[[zone]]\norigin = \"EXAMPLE.test\"\n"),
        &["zone[1].origin", "already configured as zone[0]"],
    );
    let second = "\n[[record]]\nname = \"WWW.example.test\"\ntype = \"A\"\npolicy = \"failover\"\ncheck = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]\n";
    assert_error(
        &format!("{EXAMPLE}{second}"),
        &[
            "record[1].name",
            "duplicate record: WWW.example.test. A",
            "record[0]",
        ],
    );
    assert_error("", &["zone", "at least one [[zone]]"]);
    let many: String = (0..=MAX_ZONES)
        .map(|i| format!("[[zone]]\norigin = \"z{i}.test.\"\n"))
        .collect();
    assert_error(&many, &["zone", "1025 zones", "at most 1024"]);
    assert_error(
        "[[zone]]\norigin = \"example.test.\"\n",
        &["record", "at least one [[record]]"],
    );
}

#[test]
fn record_type_policy_and_check_reference() {
    assert_error(
        &example_with("type = \"A\"", "type = \"AAAA\""),
        &[
            "record[0].endpoints[0].address",
            "192.0.2.10 is an IPv4 address",
            "type \"A\" record",
        ],
    );
    assert_error(
        &example_with("type = \"A\"", "type = \"MX\""),
        &[
            "record[0].type",
            "unknown record type \"MX\"",
            "\"A\" and \"AAAA\"",
        ],
    );
    assert_error(
        &example_with("policy = \"failover\"", "policy = \"round-robin\""),
        &[
            "record[0].policy",
            "unknown policy \"round-robin\"",
            "\"failover\", \"all-healthy\" or \"weighted\"",
        ],
    );
    assert_error(
        &example_with("check = \"web\"", "check = \"http\""),
        &["record[0].check", "no check named \"http\"", "[checks.web]"],
    );
}

#[test]
fn ttl_range_is_rfc_2181() {
    assert_error(
        &example_with("ttl = 30", "ttl = -1"),
        &["zone[0].ttl", "TTL -1 is out of range", "RFC 2181"],
    );
    assert_error(
        &example_with("ttl = 30", "ttl = 2147483648"),
        &["zone[0].ttl", "2147483647"],
    );
    assert_error(
        &example_with("check = \"web\"", "check = \"web\"\nttl = 4294967296"),
        &["record[0].ttl", "out of range"],
    );
    let max = parse(&example_with("ttl = 30", "ttl = 2147483647")).unwrap();
    assert_eq!(max.records[0].ttl, MAX_TTL);
    let zero = parse(&example_with("ttl = 30", "ttl = 0")).unwrap();
    assert_eq!(zero.records[0].ttl, 0);
}

/// The example with its `[checks.web]` replaced by `check` (TOML body).
fn with_check(check: &str) -> String {
    let at = EXAMPLE.find("[checks.web]").unwrap();
    format!("{}[checks.web]\n{check}\n", &EXAMPLE[..at])
}

fn check_of(check: &str) -> Check {
    parse(&with_check(check))
        .unwrap_or_else(|e| panic!("{e}"))
        .records[0]
        .check
        .clone()
}

#[test]
fn http_and_https_checks() {
    let check = check_of(
        "kind = \"http\"\nmethod = \"HEAD\"\npath = \"/healthz?deep=1\"\nhost = \"www.example.test\"\n\
         headers = { \"X-Probe\" = \"failover\", Accept = \"text/plain\" }\n\
         expect_status = [\"200-299\", 301, \"302\"]\nexpect_body = \"ok\"\nbody_limit = 100\n\
         interval = \"2s\"\ntimeout = \"1s\"\njitter = \"10%\"",
    );
    assert_eq!(check.port, Some(80), "http's default port");
    assert_eq!(check.jitter, Duration::from_millis(200));
    let CheckKind::Http(http) = &check.kind else {
        panic!("{check:?}")
    };
    assert_eq!(http.method, "HEAD");
    assert_eq!(http.path, "/healthz?deep=1");
    assert_eq!(http.host.as_deref(), Some("www.example.test"));
    assert_eq!(
        http.headers,
        [
            ("Accept".to_string(), "text/plain".to_string()),
            ("X-Probe".to_string(), "failover".to_string())
        ]
    );
    assert_eq!(http.expect_status, [(200, 299), (301, 301), (302, 302)]);
    assert_eq!(http.expect_body.as_deref(), Some("ok"));
    assert_eq!(http.body_limit, 100);
    assert_eq!(http.tls, None);
    assert_eq!(check.kind.name(), "http");

    let defaults = check_of("kind = \"https\"");
    assert_eq!(defaults.port, Some(443));
    assert_eq!(defaults.jitter, Duration::ZERO);
    let CheckKind::Http(http) = &defaults.kind else {
        panic!()
    };
    assert_eq!((http.method.as_str(), http.path.as_str()), ("GET", "/"));
    assert_eq!(http.expect_status, [(200, 399)]);
    assert_eq!(http.body_limit, 4096);
    assert_eq!(
        http.tls,
        Some(TlsCheck {
            sni: None,
            verify: true,
            ca_file: None
        })
    );
    assert_eq!(defaults.kind.name(), "https");
    let https =
        check_of("kind = \"https\"\nport = 8443\nsni = \"api.example.test.\"\nverify = false");
    let CheckKind::Http(http) = &https.kind else {
        panic!()
    };
    let tls = http.tls.as_ref().unwrap();
    assert_eq!(
        tls.sni.as_deref(),
        Some("api.example.test"),
        "final dot dropped"
    );
    assert!(!tls.verify);
    // host doubles as the TLS name.
    let CheckKind::Http(http) = check_of("kind = \"https\"\nhost = \"h.example.test\"").kind else {
        panic!()
    };
    assert_eq!(http.tls.unwrap().sni.as_deref(), Some("h.example.test"));
}

#[test]
fn http_check_errors() {
    let http = |extra: &str| with_check(&format!("kind = \"http\"\n{extra}"));
    assert_error(
        &http("method = \"get me\""),
        &["checks.web.method", "not an HTTP method"],
    );
    assert_error(
        &http("path = \"health\""),
        &["checks.web.path", "must start with /"],
    );
    assert_error(&http("path = \"/a b\""), &["checks.web.path"]);
    assert_error(
        &http("expect_status = [\"2xx\"]"),
        &["checks.web.expect_status[0]", "not a status"],
    );
    assert_error(
        &http("expect_status = [\"299-200\"]"),
        &["checks.web.expect_status[0]"],
    );
    assert_error(
        &http("expect_status = [600]"),
        &["checks.web.expect_status[0]"],
    );
    assert_error(
        &http("expect_status = []"),
        &["checks.web.expect_status", "at least one"],
    );
    assert_error(
        &http("headers = { Host = \"x\" }"),
        &["checks.web.headers.Host", "use host ="],
    );
    assert_error(
        &http("headers = { \"X A\" = \"x\" }"),
        &["checks.web.headers", "not a header name"],
    );
    assert_error(
        &http("headers = { X = \"a\\r\\nB: c\" }"),
        &["checks.web.headers.X", "line breaks"],
    );
    assert_error(
        &http("body_limit = 0"),
        &["checks.web.body_limit", "out of range"],
    );
    assert_error(
        &http("expect_body = \"abcdef\"\nbody_limit = 3"),
        &["checks.web.expect_body", "more than body_limit"],
    );
    assert_error(
        &http("sni = \"x\""),
        &["checks.web.sni", "for https checks, not http"],
    );
    assert_error(
        &http("query_name = \"x.\""),
        &["checks.web.query_name", "for dns checks"],
    );
    assert_error(
        &with_check("kind = \"https\"\nca_file = \"/nonexistent/ca.pem\""),
        &["checks.web.ca_file", "cannot read /nonexistent/ca.pem"],
    );
    assert_error(
        &with_check("kind = \"https\"\nsni = \"bad name!\""),
        &["checks.web.sni", "not a valid TLS server name"],
    );
    let dir = std::env::temp_dir().join(format!("failover-ca-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let message = error_of(&with_check(&format!(
        "kind = \"https\"\nca_file = \"{}\"",
        not_pem.display()
    )));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(message.contains("checks.web.ca_file"), "{message}");
    assert!(message.contains("no certificate"), "{message}");
    assert_error(
        &with_check("kind = \"https\"\nverify = false\nca_file = \"/x.pem\""),
        &["checks.web.ca_file"],
    );
}

#[test]
fn dns_icmp_exec_checks() {
    let check = check_of(
        "kind = \"dns\"\nquery_name = \"www.example.test\"\nquery_type = \"aaaa\"\n\
         expect_rcode = \"nxdomain\"\nexpect_answer = \"2001:db8::1\"\nrecursion = true",
    );
    assert_eq!(check.port, Some(53));
    assert_eq!(
        check.kind,
        CheckKind::Dns(DnsCheck {
            query_name: "www.example.test.".into(),
            query_type: 28,
            expect_rcode: 3,
            expect_answer: Some("2001:db8::1".into()),
            recursion: true,
        })
    );
    let CheckKind::Dns(dns) =
        check_of("kind = \"dns\"\nport = 5353\nquery_name = \"a.test.\"").kind
    else {
        panic!()
    };
    assert_eq!(
        (dns.query_type, dns.expect_rcode, dns.recursion),
        (1, 0, false)
    );
    assert_error(
        &with_check("kind = \"dns\""),
        &["checks.web.query_name", "required"],
    );
    assert_error(
        &with_check("kind = \"dns\"\nquery_name = \"a.\"\nquery_type = \"BOGUS\""),
        &["checks.web.query_type", "not a DNS record type"],
    );
    assert_error(
        &with_check("kind = \"dns\"\nquery_name = \"a.\"\nexpect_rcode = \"OK\""),
        &["checks.web.expect_rcode", "not a response code", "NXDOMAIN"],
    );

    let icmp = check_of("kind = \"icmp\"\ninterval = \"200ms\"\ntimeout = \"100ms\"");
    assert_eq!((icmp.kind.clone(), icmp.port), (CheckKind::Icmp, None));
    assert_error(
        &with_check("kind = \"icmp\"\nport = 1"),
        &["checks.web.port", "no port"],
    );

    let exec = check_of("kind = \"exec\"\ncommand = [\"/bin/check\", \"--fast\"]");
    assert_eq!(
        exec.kind,
        CheckKind::Exec(ExecCheck {
            command: vec!["/bin/check".into(), "--fast".into()],
            check_name: "web".into()
        })
    );
    assert_eq!(exec.port, None);
    assert_eq!(
        check_of("kind = \"exec\"\nport = 5432\ncommand = [\"x\"]").port,
        Some(5432)
    );
    assert_error(
        &with_check("kind = \"exec\""),
        &["checks.web.command", "required"],
    );
    assert_error(
        &with_check("kind = \"exec\"\ncommand = []"),
        &["checks.web.command"],
    );
    assert_error(
        &with_check("kind = \"tcp\""),
        &["checks.web.port", "required for a tcp check"],
    );
    assert_error(
        &with_check("kind = \"tcp\"\nport = 1\ncommand = [\"x\"]"),
        &["checks.web.command", "for exec checks, not tcp"],
    );
    assert_error(
        &with_check("kind = \"tcp\"\nport = 1\nrecursion = true"),
        &["checks.web.recursion", "for dns checks"],
    );
}

#[test]
fn jitter_values() {
    let jitter =
        |text: &str| check_of(&format!("kind = \"tcp\"\nport = 1\njitter = \"{text}\"")).jitter;
    assert_eq!(jitter("10%"), Duration::from_millis(100));
    assert_eq!(jitter("50ms"), Duration::from_millis(50));
    assert_eq!(jitter("0s"), Duration::ZERO);
    assert_eq!(jitter("50%"), Duration::from_millis(500));
    assert_error(
        &with_check("kind = \"tcp\"\nport = 1\njitter = \"51%\""),
        &["checks.web.jitter", "0% to 50%"],
    );
    assert_error(
        &with_check("kind = \"tcp\"\nport = 1\njitter = \"600ms\""),
        &["checks.web.jitter", "more than half the interval"],
    );
    assert_error(
        &with_check("kind = \"tcp\"\nport = 1\njitter = \"lots\""),
        &["checks.web.jitter", "not a percentage or a duration"],
    );
}

#[test]
fn check_targets_and_overrides() {
    let text = with_check("kind = \"tcp\"\nport = 80\ntarget_address = \"10.0.0.1\"").replace(
        "{ address = \"192.0.2.11\", priority = 2 }",
        "{ address = \"192.0.2.11\", priority = 2, check_address = \"2001:db8::11\", check_port = 8080 }",
    );
    let config = parse(&text).unwrap();
    let record = &config.records[0];
    let targets: Vec<String> = record
        .endpoints
        .iter()
        .map(|e| e.check_target(&record.check).to_string())
        .collect();
    assert_eq!(targets, ["10.0.0.1:80", "[2001:db8::11]:8080"]);
    // Without overrides: the endpoint's own address and the check's port.
    let plain = parse(EXAMPLE).unwrap();
    let record = &plain.records[0];
    assert_eq!(
        record.endpoints[0].check_target(&record.check),
        CheckTarget {
            address: "192.0.2.10".parse().unwrap(),
            port: Some(80)
        }
    );
    assert_error(
        &with_check("kind = \"tcp\"\nport = 80\ntarget_address = \"nope\""),
        &["checks.web.target_address", "not an IP address"],
    );
    let bad_port = EXAMPLE.replace(
        "{ address = \"192.0.2.10\", priority = 1 }",
        "{ address = \"192.0.2.10\", priority = 1, check_port = 0 }",
    );
    assert_error(
        &bad_port,
        &["record[0].endpoints[0].check_port", "out of range"],
    );
    let icmp_port = with_check("kind = \"icmp\"").replace(
        "{ address = \"192.0.2.10\", priority = 1 }",
        "{ address = \"192.0.2.10\", priority = 1, check_port = 80 }",
    );
    assert_error(&icmp_port, &["record[0].endpoints[0].check_port", "icmp"]);
}

#[test]
fn rcode_names() {
    assert_eq!(Rcode(0).to_string(), "NOERROR");
    assert_eq!(Rcode(3).to_string(), "NXDOMAIN");
    assert_eq!(Rcode(23).to_string(), "RCODE23");
}

#[test]
fn check_errors() {
    assert_error(
        &example_with("kind = \"tcp\"", "kind = \"smtp\""),
        &[
            "checks.web.kind",
            "unknown check kind \"smtp\"",
            "\"tcp\", \"http\", \"https\", \"dns\", \"icmp\" or \"exec\"",
        ],
    );
    for port in ["0", "65536", "-80"] {
        assert_error(
            &example_with("port = 80", &format!("port = {port}")),
            &["checks.web.port", "out of range: must be 1 to 65535"],
        );
    }
    assert_error(
        &example_with("interval = \"1s\"", "interval = \"1 fortnight\""),
        &["checks.web.interval", "is not a duration"],
    );
    assert_error(
        &example_with("interval = \"1s\"", "interval = \"0s\""),
        &["checks.web.interval", "longer than zero"],
    );
    assert_error(
        &example_with("timeout = \"500ms\"", "timeout = \"1s\""),
        &[
            "checks.web.timeout",
            "timeout 1s must be shorter than interval 1s",
        ],
    );
    assert_error(
        &example_with("rise = 2", "rise = 0"),
        &["checks.web.rise", "must be 1 to 1000"],
    );
    assert_error(
        &example_with("fall = 3", "fall = 0"),
        &["checks.web.fall", "must be 1 to 1000"],
    );
}

#[test]
fn load_names_the_file() {
    let missing = Path::new("/nonexistent/failover.toml");
    let message = Config::load(missing).unwrap_err().to_string();
    assert!(
        message.starts_with("/nonexistent/failover.toml: cannot read the configuration"),
        "{message}"
    );
    let dir = std::env::temp_dir().join(format!("failover-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, example_with("port = 80", "port = 0")).unwrap();
    let message = Config::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        message,
        format!(
            "{}: checks.web.port: port 0 is out of range: must be 1 to 65535",
            path.display()
        )
    );
}

#[test]
fn demo_serves_loopback_with_glue_and_no_warnings() {
    let config = Config::default_demo();
    assert_eq!(config.server.mode, ServerMode::Authoritative);
    assert_eq!(
        config.server.listen,
        [
            "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    assert!(!config.server.listen_is_default);
    let zone = &config.zones[0];
    assert_eq!(zone.mname, "ns1.example.test.");
    assert_eq!(
        zone.nameservers[0].addresses,
        [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        ]
    );
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn soa_fields_and_nameservers() {
    let config = parse(&example_with(
        "ttl = 30",
        "ttl = 30\nmname = \"primary.example.test\"\nrname = \"dns@example.net\"\n\
         serial = 4294967295\nrefresh = 7200\nretry = 900\nexpire = 2419200\nminimum = 300\n\
         soa_ttl = 120\nnameservers = [\n\
           { name = \"ns1.example.test.\", addresses = [\"192.0.2.53\", \"2001:db8::53\"] },\n\
           { name = \"primary.example.test.\", addresses = [\"192.0.2.54\"] },\n\
           { name = \"ns.provider.net.\" },\n]",
    ))
    .unwrap();
    let zone = &config.zones[0];
    assert_eq!(zone.mname, "primary.example.test.");
    assert_eq!(zone.rname, "dns.example.net.");
    assert_eq!(
        (
            zone.serial,
            zone.refresh,
            zone.retry,
            zone.expire,
            zone.minimum
        ),
        (u32::MAX, 7200, 900, 2_419_200, 300)
    );
    assert_eq!(zone.soa_ttl, 120);
    assert_eq!(zone.soa().negative_ttl, 120, "min(soa_ttl, minimum)");
    assert_eq!(zone.nameservers.len(), 3);
    assert!(zone.nameservers[2].addresses.is_empty());
    assert!(!zone.nameservers_defaulted);
    assert!(config.warnings().is_empty());
    // Without mname, the first nameserver is the primary.
    let config = parse(&example_with(
        "ttl = 30",
        "ttl = 30\nnameservers = [{ name = \"ns.provider.net\" }]",
    ))
    .unwrap();
    assert_eq!(config.zones[0].mname, "ns.provider.net.");
    assert!(config.warnings().is_empty(), "out of zone: nothing to glue");
    // minimum below the zone TTL decides the negative TTL.
    let config = parse(&example_with("ttl = 30", "ttl = 30\nminimum = 5")).unwrap();
    assert_eq!(config.zones[0].soa().negative_ttl, 5);
}

#[test]
fn soa_field_errors() {
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nserial = 4294967296"),
        &["zone[0].serial", "must be 0 to 4294967295"],
    );
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nserial = -1"),
        &["zone[0].serial"],
    );
    for key in ["refresh", "retry", "expire", "minimum", "soa_ttl"] {
        assert_error(
            &example_with("ttl = 30", &format!("ttl = 30\n{key} = 2147483648")),
            &[&format!("zone[0].{key}"), "out of range"],
        );
    }
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nmname = \"a..b\""),
        &["zone[0].mname", "empty label"],
    );
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nrname = \"first.last@example.test\""),
        &["zone[0].rname", "local part without dots"],
    );
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nrname = \"a@b@c\""),
        &["zone[0].rname"],
    );
}

#[test]
fn nameserver_rules() {
    let with_ns = |ns: &str| example_with("ttl = 30", &format!("ttl = 30\nnameservers = {ns}"));
    assert_error(
        &with_ns("[{ name = \"ns1.example.test.\" }]"),
        &[
            "zone[0].nameservers[0].addresses",
            "ns1.example.test. lies inside zone example.test.",
            "required",
        ],
    );
    assert_error(
        &with_ns("[{ name = \"ns1.example.net.\", addresses = [\"192.0.2.1\"] }]"),
        &[
            "zone[0].nameservers[0].addresses",
            "outside every configured zone",
        ],
    );
    assert_error(
        &with_ns("[{ name = \"ns.example.net.\" }, { name = \"NS.example.net\" }]"),
        &["zone[0].nameservers[1].name", "listed twice"],
    );
    assert_error(&with_ns("[]"), &["zone[0].nameservers", "at least one"]);
    assert_error(
        &with_ns("[{ name = \"ns1.example.test.\", addresses = [\"fe80::1\"] }]"),
        &["zone[0].nameservers[0].addresses[0]", "link-local"],
    );
    assert_error(
        &with_ns("[{ name = \"ns1.example.test.\", addresses = [\"192.0.2.1\", \"192.0.2.1\"] }]"),
        &["zone[0].nameservers[0].addresses[1]", "listed twice"],
    );
    assert_error(
        &with_ns("[{ name = \"ns1.example.test.\", addresses = [\"ns1\"] }]"),
        &["zone[0].nameservers[0].addresses[0]", "not an IP address"],
    );
    assert_error(
        &with_ns("[{ name = \"www.example.test.\", addresses = [\"192.0.2.1\"] }]"),
        &[
            "zone[0].nameservers[0]",
            "www.example.test. is also the name of record[0]",
        ],
    );
    // The default nameserver (mname) may clash too: say where it came from.
    assert_error(
        &example_with("ttl = 30", "ttl = 30\nmname = \"www.example.test.\""),
        &[
            "zone[0].nameservers",
            "not configured, so the nameserver is the SOA MNAME www.example.test.",
            "record[0]",
        ],
    );
    // One nameserver, one set of addresses, whichever zone lists it.
    let two_zones = |second: &str| {
        format!(
            "{}\n[[zone]]\norigin = \"example.org.\"\nnameservers = [{second}]\n",
            with_ns(
                "[{ name = \"ns1.example.test.\", addresses = [\"192.0.2.53\", \"2001:db8::53\"] }]"
            )
        )
    };
    let shared = parse(&two_zones(
        "{ name = \"ns1.example.test.\", addresses = [\"2001:db8::53\", \"192.0.2.53\"] }",
    ))
    .unwrap();
    assert_eq!(shared.zones[1].mname, "ns1.example.test.");
    assert_error(
        &two_zones("{ name = \"ns1.example.test.\", addresses = [\"192.0.2.54\"] }"),
        &[
            "zone[1].nameservers[0].addresses",
            "other addresses in zone[0].nameservers[0]",
        ],
    );
}

#[test]
fn aaaa_records_and_hot_names() {
    let aaaa = "\n[[record]]\nname = \"WWW.example.test.\"\ntype = \"aaaa\"\npolicy = \"all-healthy\"\n\
                check = \"web\"\nendpoints = [{ address = \"2001:db8::10\" }, { address = \"2001:DB8::11\", priority = 2 }]\n\
                [[record]]\nname = \"api.example.test.\"\ntype = \"AAAA\"\npolicy = \"failover\"\n\
                check = \"web\"\nendpoints = [{ address = \"2001:db8::20\" }]\n";
    let config = parse(&format!("{EXAMPLE}{aaaa}")).unwrap();
    let record = &config.records[1];
    assert_eq!(record.rtype, RecordType::Aaaa);
    assert_eq!(record.rtype.code(), RTYPE_AAAA);
    assert_eq!(record.zone, 0);
    assert_eq!(
        record.endpoints[1].address,
        "2001:db8::11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        config.hot_names(),
        [
            HotName {
                name: "www.example.test.".into(),
                zone: 0,
                records: vec![0, 1]
            },
            HotName {
                name: "api.example.test.".into(),
                zone: 0,
                records: vec![2]
            },
        ]
    );
    let dup = format!(
        "{EXAMPLE}{aaaa}{}",
        &aaaa[..aaaa.find("[[record]]\nname = \"api").unwrap()]
    );
    assert_error(
        &dup,
        &[
            "record[3].name",
            "duplicate record: WWW.example.test. AAAA",
            "record[1]",
        ],
    );
    assert_error(
        &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "fe80::20")),
        &["record[2].endpoints[0].address", "link-local"],
    );
    assert_error(
        &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "ff02::1")),
        &["record[2].endpoints[0].address", "not a unicast address"],
    );
    assert_error(
        &format!("{EXAMPLE}{}", aaaa.replace("2001:db8::20", "2001:db8::zz")),
        &["record[2].endpoints[0].address", "not an IPv6 address"],
    );
}

#[test]
fn server_section() {
    let with_server = |server: &str| format!("[server]\n{server}\n{EXAMPLE}");
    let front = parse(&with_server("mode = \"front\"")).unwrap();
    assert_eq!(front.server.mode, ServerMode::Front);
    assert!(front.server.listen.is_empty());
    let listen = parse(&with_server(
        "listen = [\"192.0.2.53\", \"[2001:db8::53]:5353\", \"::1\", \"127.0.0.1:53\", \"[2001:db8::54]\"]\n\
         tcp_idle_timeout = \"3s\"\ntcp_max_connections = 10",
    ))
    .unwrap();
    assert_eq!(
        listen.server.listen,
        [
            "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
            "127.0.0.1:53".parse().unwrap(),
            // Brackets without a port: port 53, as for a bare address.
            "[2001:db8::54]:53".parse().unwrap(),
        ]
    );
    assert!(!listen.server.listen_is_default);
    assert_eq!(listen.server.tcp_idle_timeout, Duration::from_secs(3));
    assert_eq!(listen.server.tcp_max_connections, 10);

    assert_error(
        &with_server("mode = \"recursive\""),
        &["server.mode", "unknown mode \"recursive\""],
    );
    assert_error(
        &with_server("mode = \"front\"\nlisten = [\"0.0.0.0:53\"]"),
        &["server.listen", "binds nothing"],
    );
    assert_error(
        &with_server("listen = []"),
        &["server.listen", "at least one"],
    );
    assert_error(
        &with_server("listen = [\"localhost:53\"]"),
        &["server.listen[0]", "not an address to listen on"],
    );
    assert_error(
        &with_server("listen = [\"::1\", \"[::1]:53\"]"),
        &["server.listen[1]", "[::1]:53 is listed twice"],
    );
    assert_error(
        &with_server("listen = [\"127.0.0.1:0\"]"),
        &["server.listen[0]", "port 0"],
    );
    assert_error(
        &with_server("tcp_idle_timeout = \"0s\""),
        &["server.tcp_idle_timeout", "longer than zero"],
    );
    assert_error(
        &with_server("tcp_max_connections = 0"),
        &["server.tcp_max_connections", "out of range"],
    );
}

/// The configuration reference in the README loads as documented.
#[test]
fn readme_policy_examples_load() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("## Policies").expect("README has the section")..];
    let section = &section[..section.find("## Health checks").expect("and the next one")];
    let mut rest = section;
    let mut records = 0;
    while let Some(at) = rest.find("```toml\n") {
        let start = at + "```toml\n".len();
        let end = start + rest[start..].find("```").unwrap();
        let block = &rest[start..end];
        rest = &rest[end + 3..];
        if block.starts_with("[endpoints]") {
            crate::admin_state::AdminState::parse(block).unwrap_or_else(|e| panic!("{e:#}"));
            continue;
        }
        let text = format!(
            "[[zone]]\norigin = \"example.test.\"\n{block}\n[checks.web]\nkind = \"tcp\"\nport = 80\n"
        );
        let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{block}"));
        records += config.records.len();
    }
    assert_eq!(records, 5, "every policy example was found and loads");
}

#[test]
fn readme_reference_loads() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Configuration reference")
        .expect("README has the section")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let text = &section[start..start + section[start..].find("```").unwrap()];
    let config = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let server = Server {
        // Written out: a missing IPv6 stack is then an error.
        listen_is_default: false,
        ..Server::default()
    };
    assert_eq!(config.server, server);
    let zone = &config.zones[0];
    assert_eq!(zone.nameservers.len(), 2);
    assert_eq!(zone.soa().negative_ttl, 30);
    assert_eq!(config.records.len(), 2);
    assert_eq!(config.records[1].rtype, RecordType::Aaaa);
    assert_eq!(config.hot_names().len(), 1);
    assert!(config.warnings().is_empty());
    let cluster = config.cluster.expect("the reference has [cluster]");
    assert_eq!(cluster.node, "ns1");
    assert_eq!(cluster.quorum, crate::config::Quorum::Majority);
}

/// `n` A records `h0.example.test.` ... on one check.
fn many_names(n: usize) -> String {
    let mut text =
        String::from("[[zone]]\norigin = \"example.test.\"\n[checks.c]\nkind = \"icmp\"\n");
    for i in 0..n {
        text += &format!(
            "[[record]]\nname = \"h{i}.example.test.\"\ntype = \"A\"\npolicy = \"failover\"\ncheck = \"c\"\nendpoints = [{{ address = \"192.0.2.1\" }}]\n"
        );
    }
    text
}

#[test]
fn names_beyond_the_kernel_record_map_are_refused_with_the_limit() {
    // Three entries per name (A, AAAA, HTTPS): 16384 / 3 = 5461 names fit.
    let fits = MAX_RECORDS as usize / 3;
    let config = parse(&many_names(fits)).unwrap();
    assert_eq!(config.hot_names().len(), fits);
    assert_error(
        &many_names(fits + 1),
        &[
            "record: 5462 names with records need 16386 entries",
            "holds 16384",
            "at most 5461 names",
            // Refused as the first name over appears, not after the rest.
            "record[5461] is the first name over the limit",
        ],
    );
    // A second type of a name takes no more room.
    let dual = many_names(fits).replacen(
        "[[record]]",
        "[[record]]\nname = \"h0.example.test.\"\ntype = \"AAAA\"\npolicy = \"failover\"\ncheck = \"c\"\nendpoints = [{ address = \"2001:db8::1\" }]\n[[record]]",
        1,
    );
    assert_eq!(parse(&dual).unwrap().records.len(), fits + 1);
}

#[test]
fn durations_and_counts_are_bounded() {
    // Accepted before and then a panic at run time (timer arithmetic).
    assert_error(
        &example_with("interval = \"1s\"", "interval = \"400000000000y\""),
        &["checks.web.interval", "too long", "at most 1day"],
    );
    assert_error(
        &example_with("interval = \"1s\"", "interval = \"2days\""),
        &["checks.web.interval", "at most 1day"],
    );
    assert_error(
        &example_with("timeout = \"500ms\"", "timeout = \"1000y\""),
        &["checks.web.timeout", "at most 1day"],
    );
    assert!(parse(&example_with("interval = \"1s\"", "interval = \"1day\"")).is_ok());
    assert_error(
        &example_with("rise = 2", "rise = 1001"),
        &["checks.web.rise", "1001 is out of range: must be 1 to 1000"],
    );
    assert_error(
        &example_with("fall = 3", "fall = 4294967295"),
        &["checks.web.fall", "must be 1 to 1000"],
    );
    assert!(parse(&example_with("fall = 3", "fall = 1000")).is_ok());
    assert_error(
        &format!("{EXAMPLE}\n[server]\ntcp_idle_timeout = \"400000000000y\"\n"),
        &["server.tcp_idle_timeout", "at most 1h"],
    );
    assert!(parse(&format!("{EXAMPLE}\n[server]\ntcp_idle_timeout = \"1h\"\n")).is_ok());
}

#[test]
fn long_values_are_cut_in_errors() {
    let huge = "x".repeat(1_000_000);
    for text in [
        example_with("www.example.test.", &format!("{huge}.example.test.")),
        example_with("192.0.2.10", &huge),
        example_with("interval = \"1s\"", &format!("interval = \"{huge}\"")),
        example_with("check = \"web\"", &format!("check = \"{huge}\"")),
        example_with("kind = \"tcp\"", &format!("kind = \"{huge}\"")),
        example_with("type = \"A\"", &format!("type = \"{huge}\"")),
        // The TOML parser's own messages and paths quote values and keys.
        example_with("ttl = 30", &format!("ttl = \"{huge}\"")),
        example_with("ttl = 30", &format!("{huge} = 1")),
        example_with("[checks.web]", &format!("[checks.{huge}]")),
        example_with("rise = 2", &format!("rise = 2\n{huge} = 1")),
    ] {
        let message = error_of(&text);
        assert!(
            message.len() < 1000,
            "{} bytes: {}",
            message.len(),
            &message[..200]
        );
        assert!(message.contains("bytes)"), "{message}");
    }
}

#[test]
fn files_named_in_the_config_are_regular_and_bounded() {
    let https = |ca: &str| {
        example_with(
            "kind = \"tcp\"\nport = 80",
            &format!("kind = \"https\"\nport = 443\nca_file = \"{ca}\""),
        )
    };
    // Read until memory ran out.
    assert_error(
        &https("/dev/zero"),
        &["checks.web.ca_file", "/dev/zero: not a regular file"],
    );
    let dir = std::env::temp_dir().join(format!("failover-config-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A FIFO hung check-config.
    let fifo = dir.join("ca.fifo");
    let _ = std::fs::remove_file(&fifo);
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    assert_error(
        &https(fifo.to_str().unwrap()),
        &["checks.web.ca_file", "not a regular file"],
    );
    let big = dir.join("big.pem");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    assert_error(
        &https(big.to_str().unwrap()),
        &["checks.web.ca_file", "larger than 1048576 bytes"],
    );
    assert_error(
        &https(r"/etc/ssl\u0000/x.pem"),
        &["checks.web.ca_file", "NUL"],
    );
    // The state file may be missing (the agent creates it), not a FIFO.
    let admin = |file: &str| format!("{EXAMPLE}\n[admin]\nstate_file = {file:?}\n");
    assert!(parse(&admin(dir.join("missing.toml").to_str().unwrap())).is_ok());
    assert_error(
        &admin(fifo.to_str().unwrap()),
        &["admin.state_file", "not a regular file"],
    );
    assert_error(
        &admin("/dev/null"),
        &["admin.state_file", "not a regular file"],
    );
    // The configuration itself: `check-config --config /dev/zero` (or a
    // FIFO) is refused at once rather than read until memory runs out.
    for path in [Path::new("/dev/zero"), fifo.as_path()] {
        let e = Config::load(path).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exec_command_refuses_nul() {
    let exec = |command: &str| {
        example_with(
            "kind = \"tcp\"\nport = 80",
            &format!("kind = \"exec\"\nport = 80\ncommand = {command}"),
        )
    };
    assert!(parse(&exec(r#"["/bin/true", "--x"]"#)).is_ok());
    assert_error(
        &exec(r#"["/bin/true\u0000"]"#),
        &["checks.web.command[0]", "NUL"],
    );
    assert_error(
        &exec(r#"["/bin/true", "a\u0000b"]"#),
        &["checks.web.command[1]", "NUL"],
    );
}

#[test]
fn invalid_utf8_has_a_position() {
    let mut bytes = b"[[zone]]\norigin = \"ex\xc3\xa9\"\nttl = \xff30\n".to_vec();
    let error = Config::parse_bytes(&bytes, "test.toml").unwrap_err();
    assert_eq!(error.position, Some((3, 7)), "{error}");
    assert!(error.to_string().starts_with("test.toml:3:7: "), "{error}");
    assert!(error.to_string().contains("not UTF-8"), "{error}");
    bytes.clear();
    bytes.extend_from_slice(b"\x80");
    let error = Config::parse_bytes(&bytes, "test.toml").unwrap_err();
    assert_eq!(error.position, Some((1, 1)), "{error}");
}

/// A small fixed-seed generator (xorshift64*): the same mutations every run.
struct Mutations(u64);

impl Mutations {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `text` changed in one of a few ways a typo, an editor or an attacker
    /// would: bytes flipped, cut, lines duplicated or dropped, numbers and
    /// strings made huge, keys' values swapped for other values.
    fn mutate(&mut self, text: &[u8]) -> Vec<u8> {
        let mut out = text.to_vec();
        let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        let line = self.below(lines.len());
        match self.below(9) {
            0 => {
                let at = self.below(out.len());
                out[at] ^= 1 << self.below(8);
            }
            1 => {
                let at = self.below(out.len());
                out[at] = [
                    b'"', b'[', b']', b'{', b'}', b'=', b',', b'.', b'\\', 0xff, 0,
                ][self.below(11)];
            }
            2 => out.truncate(self.below(out.len())),
            3 | 4 => {
                let mut lines = lines.clone();
                if self.below(2) == 0 {
                    let copy = lines[line];
                    lines.insert(self.below(lines.len()), copy);
                } else {
                    lines.remove(line);
                }
                out = lines.join(&b'\n');
            }
            5 => {
                // A number made huge (or negative, or fractional).
                let huge: &[u8] = [
                    b"99999999999999999999".as_slice(),
                    b"-9223372036854775808",
                    b"9223372036854775807",
                    b"4294967296",
                    b"1e308",
                    b"-1",
                    b"0",
                ][self.below(7)];
                if let Some(at) = out.iter().position(|b| b.is_ascii_digit()).map(|first| {
                    let digits: Vec<usize> = (first..out.len())
                        .filter(|&i| out[i].is_ascii_digit())
                        .collect();
                    digits[self.below(digits.len())]
                }) {
                    let end = (at..out.len())
                        .find(|&i| !out[i].is_ascii_digit())
                        .unwrap_or(out.len());
                    out.splice(at..end, huge.iter().copied());
                }
            }
            6 => {
                // A duration made huge.
                let huge: &[u8] = [
                    b"400000000000y".as_slice(),
                    b"10000y",
                    b"18446744073709551615s",
                    b"1ns",
                    b"0s",
                    b"50%",
                ][self.below(6)];
                let quotes: Vec<usize> = (0..out.len()).filter(|&i| out[i] == b'"').collect();
                if quotes.len() >= 2 {
                    let q = self.below(quotes.len() / 2) * 2;
                    out.splice(quotes[q] + 1..quotes[q + 1], huge.iter().copied());
                }
            }
            7 => {
                // A long string.
                let quotes: Vec<usize> = (0..out.len()).filter(|&i| out[i] == b'"').collect();
                if let Some(&at) = quotes.get(self.below(quotes.len())) {
                    let filler = [b'a', b'.', b'0', b'-', b':'][self.below(5)];
                    let long = vec![filler; 1 << (8 + self.below(9))];
                    out.splice(at + 1..at + 1, long);
                }
            }
            _ => {
                // Two mutations at once.
                out = self.mutate(text);
                out = self.mutate(&out);
            }
        }
        out
    }
}

/// Thousands of deterministic mutations of the README reference and the
/// built-in demo: each parses to a configuration or an error (no panic),
/// quickly.
#[test]
fn mutated_configs_never_panic() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Configuration reference")
        .expect("README has the section")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let reference = &section[start..start + section[start..].find("```").unwrap()];
    let exec = format!(
        "{EXAMPLE}\n[checks.ex]\nkind = \"exec\"\ncommand = [\"/bin/true\", \"x\"]\njitter = \"10%\"\n"
    );
    let seeds: [&str; 4] = [reference, DEFAULT_CONFIG, EXAMPLE, &exec];
    let mut mutations = Mutations(0x5eed_f00d_cafe_b0ba);
    let total = std::time::Instant::now();
    let mut outcomes = [0usize; 2];
    for i in 0..3000 {
        let seed = seeds[i % seeds.len()].as_bytes();
        let input = mutations.mutate(seed);
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(|| Config::parse_bytes(&input, "mutated.toml"));
        let Ok(result) = result else {
            panic!(
                "mutation {i} panicked:\n{}",
                String::from_utf8_lossy(&input)
            );
        };
        outcomes[usize::from(result.is_ok())] += 1;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "mutation {i} took {:?}",
            started.elapsed()
        );
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    assert!(
        total.elapsed() < Duration::from_secs(120),
        "{:?}",
        total.elapsed()
    );
}

#[test]
fn the_packaged_example_config_loads() {
    let text = include_str!("../../../dist/failover.toml");
    let config = parse(text).unwrap_or_else(|e| panic!("dist/failover.toml: {e}"));
    assert_eq!(config.records.len(), 1);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}
