//! The one wire-name encoder. Text names (`"www.example.test."`, relative
//! to the root when the dot is missing, no escapes) become length-prefixed
//! labels and the root label: as written (SOA RDATA keeps its case) or
//! lowercased (the key of the kernel's record map and of the userspace
//! tables, so names compare case-insensitively).

use anyhow::{Result, bail};
use failover_common::{MAX_NAME_WIRE_LEN, RecordKey};

/// `name` in wire format, case kept.
pub fn wire_name(name: &str) -> Result<Vec<u8>> {
    encode(name, false)
}

/// `name` in lowercased wire format: the key names are looked up by.
pub fn name_key(name: &str) -> Result<Vec<u8>> {
    encode(name, true)
}

/// A kernel record map's key of (`wire`, `qtype`), `wire` a lowercased wire
/// name ([`name_key`]) of at most `N` bytes (its bucket,
/// `failover_common::record_bucket`): zero-padded, exactly as the XDP
/// program builds it from a query.
pub fn record_key<const N: usize>(wire: &[u8], qtype: u16) -> RecordKey<N> {
    let mut key = RecordKey::zeroed();
    key.qtype = qtype;
    key.name[..wire.len()].copy_from_slice(wire);
    key
}

/// The text name (`"www.example.test."`) of a record-map key's wire name;
/// fails on anything the encoder would not have written (no escapes: a
/// label byte must be a printable ASCII character other than `.`).
pub fn text_name(wire: &[u8]) -> Result<String> {
    let mut out = String::new();
    let mut rest = wire;
    loop {
        let Some((&len, tail)) = rest.split_first() else {
            bail!("wire name without its root label");
        };
        if len == 0 {
            break;
        }
        if len > 63 || tail.len() < len as usize {
            bail!("bad label length {len} in a wire name");
        }
        let (label, tail) = tail.split_at(len as usize);
        if label.iter().any(|&b| !b.is_ascii_graphic() || b == b'.') {
            bail!("a wire name label with a byte the encoder never writes");
        }
        out.push_str(std::str::from_utf8(label)?);
        out.push('.');
        rest = tail;
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok(out)
}

/// The lowercased wire key of a parsed name's labels (a query's name:
/// already within the wire limits, so nothing to check).
pub fn labels_key<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut key = Vec::with_capacity(32);
    for label in labels {
        key.push(label.len() as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    key.push(0);
    key
}

/// Labels of a wire-format name, the root not counted.
pub fn label_count(mut wire: &[u8]) -> usize {
    let mut n = 0;
    while let Some((&len, rest)) = wire.split_first() {
        if len == 0 {
            break;
        }
        n += 1;
        wire = &rest[(len as usize).min(rest.len())..];
    }
    n
}

fn encode(name: &str, lowercase: bool) -> Result<Vec<u8>> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                bail!("{name}: label {label:?} must be 1 to 63 bytes");
            }
            out.push(label.len() as u8);
            if lowercase {
                out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
            } else {
                out.extend_from_slice(label.as_bytes());
            }
        }
    }
    out.push(0);
    if out.len() > MAX_NAME_WIRE_LEN {
        bail!("{name}: longer than {MAX_NAME_WIRE_LEN} bytes in wire format");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::rr::RTYPE_A;

    #[test]
    fn case_and_keys() {
        assert_eq!(wire_name("Www.Ex.").unwrap(), b"\x03Www\x02Ex\x00");
        assert_eq!(name_key("Www.Ex").unwrap(), b"\x03www\x02ex\x00");
        assert_eq!(name_key(".").unwrap(), b"\x00");
        assert_eq!(name_key("").unwrap(), b"\x00");
        let key: RecordKey<32> = record_key(&name_key("WWW.ex.").unwrap(), 28);
        assert_eq!(&key.name[..8], b"\x03www\x02ex\x00");
        assert!(key.name[8..].iter().all(|b| *b == 0));
        assert_eq!(key.qtype, 28);
        assert_eq!(
            labels_key([&b"WwW"[..], &b"eX"[..]].into_iter()),
            b"\x03www\x02ex\x00"
        );
        assert_eq!(label_count(b"\x03www\x02ex\x00"), 2);
        assert_eq!(label_count(b"\x00"), 0);
    }

    #[test]
    fn limits() {
        assert!(name_key("a..b").is_err());
        assert!(name_key(&"a".repeat(64)).is_err());
        assert!(name_key(&"a".repeat(63)).is_ok());
        // 4 labels of 63 bytes: 4 * 64 + 1 = 257 bytes.
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(name_key(&long).is_err());
        let longest = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
        assert_eq!(name_key(&longest).unwrap().len(), MAX_NAME_WIRE_LEN);
    }

    #[test]
    fn record_key_is_lowercase_wire_format() {
        let key: RecordKey<32> = record_key(&name_key("WWW.Example.test.").unwrap(), RTYPE_A);
        assert_eq!(&key.name[..18], b"\x03www\x07example\x04test\x00");
        assert!(key.name[18..].iter().all(|&b| b == 0));
        assert_eq!(
            key,
            record_key(&name_key("www.example.test").unwrap(), RTYPE_A)
        );
    }

    #[test]
    fn names_go_to_the_shortest_bucket_they_fit() {
        use failover_common::record_bucket;
        // 31 + 1 label bytes and the root: 32 bytes.
        let at_32 = name_key(&format!("{}.", "a".repeat(30))).unwrap();
        assert_eq!((at_32.len(), record_bucket(at_32.len())), (32, 0));
        let at_33 = name_key(&format!("{}.", "a".repeat(31))).unwrap();
        assert_eq!((at_33.len(), record_bucket(at_33.len())), (33, 1));
        assert_eq!(record_bucket(64), 1);
        assert_eq!(record_bucket(65), 2);
        assert_eq!(record_bucket(128), 2);
        assert_eq!(record_bucket(129), 3);
        let max = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert_eq!(record_bucket(name_key(&max).unwrap().len()), 3);
    }

    #[test]
    fn text_name_reverses_the_key() {
        let key: RecordKey<32> = record_key(&name_key("WWW.Example.test.").unwrap(), RTYPE_A);
        assert_eq!(text_name(&key.name).unwrap(), "www.example.test.");
        assert_eq!(text_name(b"\0").unwrap(), ".");
        assert!(text_name(b"\x03ww").is_err());
        assert!(text_name(b"\x01.\0").is_err());
    }
}
