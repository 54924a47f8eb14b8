//! Record types, response codes and the SOA, as the agent deals in them.

use std::fmt;

/// Type numbers of the records the agent publishes.
pub use failover_common::{
    QTYPE_A as RTYPE_A, QTYPE_AAAA as RTYPE_AAAA, QTYPE_HTTPS as RTYPE_HTTPS,
};

/// Types a hot name is answered for in the kernel: each is either published
/// (the name has that record) or declared NODATA. HTTPS because browsers ask
/// for it for every name.
pub const HOT_TYPES: [u16; 3] = [RTYPE_A, RTYPE_AAAA, RTYPE_HTTPS];

/// The name of type `rtype` for messages (`"AAAA"`, `"TYPE99"`).
pub fn type_name(rtype: u16) -> String {
    match rtype {
        RTYPE_A => "A".to_string(),
        RTYPE_AAAA => "AAAA".to_string(),
        RTYPE_HTTPS => "HTTPS".to_string(),
        other => format!("TYPE{other}"),
    }
}

/// A zone's SOA, as negative answers carry it in the authority section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    /// The zone apex, absolute, lowercase: `"example.test."`.
    pub apex: String,
    /// SOA MNAME and RNAME, absolute.
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    /// TTL of the SOA record in a negative answer: min(SOA TTL, MINIMUM)
    /// (RFC 2308 section 3).
    pub negative_ttl: u32,
}

/// DNS response codes by name (RFC 1035, 2136).
pub const RCODES: [(&str, u16); 11] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
];

/// Response code `code` by name, for messages.
pub struct Rcode(pub u16);

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match RCODES.iter().find(|(_, c)| *c == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

/// The code of a response code's name (`"nxdomain"` in any case).
pub fn rcode_by_name(name: &str) -> Option<u16> {
    RCODES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}
