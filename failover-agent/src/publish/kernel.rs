//! The kernel maps as a publisher: each [`Entry`] becomes one record-map
//! value (one update, so the program never sees half a set) and each zone's
//! SOA one pre-encoded zone-map value.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use failover_common::{
    ANSWER_ADDRS, ANSWER_NODATA, ANSWER_SERVFAIL, ANSWER_WEIGHTED, AnswerSet, MAX_ANSWER_ADDRS,
    MAX_ZONES, QCLASS_IN, QTYPE_A, QTYPE_AAAA, QTYPE_SOA, SOA_RR_MAX, ZoneSoa,
};

use super::Publisher;
use crate::dataplane::Dataplane;
use crate::dns::name::wire_name;
use crate::dns::rr::Soa;
use crate::policy::Answer;
use crate::serve::table::Entry;
use crate::serve::zones::ZoneTree;

impl Publisher for Dataplane {
    fn set_zones(&mut self, zones: &Arc<ZoneTree>) -> Result<()> {
        for (zone, soa) in zones.soas() {
            if zone >= MAX_ZONES {
                bail!("at most {MAX_ZONES} zones");
            }
            let value = encode_soa(soa)?;
            self.zones_mut()
                .set(zone, value, 0)
                .with_context(|| format!("writing the SOA of {}", soa.apex))?;
        }
        Ok(())
    }

    fn put(&mut self, name: &str, rtype: u16, entry: &Entry) -> Result<()> {
        entry.check(name, rtype)?;
        let value = answer_set(name, rtype, entry)?;
        self.set_answer_set(name, rtype, value)
    }

    /// Queries for a withdrawn (name, type) pass up the stack.
    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        self.remove_answer_set(name, rtype)
    }

    /// The heartbeat: the program answers while it is younger than the hold.
    fn tick(&mut self) -> Result<()> {
        self.beat()
    }
}

/// The record-map value of `entry` (checked against `rtype` already).
fn answer_set(name: &str, rtype: u16, entry: &Entry) -> Result<AnswerSet> {
    let mut value = AnswerSet::empty();
    value.zone = entry.zone;
    match &entry.answer {
        Answer::Addrs(addrs) => {
            value.kind = ANSWER_ADDRS;
            put_addresses(&mut value, name, rtype, entry.ttl, addrs.iter())?;
        }
        Answer::Rotating { addrs, per_answer } => {
            value.kind = ANSWER_ADDRS;
            put_addresses(&mut value, name, rtype, entry.ttl, addrs.iter())?;
            // Checked: 1 to 15.
            value.limit = *per_answer as u16;
        }
        Answer::Weighted(choices) => {
            value.kind = ANSWER_WEIGHTED;
            put_addresses(
                &mut value,
                name,
                rtype,
                entry.ttl,
                choices.iter().map(|(a, _)| a),
            )?;
            // Running totals: the program picks the first total above a
            // random number below the last.
            let mut total: u32 = 0;
            for (slot, (_, weight)) in value.weights.iter_mut().zip(choices) {
                total = total
                    .checked_add(*weight)
                    .with_context(|| format!("{name}: weights add up to more than 2^32"))?;
                *slot = total;
            }
        }
        Answer::NoData => value.kind = ANSWER_NODATA,
        Answer::ServFail => value.kind = ANSWER_SERVFAIL,
    }
    Ok(value)
}

