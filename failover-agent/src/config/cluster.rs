//! `[cluster]`: several nameservers agreeing on health through etcd (see
//! [`crate::cluster`]). Without the section the agent decides alone.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::field::{FieldError, field_err, no_nul, quoted, read_bounded};

/// `[cluster]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Required. etcd's client URLs, e.g. `["http://192.0.2.5:2379"]`; all
    /// `http://` or all `https://` (then `[cluster.tls]` gives the CA and,
    /// for client certificates, cert and key).
    pub etcd: Vec<String>,
    /// Optional. This agent's name among the nameservers: unique per agent,
    /// 1 to 63 letters, digits, `.`, `_` or `-`. Default: the host name.
    pub node: Option<String>,
    /// Optional. Every key the agents write lives under it; agents with the
    /// same prefix agree with each other. Default `"/failover/"` (a final
    /// `/` is added when missing).
    pub prefix: Option<String>,
    /// Optional. How many of the live nodes observing an endpoint must see
    /// it healthy for it to count as healthy: `"any"` (one), `"majority"`
    /// (more than half of them, the default), `"all"`, a count (`2`), or a
    /// share (`"18%"`: at least that share, as Route 53 does).
    pub quorum: Option<toml::Value>,
    /// Optional, whole seconds, 2s to 300s. A node's observations vanish
    /// this long after it dies (its etcd lease); a node that cannot reach
    /// etcd for this long decides from its own checks until it can again.
    /// Default `"3s"`.
    pub lease_ttl: Option<String>,
    /// Optional, 0 to 1000. 0 (default): every node checks every endpoint.
    /// N: only N live nodes check each endpoint, chosen by rendezvous
    /// hashing over the live nodes (a dead checker's endpoints are taken
    /// over within `lease_ttl`).
    pub checkers: Option<i64>,
    /// Optional. etcd user and password (both or neither).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Optional, for `https://` endpoints: `ca` (PEM file of the CAs that
    /// sign etcd's certificate; default: the web roots), `cert` and `key`
    /// (PEM files of a client certificate and its key; both or neither).
    pub tls: Option<ClusterTlsFile>,
}

/// `[cluster.tls]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsFile {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// How many healthy observations make an endpoint healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    Any,
    Majority,
    All,
    Count(u32),
    /// Hundredths of a percent: `"18%"` is 1800.
    Share(u32),
}

impl Quorum {
    /// Whether `healthy` of `observers` observations reach the quorum. No
    /// observer: no answer (the endpoint's health is unknown).
    pub fn reached(self, healthy: usize, observers: usize) -> Option<bool> {
        if observers == 0 {
            return None;
        }
        Some(match self {
            Quorum::Any => healthy >= 1,
            Quorum::Majority => 2 * healthy > observers,
            Quorum::All => healthy == observers,
            Quorum::Count(n) => healthy >= n as usize,
            Quorum::Share(hundredths) => healthy * 10_000 >= observers * hundredths as usize,
        })
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Any => f.write_str("any"),
            Quorum::Majority => f.write_str("majority"),
            Quorum::All => f.write_str("all"),
            Quorum::Count(n) => write!(f, "{n}"),
            Quorum::Share(h) if h % 100 == 0 => write!(f, "{}%", h / 100),
            Quorum::Share(h) => write!(f, "{}.{:02}%", h / 100, h % 100),
        }
    }
}

/// TLS towards etcd, the files read at validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTls {
    /// PEM; `None`: the web roots.
    pub ca: Option<Vec<u8>>,
    /// PEM certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// `[cluster]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub etcd: Vec<String>,
    pub node: String,
    /// Ends with `/`.
    pub prefix: String,
    pub quorum: Quorum,
    pub lease_ttl: Duration,
    /// 0: every node checks everything.
    pub checkers: u32,
    pub user: Option<(String, String)>,
    /// For `https://` endpoints.
    pub tls: Option<ClusterTls>,
}

