//! Agent configurations for the tests and benchmarks, built in code and
//! rendered in the agent's TOML format: `[server]`, `[[zone]]`s,
//! `[[record]]`s with their endpoints, `[checks.NAME]`, `[admin]` and
//! `[cluster]`.
//!
//! The common keys have methods; everything else (a record's `min_healthy`,
//! an http check's `expect_status`, ...) is set by name with `set`, so the
//! agent's parser, not this builder, decides what is valid.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

/// A TOML value as the builder renders it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
    /// Rendered inline: `{ key = value, ... }`.
    Table(Vec<(String, Value)>),
}

impl Value {
    /// An inline table of `entries`, in order.
    pub fn table<K: Into<String>, V: Into<Value>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Value::Table(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => render_str(s, out),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Value::Table(entries) => {
                out.push_str("{ ");
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    render_key(key, out);
                    out.push_str(" = ");
                    value.render(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// A basic string, escaped.
fn render_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Bare if TOML allows it, else quoted.
fn render_key(key: &str, out: &mut String) {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        out.push_str(key);
    } else {
        render_str(key, out);
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

macro_rules! int_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Int(i64::try_from(n).expect("fits a TOML integer"))
            }
        }
    )*};
}
int_values!(i32, i64, u8, u16, u32, u64, usize);

/// The agent's duration strings: whole seconds as `"Ns"`, else `"Nms"`.
impl From<Duration> for Value {
    fn from(d: Duration) -> Self {
        let ms = d.as_millis();
        Value::Str(if ms > 0 && ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        })
    }
}

macro_rules! display_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Str(v.to_string())
            }
        }
    )*};
}
display_values!(IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr);

impl From<&Path> for Value {
    fn from(p: &Path) -> Self {
        Value::Str(p.to_str().expect("a UTF-8 path").to_string())
    }
}

impl From<PathBuf> for Value {
    fn from(p: PathBuf) -> Self {
        p.as_path().into()
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Value>, const N: usize> From<[T; N]> for Value {
    fn from(items: [T; N]) -> Self {
        Value::Array(items.into_iter().map(Into::into).collect())
    }
}

/// The keys of one table, in the order first set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table(Vec<(String, Value)>);

impl Table {
    /// Sets `key`, in place if it is already there.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `key = value` lines.
    fn render(&self, out: &mut String) {
        for (key, value) in &self.0 {
            render_key(key, out);
            out.push_str(" = ");
            value.render(out);
            out.push('\n');
        }
    }
}

/// One `[[zone]]`.
#[derive(Clone, Debug)]
pub struct ZoneSpec(Table);

impl ZoneSpec {
    pub fn new(origin: &str) -> Self {
        let mut table = Table::default();
        table.set("origin", origin);
        Self(table)
    }

    pub fn ttl(self, ttl: u32) -> Self {
        self.set("ttl", ttl)
    }

    /// Adds a `nameservers` entry: `name` with its glue `addresses`.
    pub fn nameserver(mut self, name: &str, addresses: &[IpAddr]) -> Self {
        let entry = Value::table([
            ("name", Value::from(name)),
            ("addresses", addresses.to_vec().into()),
        ]);
        match self.0.0.iter_mut().find(|(k, _)| k == "nameservers") {
            Some((_, Value::Array(list))) => list.push(entry),
            _ => self.0.set("nameservers", Value::Array(vec![entry])),
        }
        self
    }

    /// Any other key (`mname`, `serial`, `soa_ttl`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.set(key, value);
        self
    }
}

/// One endpoint of a record, rendered as an inline table.
#[derive(Clone, Debug)]
pub struct EndpointSpec(Table);

impl EndpointSpec {
    pub fn new(address: impl Into<IpAddr>) -> Self {
        let mut table = Table::default();
        table.set("address", address.into());
        Self(table)
    }

    pub fn priority(self, priority: u32) -> Self {
        self.set("priority", priority)
    }

    pub fn weight(self, weight: u32) -> Self {
        self.set("weight", weight)
    }

    /// Where its check goes instead of `address`.
    pub fn check_address(self, address: impl Into<IpAddr>) -> Self {
        self.set("check_address", address.into())
    }

    /// The port its check uses instead of the check's own.
    pub fn check_port(self, port: u16) -> Self {
        self.set("check_port", port)
    }

    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.set(key, value);
        self
    }
}

/// One `[[record]]` and its endpoints.
#[derive(Clone, Debug)]
pub struct RecordSpec {
    table: Table,
    endpoints: Vec<EndpointSpec>,
}

impl RecordSpec {
    /// `name` of type `rtype` (`"A"`, `"AAAA"`) answered by `policy`
    /// (`"failover"`, `"all-healthy"`, `"weighted"`) over endpoints checked
    /// by the check named `check`.
    pub fn new(name: &str, rtype: &str, policy: &str, check: &str) -> Self {
        let mut table = Table::default();
        table.set("name", name);
        table.set("type", rtype);
        table.set("policy", policy);
        table.set("check", check);
        Self {
            table,
            endpoints: Vec::new(),
        }
    }

