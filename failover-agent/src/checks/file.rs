//! The schema of `[checks.NAME]`: every key of every kind, as the file
//! gives it. Each kind validates its own keys ([`super::settings`]).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[checks.NAME]`. Keys every kind has: `kind`, `port`, `interval`,
/// `timeout`, `rise`, `fall`, `jitter`, `target_address`; the others belong to
/// one kind (given to another kind they are an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Required. What a check does; the endpoint is healthy when, within `timeout`:
    /// - `"tcp"`: a TCP connection to `address:port` is established;
    /// - `"http"`, `"https"`: an HTTP/1.1 request gets a status in
    ///   `expect_status` (and `expect_body` in the body, if set);
    /// - `"dns"`: a UDP query for `query_name`/`query_type` gets `expect_rcode`
    ///   (and `expect_answer` among the answers, if set);
    /// - `"icmp"`: an ICMP (ICMPv6) echo request gets its echo reply;
    /// - `"exec"`: `command` exits 0.
    pub kind: String,
    /// TCP/UDP port, 1 to 65535. Required for `tcp`; default 80 for `http`,
    /// 443 for `https`, 53 for `dns`; optional for `exec` (passed as
    /// `FAILOVER_PORT`); not allowed for `icmp`.
    pub port: Option<i64>,
    /// Optional. Time between the starts of two checks of one endpoint, e.g.
    /// `"1s"`, `"500ms"`. Default `"1s"`.
    pub interval: Option<String>,
    /// Optional. How long a check may take before it counts as failed; must be
    /// shorter than `interval`. Default `"500ms"`.
    pub timeout: Option<String>,
    /// Optional, 1 or more. Consecutive successes that make an unhealthy
    /// endpoint healthy. Default 2.
    pub rise: Option<i64>,
    /// Optional, 1 or more. Consecutive failures that make a healthy endpoint
    /// unhealthy. Default 3.
    ///
    /// An endpoint starts unknown and its first check decides at once.
    pub fall: Option<i64>,
    /// Optional. Random spread of every interval: each wait is drawn from
    /// `interval ± jitter`. A duration (`"50ms"`) or a percentage of
    /// `interval` (`"10%"`); at most half the interval. Default `"0s"` (the
    /// first checks are spread over the first interval anyway).
    pub jitter: Option<String>,
    /// Optional, 0 to 1000. Flap damping: an endpoint whose health changes
    /// more than this many times within `flap_window` is held down
    /// (unhealthy, shown as damped) until it has not changed for `flap_hold`.
    /// 0 turns damping off. Default 4.
    pub flap_limit: Option<i64>,
    /// Optional, up to a day. Default `"60s"`.
    pub flap_window: Option<String>,
    /// Optional, up to a day. Default `"30s"`.
    pub flap_hold: Option<String>,
    /// Optional. Probe this address instead of the endpoint's own (e.g. a
    /// health proxy or a management address); an endpoint's `check_address`
    /// overrides it in turn.
    pub target_address: Option<String>,

    // http and https
    /// `http`/`https`, optional. Request method, e.g. `"HEAD"`. Default `"GET"`.
    pub method: Option<String>,
    /// `http`/`https`, optional. Request target; starts with `/`. Default `"/"`.
    pub path: Option<String>,
    /// `http`/`https`, optional. The Host header. Default: `sni` if set, else
    /// the probed address (and port, unless it is the default one).
    pub host: Option<String>,
    /// `http`/`https`, optional. Extra request headers, e.g.
    /// `{ "User-Agent" = "failover", "X-Health" = "1" }`.
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`/`https`, optional. Statuses that count as up: codes and
    /// inclusive ranges, e.g. `["200-299", "301"]` or `[200, 204]`.
    /// Default `["200-399"]`.
    pub expect_status: Option<Vec<StatusFile>>,
    /// `http`/`https`, optional. A string the body must contain within its
    /// first `body_limit` bytes (after de-chunking).
    pub expect_body: Option<String>,
    /// `http`/`https`, optional, 1 to 1048576. How many body bytes are read
    /// looking for `expect_body`. Default 4096.
    pub body_limit: Option<i64>,
    /// `https`, optional. TLS server name sent (SNI) and verified. Default:
    /// `host` if set, else none (the certificate must then name the address).
    pub sni: Option<String>,
    /// `https`, optional. Verify the certificate chain and name. Default true.
    /// `false` accepts any certificate (self-signed backends).
    pub verify: Option<bool>,
    /// `https`, optional. PEM file of CA certificates to verify against,
    /// instead of the built-in web roots.
    pub ca_file: Option<String>,

    // dns
    /// `dns`, required. The name to query, e.g. `"www.example.test."`.
    pub query_name: Option<String>,
    /// `dns`, optional. The type to query, e.g. `"A"`, `"AAAA"`, `"SOA"`,
    /// `"TXT"`. Default `"A"`.
    pub query_type: Option<String>,
    /// `dns`, optional. The response code that counts as up, e.g.
    /// `"NOERROR"`, `"NXDOMAIN"`. Default `"NOERROR"`.
    pub expect_rcode: Option<String>,
    /// `dns`, optional. Some answer record's data (as text: `"192.0.2.1"`,
    /// `"ns1.example.test."`) must equal this or contain it.
    pub expect_answer: Option<String>,
    /// `dns`, optional. Set RD (recursion desired): true to check a
    /// resolver, false (default) to check an authoritative server.
    pub recursion: Option<bool>,

    // exec
    /// `exec`, required. The program and its arguments,
    /// `["/usr/local/bin/check-db", "--quick"]` (no shell). Run with
    /// `FAILOVER_ADDRESS`, `FAILOVER_PORT` (empty without a port),
    /// `FAILOVER_TIMEOUT_MS` and `FAILOVER_CHECK` (the check's name) in its
    /// environment; exit 0 = up. At the timeout its whole process group is
    /// killed (SIGKILL).
    pub command: Option<Vec<String>>,
}

/// One entry of `expect_status`: `200` or `"200"` or `"200-299"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StatusFile {
    Code(i64),
    Text(String),
}