impl Cluster {
    /// The keys of `[cluster]` that differ between `old` and `new` (a
    /// section added or removed: every key it has), for a reload's
    /// warning. Values are not shown: one is a password.
    pub fn changed_keys(old: Option<&Cluster>, new: Option<&Cluster>) -> Vec<&'static str> {
        let (a, b) = match (old, new) {
            (None, None) => return Vec::new(),
            (Some(_), None) | (None, Some(_)) => return vec!["cluster"],
            (Some(a), Some(b)) => (a, b),
        };
        let tls = |c: &Cluster, part: fn(&ClusterTls) -> Option<&[u8]>| {
            c.tls.as_ref().and_then(part).map(<[u8]>::to_vec)
        };
        let user = |c: &Cluster| c.user.as_ref().map(|(u, _)| u.clone());
        let password = |c: &Cluster| c.user.as_ref().map(|(_, p)| p.clone());
        [
            ("cluster.etcd", a.etcd != b.etcd),
            ("cluster.node", a.node != b.node),
            ("cluster.prefix", a.prefix != b.prefix),
            ("cluster.quorum", a.quorum != b.quorum),
            ("cluster.lease_ttl", a.lease_ttl != b.lease_ttl),
            ("cluster.checkers", a.checkers != b.checkers),
            ("cluster.user", user(a) != user(b)),
            ("cluster.password", password(a) != password(b)),
            (
                "cluster.tls.ca",
                tls(a, |t| t.ca.as_deref()) != tls(b, |t| t.ca.as_deref()),
            ),
            (
                "cluster.tls.cert",
                tls(a, |t| t.identity.as_ref().map(|(c, _)| c.as_slice()))
                    != tls(b, |t| t.identity.as_ref().map(|(c, _)| c.as_slice())),
            ),
            (
                "cluster.tls.key",
                tls(a, |t| t.identity.as_ref().map(|(_, k)| k.as_slice()))
                    != tls(b, |t| t.identity.as_ref().map(|(_, k)| k.as_slice())),
            ),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
    }
}