/// The entry a record-map value was written from (the reverse of
/// [`Publisher::put`]), e.g. to take over what an earlier agent published.
pub fn entry_of(rtype: u16, value: &AnswerSet) -> Result<Entry> {
    let count = value.count as usize;
    if count > MAX_ANSWER_ADDRS {
        bail!("{count} addresses in an answer set of at most {MAX_ANSWER_ADDRS}");
    }
    let addrs: Vec<IpAddr> = value.addrs[..count]
        .iter()
        .map(|a| match rtype {
            QTYPE_A => Ok(IpAddr::from([a[0], a[1], a[2], a[3]])),
            QTYPE_AAAA => Ok(IpAddr::from(*a)),
            _ => bail!("addresses in a type {rtype} answer set"),
        })
        .collect::<Result<_>>()?;
    let answer = match value.kind {
        ANSWER_ADDRS if count == 0 => bail!("an address answer set without addresses"),
        ANSWER_ADDRS if value.limit == 0 || value.limit as usize >= count => Answer::Addrs(addrs),
        ANSWER_ADDRS => Answer::Rotating {
            addrs,
            per_answer: value.limit as usize,
        },
        ANSWER_WEIGHTED => {
            let mut below = 0;
            let mut choices = Vec::with_capacity(count);
            for (addr, &total) in addrs.into_iter().zip(&value.weights) {
                if total <= below {
                    bail!("weights that are not running totals");
                }
                choices.push((addr, total - below));
                below = total;
            }
            Answer::Weighted(choices)
        }
        ANSWER_NODATA => Answer::NoData,
        ANSWER_SERVFAIL => Answer::ServFail,
        kind => bail!("unknown answer kind {kind}"),
    };
    Ok(Entry::new(value.zone, value.ttl, answer))
}

/// Fills the addresses (and TTL, count) of `value`.
fn put_addresses<'a>(
    value: &mut AnswerSet,
    name: &str,
    rtype: u16,
    ttl: u32,
    addrs: impl ExactSizeIterator<Item = &'a IpAddr>,
) -> Result<()> {
    if addrs.len() == 0 || addrs.len() > MAX_ANSWER_ADDRS {
        bail!(
            "{name}: an answer set holds 1 to {MAX_ANSWER_ADDRS} addresses, not {}",
            addrs.len()
        );
    }
    value.ttl = ttl;
    value.count = addrs.len() as u16;
    for (slot, addr) in value.addrs.iter_mut().zip(addrs) {
        match (rtype, addr) {
            (QTYPE_A, IpAddr::V4(v4)) => slot[..4].copy_from_slice(&v4.octets()),
            (QTYPE_AAAA, IpAddr::V6(v6)) => *slot = v6.octets(),
            _ => bail!("{name}: {addr} does not belong in a type {rtype} answer set"),
        }
    }
    Ok(())
}

/// The zone map value: the SOA record after its owner (which the program
/// writes as a pointer into the question), with its checksum sum.
fn encode_soa(soa: &Soa) -> Result<ZoneSoa> {
    let mut rdata = wire_name(&soa.mname)?;
    rdata.extend(wire_name(&soa.rname)?);
    for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
        rdata.extend(v.to_be_bytes());
    }
    let mut rr = Vec::with_capacity(10 + rdata.len());
    rr.extend(QTYPE_SOA.to_be_bytes());
    rr.extend(QCLASS_IN.to_be_bytes());
    rr.extend(soa.negative_ttl.to_be_bytes());
    rr.extend((rdata.len() as u16).to_be_bytes());
    rr.extend(rdata);
    if rr.len() > SOA_RR_MAX {
        bail!(
            "{}: the SOA record is {} bytes, the kernel holds at most {SOA_RR_MAX}",
            soa.apex,
            rr.len()
        );
    }
    let mut value = ZoneSoa {
        apex_len: wire_name(&soa.apex)?.len() as u16,
        rr_len: rr.len() as u16,
        rr_sum: 0,
        rr: [0; SOA_RR_MAX],
    };
    value.rr[..rr.len()].copy_from_slice(&rr);
    value.rr_sum = rr
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_entry_reads_back_as_written() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        for (rtype, answer) in [
            (QTYPE_A, Answer::Addrs(vec![a("192.0.2.1"), a("192.0.2.2")])),
            (
                QTYPE_A,
                Answer::Rotating {
                    addrs: vec![a("192.0.2.1"), a("192.0.2.2"), a("192.0.2.3")],
                    per_answer: 2,
                },
            ),
            (
                QTYPE_AAAA,
                Answer::Weighted(vec![(a("2001:db8::1"), 3), (a("2001:db8::2"), 1)]),
            ),
            (QTYPE_A, Answer::NoData),
            (QTYPE_AAAA, Answer::ServFail),
        ] {
            let entry = Entry::new(3, 30, answer);
            let value = answer_set("www.t.", rtype, &entry).unwrap();
            assert_eq!(entry_of(rtype, &value).unwrap(), entry);
        }
    }
}