    pub fn endpoint(mut self, endpoint: EndpointSpec) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = EndpointSpec>) -> Self {
        self.endpoints.extend(endpoints);
        self
    }

    /// Any other key (`ttl`, `min_healthy`, `max_answers`, `when_all_down`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.table.set(key, value);
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("[[record]]\n");
        self.table.render(out);
        out.push_str("endpoints = [\n");
        for endpoint in &self.endpoints {
            out.push_str("  ");
            Value::Table(endpoint.0.0.clone()).render(out);
            out.push_str(",\n");
        }
        out.push_str("]\n");
    }
}

/// One `[checks.NAME]`.
#[derive(Clone, Debug)]
pub struct CheckSpec(Table);

impl CheckSpec {
    /// A check of `kind` (`"tcp"`, `"http"`, `"https"`, `"dns"`, `"icmp"`,
    /// `"exec"`) with the agent's defaults for everything else.
    pub fn new(kind: &str) -> Self {
        let mut table = Table::default();
        table.set("kind", kind);
        Self(table)
    }

    /// A tcp check of `port`.
    pub fn tcp(port: u16) -> Self {
        Self::new("tcp").port(port)
    }

    pub fn port(self, port: u16) -> Self {
        self.set("port", port)
    }

    pub fn interval(self, interval: Duration) -> Self {
        self.set("interval", interval)
    }

    pub fn timeout(self, timeout: Duration) -> Self {
        self.set("timeout", timeout)
    }

    pub fn rise(self, rise: u32) -> Self {
        self.set("rise", rise)
    }

    pub fn fall(self, fall: u32) -> Self {
        self.set("fall", fall)
    }

    /// Interval, timeout, rise and fall at once.
    pub fn timing(self, interval: Duration, timeout: Duration, rise: u32, fall: u32) -> Self {
        self.interval(interval)
            .timeout(timeout)
            .rise(rise)
            .fall(fall)
    }

    /// Any key of the check's kind (`path`, `expect_status`, `query_name`,
    /// `command`, `ca_file`, ...).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.set(key, value);
        self
    }
}

/// A whole agent configuration.
#[derive(Clone, Debug, Default)]
pub struct AgentConfig {
    server: Table,
    zones: Vec<ZoneSpec>,
    records: Vec<RecordSpec>,
    checks: Vec<(String, CheckSpec)>,
    admin: Table,
    http: Table,
    /// Other single-table sections (`[rate_limit]`, `[cookies]`), in the
    /// order first set.
    sections: Vec<(String, Table)>,
    cluster: Table,
}