/// A digest of what decides answers: every record (name, type, policy and
/// its options, endpoints, the check and its settings) and the quorum
/// rules. Nodes of one cluster must agree on it, or the same observations
/// lead them to different answers; they publish it to compare. Taken over
/// the validated values, so formatting, comments and key order in the file
/// do not count (the same agent version formats them the same way).
pub fn decision_digest(config: &super::Config) -> String {
    let quorum = config.cluster.as_ref().map(|c| (c.quorum, c.checkers));
    let text = format!("{:?}\n{quorum:?}", config.records);
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub const DEFAULT_PREFIX: &str = "/failover/";
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// etcd grants no lease much shorter (its minimum TTL follows its election
/// timeout: 2 s with the defaults).
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(300);
const MAX_CHECKERS: i64 = 1000;
/// Certificates and keys are small; more is a wrong file.
const MAX_PEM: u64 = 1 << 20;

/// A node name as written in keys: no `/`, nothing to escape.
pub fn valid_node(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// This host's name, for the default `node`.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

pub(super) fn cluster_value(file: &ClusterFile) -> Result<Cluster, FieldError> {
    if file.etcd.is_empty() {
        return Err(field_err(
            "cluster.etcd",
            "at least one etcd endpoint is required, e.g. [\"http://192.0.2.5:2379\"]",
        ));
    }
    let mut https = None;
    for (i, url) in file.etcd.iter().enumerate() {
        let field = format!("cluster.etcd[{i}]");
        no_nul(&field, url)?;
        let (scheme, rest) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                return Err(field_err(
                    field,
                    format!(
                        "{} is not an etcd URL: write \"http://HOST:PORT\" or \"https://HOST:PORT\"",
                        quoted(url)
                    ),
                ));
            }
        };
        let port_ok = rest.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
        });
        if !port_ok || rest.contains('/') {
            return Err(field_err(
                field,
                format!(
                    "{}: expected HOST:PORT after the scheme and nothing else, e.g. \"http://192.0.2.5:2379\"",
                    quoted(url)
                ),
            ));
        }
        if https.is_some_and(|h| h != scheme) {
            return Err(field_err(
                field,
                "mixes http:// and https://: use one scheme for every endpoint",
            ));
        }
        https = Some(scheme);
    }
    let https = https.unwrap_or(false);

    let node = match &file.node {
        Some(node) => node.clone(),
        None => host_name().ok_or_else(|| {
            field_err(
                "cluster.node",
                "the host name cannot be read: set node explicitly",
            )
        })?,
    };
    if !valid_node(&node) {
        return Err(field_err(
            "cluster.node",
            format!(
                "{}: a node name is 1 to 63 letters, digits, '.', '_' or '-'{}",
                quoted(&node),
                if file.node.is_none() {
                    " (this is the host name: set node explicitly)"
                } else {
                    ""
                }
            ),
        ));
    }

    let mut prefix = file
        .prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    no_nul("cluster.prefix", &prefix)?;
    if prefix.is_empty() || prefix == "/" {
        return Err(field_err(
            "cluster.prefix",
            "must not be empty or \"/\": the agents' keys must not mix with others'",
        ));
    }
    if !prefix.ends_with('/') {
        prefix.push('/');
    }

    let quorum = match &file.quorum {
        None => Quorum::Majority,
        Some(value) => quorum_value(value)?,
    };

    let lease_ttl = crate::field::duration_value(
        "cluster.lease_ttl",
        file.lease_ttl.as_ref(),
        DEFAULT_LEASE_TTL,
        MAX_LEASE_TTL,
    )?;
    if lease_ttl < MIN_LEASE_TTL || lease_ttl.subsec_nanos() != 0 {
        return Err(field_err(
            "cluster.lease_ttl",
            format!(
                "{}: whole seconds from {} to {} (etcd leases count seconds)",
                humantime::format_duration(lease_ttl),
                humantime::format_duration(MIN_LEASE_TTL),
                humantime::format_duration(MAX_LEASE_TTL)
            ),
        ));
    }

    let checkers = match file.checkers {
        None => 0,
        Some(n) if (0..=MAX_CHECKERS).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                "cluster.checkers",
                format!("{n} is out of range: 0 (every node checks) to {MAX_CHECKERS}"),
            ));
        }
    };
    if let Quorum::Count(n) = quorum
        && checkers != 0
        && n > checkers
    {
        return Err(field_err(
            "cluster.quorum",
            format!(
                "{n} healthy observations can never be reached with checkers = {checkers}: at most {checkers}"
            ),
        ));
    }

    let user = match (&file.user, &file.password) {
        (None, None) => None,
        (Some(user), Some(password)) => {
            no_nul("cluster.user", user)?;
            no_nul("cluster.password", password)?;
            if user.is_empty() {
                return Err(field_err("cluster.user", "empty user name"));
            }
            Some((user.clone(), password.clone()))
        }
        (Some(_), None) => {
            return Err(field_err("cluster.password", "required with cluster.user"));
        }
        (None, Some(_)) => {
            return Err(field_err("cluster.user", "required with cluster.password"));
        }
    };

    let tls = match &file.tls {
        None => https.then_some(ClusterTls {
            ca: None,
            identity: None,
        }),
        Some(_) if !https => {
            return Err(field_err(
                "cluster.tls",
                "only with https:// etcd endpoints",
            ));
        }
        Some(tls) => {
            let read = |field: &str, path: &String| -> Result<Vec<u8>, FieldError> {
                no_nul(field, path)?;
                let pem = read_bounded(std::path::Path::new(path), MAX_PEM, "a PEM file")
                    .map_err(|e| field_err(field, e))?;
                if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
                    return Err(field_err(
                        field,
                        format!("{} holds no PEM block", quoted(path)),
                    ));
                }
                Ok(pem)
            };
            let ca = tls
                .ca
                .as_ref()
                .map(|p| read("cluster.tls.ca", p))
                .transpose()?;
            let identity = match (&tls.cert, &tls.key) {
                (None, None) => None,
                (Some(cert), Some(key)) => Some((
                    read("cluster.tls.cert", cert)?,
                    read("cluster.tls.key", key)?,
                )),
                (Some(_), None) => {
                    return Err(field_err(
                        "cluster.tls.key",
                        "required with cluster.tls.cert",
                    ));
                }
                (None, Some(_)) => {
                    return Err(field_err(
                        "cluster.tls.cert",
                        "required with cluster.tls.key",
                    ));
                }
            };
            Some(ClusterTls { ca, identity })
        }
    };

    Ok(Cluster {
        etcd: file.etcd.clone(),
        node,
        prefix,
        quorum,
        lease_ttl,
        checkers,
        user,
        tls,
    })
}