impl AgentConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Zone `example.test.` with TTL `ttl`, and `www.example.test.` A with a
    /// failover policy over `endpoints` (address, priority), checked by
    /// `check` (named `probe`): what the e2e tests and the failover
    /// benchmark run.
    pub fn failover(ttl: u32, endpoints: &[(Ipv4Addr, u32)], check: CheckSpec) -> Self {
        let record = RecordSpec::new("www.example.test.", "A", "failover", "probe").endpoints(
            endpoints
                .iter()
                .map(|&(address, priority)| EndpointSpec::new(address).priority(priority)),
        );
        Self::new()
            .zone(ZoneSpec::new("example.test.").ttl(ttl))
            .record(record)
            .check("probe", check)
    }

    /// A key of `[server]` (`mode`, `listen`, ...).
    pub fn server(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.server.set(key, value);
        self
    }

    pub fn zone(mut self, zone: ZoneSpec) -> Self {
        self.zones.push(zone);
        self
    }

    /// Appends a record: records keep their order (`record[i]` in the
    /// agent's messages).
    pub fn record(mut self, record: RecordSpec) -> Self {
        self.records.push(record);
        self
    }

    pub fn records(mut self, records: impl IntoIterator<Item = RecordSpec>) -> Self {
        self.records.extend(records);
        self
    }

    /// Adds `[checks.NAME]`, or replaces the check of that name.
    pub fn check(mut self, name: &str, check: CheckSpec) -> Self {
        match self.checks.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = check,
            None => self.checks.push((name.to_string(), check)),
        }
        self
    }

    /// A key of `[http]` (`listen`).
    pub fn http(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.http.set(key, value);
        self
    }

    /// A key of `[admin]` (`state_file`).
    pub fn admin(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.admin.set(key, value);
        self
    }

    /// A key of another single-table section, e.g.
    /// `section("rate_limit", "responses_per_second", 100)`.
    pub fn section(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        match self.sections.iter_mut().find(|(n, _)| n == section) {
            Some((_, table)) => table.set(key, value),
            None => {
                let mut table = Table::default();
                table.set(key, value);
                self.sections.push((section.to_string(), table));
            }
        }
        self
    }

    /// A key of `[cluster]` (`etcd`, `node`, `quorum`, ...).
    pub fn cluster(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.cluster.set(key, value);
        self
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        if !self.server.is_empty() {
            s.push_str("[server]\n");
            self.server.render(&mut s);
            s.push('\n');
        }
        for zone in &self.zones {
            s.push_str("[[zone]]\n");
            zone.0.render(&mut s);
            s.push('\n');
        }
        for record in &self.records {
            record.render(&mut s);
            s.push('\n');
        }
        for (name, check) in &self.checks {
            s.push_str("[checks.");
            render_key(name, &mut s);
            s.push_str("]\n");
            check.0.render(&mut s);
            s.push('\n');
        }
        if !self.admin.is_empty() {
            s.push_str("[admin]\n");
            self.admin.render(&mut s);
        }
        // The sections below each start with a blank line.
        if !self.http.is_empty() {
            s.push_str("\n[http]\n");
            self.http.render(&mut s);
        }
        for (name, table) in &self.sections {
            s.push_str("\n[");
            render_key(name, &mut s);
            s.push_str("]\n");
            table.render(&mut s);
        }
        if !self.cluster.is_empty() {
            s.push_str("\n[cluster]\n");
            self.cluster.render(&mut s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_agent_format() {
        let config = AgentConfig::failover(
            30,
            &[
                (Ipv4Addr::new(192, 0, 2, 10), 1),
                (Ipv4Addr::new(192, 0, 2, 11), 2),
            ],
            CheckSpec::tcp(80).timing(Duration::from_millis(400), Duration::from_millis(200), 2, 3),
        );
        let toml = config.to_toml();
        assert!(toml.contains("origin = \"example.test.\"\nttl = 30"));
        assert!(toml.contains("{ address = \"192.0.2.11\", priority = 2 },"));
        assert!(toml.contains("interval = \"400ms\"\ntimeout = \"200ms\"\nrise = 2\nfall = 3"));

        // What the agent makes of it is what the tests assume.
        let parsed = failover_agent::config::Config::parse(&toml, "rendered").unwrap();
        let record = &parsed.records[0];
        assert_eq!(record.name, "www.example.test.");
        assert_eq!(record.ttl, 30);
        assert_eq!(record.endpoints.len(), 2);
        assert_eq!(record.endpoints[1].address, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(record.endpoints[1].priority, 2);
        assert_eq!(record.check.interval, Duration::from_millis(400));
        assert_eq!(record.check.timeout, Duration::from_millis(200));
        assert_eq!((record.check.rise, record.check.fall), (2, 3));
    }

    #[test]
    fn renders_values_and_every_section() {
        let config = AgentConfig::new()
            .server("mode", "authoritative")
            .server("listen", vec![SocketAddr::from(([198, 51, 100, 1], 53))])
            .zone(
                ZoneSpec::new("t.")
                    .nameserver("ns1.t.", &[IpAddr::from([198, 51, 100, 1])])
                    .nameserver("ns2.t.", &[]),
            )
            .record(
                RecordSpec::new("www.t.", "A", "weighted", "c")
                    .set("max_answers", 2)
                    .endpoint(EndpointSpec::new(Ipv4Addr::new(192, 0, 2, 1)).weight(3))
                    .endpoint(
                        EndpointSpec::new(Ipv4Addr::new(192, 0, 2, 2))
                            .check_address(Ipv4Addr::LOCALHOST)
                            .check_port(8080),
                    ),
            )
            .check(
                "c",
                CheckSpec::new("http")
                    .interval(Duration::from_secs(1))
                    .set("expect_status", [Value::from("200-299"), Value::from(418)])
                    .set("expect_body", "say \"hi\"\r\n")
                    .set("headers", Value::table([("X-Probe", "p1")]))
                    .set("verify", false),
            )
            .check("c", CheckSpec::tcp(80))
            .admin("state_file", Path::new("/tmp/x/admin-state.toml"));
        let toml = config.to_toml();
        assert_eq!(
            toml,
            "[server]\nmode = \"authoritative\"\nlisten = [\"198.51.100.1:53\"]\n\n\
             [[zone]]\norigin = \"t.\"\nnameservers = [{ name = \"ns1.t.\", addresses = [\"198.51.100.1\"] }, \
             { name = \"ns2.t.\", addresses = [] }]\n\n\
             [[record]]\nname = \"www.t.\"\ntype = \"A\"\npolicy = \"weighted\"\ncheck = \"c\"\nmax_answers = 2\n\
             endpoints = [\n  { address = \"192.0.2.1\", weight = 3 },\n  \
             { address = \"192.0.2.2\", check_address = \"127.0.0.1\", check_port = 8080 },\n]\n\n\
             [checks.c]\nkind = \"tcp\"\nport = 80\n\n\
             [admin]\nstate_file = \"/tmp/x/admin-state.toml\"\n"
        );
        let check = CheckSpec::new("http")
            .interval(Duration::from_secs(1))
            .set("expect_status", [Value::from("200-299"), Value::from(418)])
            .set("expect_body", "say \"hi\"\r\n")
            .set("headers", Value::table([("X-Probe", "p1")]));
        let mut text = String::new();
        check.0.render(&mut text);
        assert_eq!(
            text,
            "kind = \"http\"\ninterval = \"1s\"\nexpect_status = [\"200-299\", 418]\n\
             expect_body = \"say \\\"hi\\\"\\r\\n\"\nheaders = { X-Probe = \"p1\" }\n"
        );
    }
}