fn quorum_value(value: &toml::Value) -> Result<Quorum, FieldError> {
    const FIELD: &str = "cluster.quorum";
    const EXPECTED: &str =
        "expected \"any\", \"majority\", \"all\", a count (2) or a share (\"18%\")";
    match value {
        toml::Value::Integer(n) if (1..=i64::from(u32::MAX)).contains(n) => {
            Ok(Quorum::Count(*n as u32))
        }
        toml::Value::Integer(n) => Err(field_err(FIELD, format!("{n}: a count is 1 or more"))),
        toml::Value::String(text) => match text.as_str() {
            "any" => Ok(Quorum::Any),
            "majority" => Ok(Quorum::Majority),
            "all" => Ok(Quorum::All),
            share => {
                let number = share
                    .strip_suffix('%')
                    .ok_or_else(|| field_err(FIELD, format!("{}: {EXPECTED}", quoted(share))))?;
                let percent: f64 = number
                    .trim()
                    .parse()
                    .map_err(|_| field_err(FIELD, format!("{}: {EXPECTED}", quoted(share))))?;
                if !(percent > 0.0 && percent <= 100.0) {
                    return Err(field_err(
                        FIELD,
                        format!(
                            "{}: a share is more than 0% and at most 100%",
                            quoted(share)
                        ),
                    ));
                }
                Ok(Quorum::Share((percent * 100.0).round() as u32))
            }
        },
        other => Err(field_err(
            FIELD,
            format!("a {}: {EXPECTED}", other.type_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_counts_votes_of_observers() {
        // 3 observers, 2 healthy.
        assert_eq!(Quorum::Any.reached(1, 3), Some(true));
        assert_eq!(Quorum::Any.reached(0, 3), Some(false));
        assert_eq!(Quorum::Majority.reached(2, 3), Some(true));
        assert_eq!(Quorum::Majority.reached(1, 2), Some(false));
        assert_eq!(Quorum::Majority.reached(1, 1), Some(true));
        assert_eq!(Quorum::All.reached(2, 3), Some(false));
        assert_eq!(Quorum::All.reached(3, 3), Some(true));
        assert_eq!(Quorum::Count(2).reached(2, 4), Some(true));
        assert_eq!(Quorum::Count(2).reached(1, 1), Some(false));
        // 18 %: 1 of 6 is 16.7 %, 1 of 5 is 20 %.
        assert_eq!(Quorum::Share(1800).reached(1, 6), Some(false));
        assert_eq!(Quorum::Share(1800).reached(1, 5), Some(true));
        assert_eq!(Quorum::Share(5000).reached(1, 2), Some(true));
        for q in [Quorum::Any, Quorum::Majority, Quorum::All, Quorum::Count(1)] {
            assert_eq!(q.reached(0, 0), None);
        }
    }

    #[test]
    fn quorum_values_parse_and_print() {
        let parse = |v: toml::Value| quorum_value(&v).map(|q| q.to_string());
        assert_eq!(parse("majority".into()).unwrap(), "majority");
        assert_eq!(parse("18%".into()).unwrap(), "18%");
        assert_eq!(parse("12.5%".into()).unwrap(), "12.50%");
        assert_eq!(parse(toml::Value::Integer(2)).unwrap(), "2");
        for bad in ["most", "0%", "101%", "x%"] {
            let e = parse(bad.into()).unwrap_err();
            assert_eq!(e.field, "cluster.quorum");
        }
        assert!(parse(toml::Value::Integer(0)).is_err());
        assert!(
            parse(toml::Value::Boolean(true))
                .unwrap_err()
                .message
                .contains("boolean")
        );
    }

    use crate::config::tests::ONE_RECORD as BASE;

    fn parse(cluster: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::Config::parse(&format!("{BASE}\n[cluster]\n{cluster}"), "test")
    }

    #[test]
    fn the_digest_follows_what_decides_answers_only() {
        let cluster = "etcd = [\"http://192.0.2.5:2379\"]\nnode = \"ns1\"";
        let a = decision_digest(&parse(cluster).unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        // Another node name, or etcd elsewhere: the same decisions.
        let other = cluster
            .replace("ns1", "ns2")
            .replace("192.0.2.5", "192.0.2.6");
        assert_eq!(decision_digest(&parse(&other).unwrap()), a);
        // Another quorum, or another check: not.
        assert_ne!(
            decision_digest(&parse(&format!("{cluster}\nquorum = \"any\"")).unwrap()),
            a
        );
        let text = format!("{BASE}\n[cluster]\n{cluster}").replace("port = 80", "port = 81");
        assert_ne!(
            decision_digest(&crate::config::Config::parse(&text, "test").unwrap()),
            a
        );
    }

    #[test]
    fn a_reload_names_the_changed_keys() {
        let base =
            "etcd = [\"http://192.0.2.5:2379\"]\nnode = \"ns1\"\nuser = \"u\"\npassword = \"p\"";
        let a = parse(base).unwrap().cluster.unwrap();
        let b = parse(&format!("{base}\nquorum = \"any\"\nlease_ttl = \"5s\""))
            .unwrap()
            .cluster
            .unwrap();
        let c = parse(&base.replace("\"p\"", "\"q\""))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(
            Cluster::changed_keys(Some(&a), Some(&a)),
            Vec::<&str>::new()
        );
        assert_eq!(
            Cluster::changed_keys(Some(&a), Some(&b)),
            ["cluster.quorum", "cluster.lease_ttl"]
        );
        assert_eq!(
            Cluster::changed_keys(Some(&a), Some(&c)),
            ["cluster.password"]
        );
        assert_eq!(Cluster::changed_keys(None, Some(&a)), ["cluster"]);
        assert_eq!(Cluster::changed_keys(Some(&a), None), ["cluster"]);
        assert!(Cluster::changed_keys(None, None).is_empty());
    }

    #[test]
    fn a_cluster_section_validates_with_defaults() {
        let config = parse("etcd = [\"http://192.0.2.5:2379\"]\nnode = \"ns1\"").unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.node, "ns1");
        assert_eq!(cluster.prefix, DEFAULT_PREFIX);
        assert_eq!(cluster.quorum, Quorum::Majority);
        assert_eq!(cluster.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(cluster.checkers, 0);
        assert_eq!(cluster.tls, None);
        let config = parse(
            "etcd = [\"https://192.0.2.5:2379\"]\nnode = \"ns1\"\nprefix = \"/dns\"\nquorum = \"18%\"\nlease_ttl = \"5s\"\ncheckers = 2\nuser = \"u\"\npassword = \"p\"",
        )
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.prefix, "/dns/");
        assert_eq!(cluster.quorum, Quorum::Share(1800));
        assert_eq!(cluster.checkers, 2);
        assert_eq!(cluster.user, Some(("u".into(), "p".into())));
        // https without [cluster.tls]: the web roots.
        assert_eq!(
            cluster.tls,
            Some(ClusterTls {
                ca: None,
                identity: None
            })
        );
        assert_eq!(parse_without_cluster().cluster, None);
    }

    fn parse_without_cluster() -> crate::config::Config {
        crate::config::Config::parse(BASE, "test").unwrap()
    }

    #[test]
    fn bad_cluster_sections_say_which_key_is_wrong() {
        let cases = [
            ("etcd = []", "cluster.etcd", "at least one"),
            (
                "etcd = [\"192.0.2.5:2379\"]",
                "cluster.etcd[0]",
                "not an etcd URL",
            ),
            (
                "etcd = [\"http://192.0.2.5\"]",
                "cluster.etcd[0]",
                "HOST:PORT",
            ),
            (
                "etcd = [\"http://a:1\", \"https://b:2\"]",
                "cluster.etcd[1]",
                "mixes",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n/1\"",
                "cluster.node",
                "node name",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\nprefix = \"/\"",
                "cluster.prefix",
                "not be empty",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\nlease_ttl = \"1s\"",
                "cluster.lease_ttl",
                "whole seconds",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\nlease_ttl = \"2500ms\"",
                "cluster.lease_ttl",
                "whole seconds",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\ncheckers = -1",
                "cluster.checkers",
                "out of range",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\nquorum = 3\ncheckers = 2",
                "cluster.quorum",
                "never be reached",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\nuser = \"u\"",
                "cluster.password",
                "required",
            ),
            (
                "etcd = [\"http://a:1\"]\nnode = \"n\"\n[cluster.tls]\nca = \"/x\"",
                "cluster.tls",
                "only with https",
            ),
            (
                "etcd = [\"https://a:1\"]\nnode = \"n\"\n[cluster.tls]\nca = \"/nonexistent/ca.pem\"",
                "cluster.tls.ca",
                "",
            ),
            (
                "etcd = [\"https://a:1\"]\nnode = \"n\"\n[cluster.tls]\ncert = \"/etc/hostname\"",
                "cluster.tls.key",
                "required",
            ),
        ];
        for (text, field, message) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
        let e = parse("etcd = [\"http://a:1\"]\nnodes = 3").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn node_names_are_key_safe() {
        assert!(valid_node("ns1.example-test_2"));
        assert!(!valid_node(""));
        assert!(!valid_node("a/b"));
        assert!(!valid_node(&"n".repeat(64)));
    }
}
