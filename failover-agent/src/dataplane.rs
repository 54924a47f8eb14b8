//! The kernel side as the agent sees it: the embedded XDP object, attaching it,
//! writing answer sets and zone SOAs into its maps and reading counters.

use std::net::IpAddr;

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use failover_common::{
    ANSWER_ADDRS, ANSWER_NODATA, ANSWER_SERVFAIL, ANSWER_WEIGHTED, AnswerSet, COUNTER_COUNT,
    Counter, MAP_COUNTERS, MAP_RECORDS, MAP_ZONES, MAX_ANSWER_ADDRS, MAX_NAME_WIRE_LEN, MAX_ZONES,
    PROGRAM_RESPONDER, QCLASS_IN, QTYPE_A, QTYPE_AAAA, QTYPE_HTTPS, QTYPE_SOA, RecordKey,
    SOA_RR_MAX,
};

use crate::sink::{AnswerSink, ZoneSoa};

/// The XDP object built by build.rs from failover-ebpf (never stale: see build.rs).
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("FAILOVER_XDP_OBJECT"));

/// How the program is attached to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (veth, most physical NICs): the fast path proper.
    Native,
    /// Generic XDP in the kernel stack: works on any interface, `lo` included.
    Skb,
}

/// The loaded XDP responder with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    records: HashMap<MapData, RecordKey, AnswerSet>,
    zones: Array<MapData, failover_common::ZoneSoa>,
    counters: PerCpuArray<MapData, u64>,
    attached: Option<XdpLinkId>,
}

impl Dataplane {
    /// Loads the embedded object and verifies the responder program; attaches nothing.
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_RESPONDER)
            .context("XDP object has no responder program")?
            .try_into()?;
        program
            .load()
            .context("the kernel verifier rejected the XDP responder")?;
        let records = HashMap::try_from(
            ebpf.take_map(MAP_RECORDS)
                .context("XDP object has no record map")?,
        )?;
        let zones = Array::try_from(
            ebpf.take_map(MAP_ZONES)
                .context("XDP object has no zone map")?,
        )?;
        let counters = PerCpuArray::try_from(
            ebpf.take_map(MAP_COUNTERS)
                .context("XDP object has no counter map")?,
        )?;
        Ok(Self {
            ebpf,
            records,
            zones,
            counters,
            attached: None,
        })
    }

    /// The loaded responder program, e.g. for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_RESPONDER)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load()")
    }

    /// Attaches the responder to `iface`.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<()> {
        if self.attached.is_some() {
            bail!("the XDP responder is already attached");
        }
        let mode = match mode {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        };
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_RESPONDER)
            .expect("checked in load()")
            .try_into()?;
        let link = program
            .attach(iface, mode)
            .with_context(|| format!("attaching XDP to {iface} in {mode:?} mode"))?;
        self.attached = Some(link);
        Ok(())
    }

    /// Detaches the responder; the kernel stops answering at once.
    pub fn detach(&mut self) -> Result<()> {
        if let Some(link) = self.attached.take() {
            let program: &mut Xdp = self
                .ebpf
                .program_mut(PROGRAM_RESPONDER)
                .expect("checked in load()")
                .try_into()?;
            program.detach(link).context("detaching XDP")?;
        }
        Ok(())
    }

    /// Writes the SOA of zone number `zone`, pre-encoded for NODATA answers.
    pub fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
        if zone >= MAX_ZONES {
            bail!("at most {MAX_ZONES} zones");
        }
        let value = encode_soa(soa)?;
        self.zones
            .set(zone, value, 0)
            .with_context(|| format!("writing the SOA of {}", soa.apex))
    }

    /// Writes the whole answer set of (`name`, A or AAAA) as one map update;
    /// the kernel answers all of it, rotating the order per query.
    pub fn set_addresses(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        addrs: &[IpAddr],
    ) -> Result<()> {
        let mut value = address_value(name, rtype, zone, ttl, addrs)?;
        value.kind = ANSWER_ADDRS;
        self.insert(name, rtype, value)
    }

    /// Writes a weighted answer set: the kernel answers ONE address per query,
    /// picked at random in proportion to its weight (every weight >= 1).
    pub fn set_weighted(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        weighted: &[(IpAddr, u32)],
    ) -> Result<()> {
        let addrs: Vec<IpAddr> = weighted.iter().map(|(a, _)| *a).collect();
        let mut value = address_value(name, rtype, zone, ttl, &addrs)?;
        value.kind = ANSWER_WEIGHTED;
        let mut total: u32 = 0;
        for (slot, (addr, weight)) in value.weights.iter_mut().zip(weighted) {
            if *weight == 0 {
                bail!("{name}: {addr} has weight 0; the kernel picks among weights >= 1");
            }
            total = total
                .checked_add(*weight)
                .with_context(|| format!("{name}: weights add up to more than 2^32"))?;
            *slot = total;
        }
        self.insert(name, rtype, value)
    }

    /// Declares that (`name`, `rtype`) is answered SERVFAIL.
    pub fn set_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        let mut value = AnswerSet::empty();
        value.kind = ANSWER_SERVFAIL;
        value.zone = zone;
        self.insert(name, rtype, value)
    }

    /// Declares that `name` has no `rtype` records: NODATA with the zone's SOA.
    pub fn set_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        if !matches!(rtype, QTYPE_A | QTYPE_AAAA | QTYPE_HTTPS) {
            bail!("{name}: the kernel answers NODATA only for A, AAAA and HTTPS");
        }
        let mut value = AnswerSet::empty();
        value.kind = ANSWER_NODATA;
        value.zone = zone;
        self.insert(name, rtype, value)
    }

    /// Writes `value` for (`name`, `rtype`) as it is, unchecked: for values
    /// the writers above do not build (e.g. a `limit` below `count`).
    pub fn set_answer_set(&mut self, name: &str, rtype: u16, value: AnswerSet) -> Result<()> {
        self.insert(name, rtype, value)
    }

    fn insert(&mut self, name: &str, rtype: u16, value: AnswerSet) -> Result<()> {
        let key = record_key(name, rtype)?;
        self.records
            .insert(key, value, 0)
            .with_context(|| format!("writing the type {rtype} answer of {name}"))
    }

    /// Removes (`name`, `rtype`); queries for it then pass up the stack.
    pub fn remove(&mut self, name: &str, rtype: u16) -> Result<()> {
        let key = record_key(name, rtype)?;
        match self.records.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the type {rtype} answer of {name}")),
        }
    }

    /// Reads what the kernel holds for (`name`, `rtype`), if anything.
    pub fn get(&self, name: &str, rtype: u16) -> Result<Option<AnswerSet>> {
        let key = record_key(name, rtype)?;
        match self.records.get(&key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Packet counters summed over all CPUs, in `Counter::ALL` order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let mut out = Vec::with_capacity(COUNTER_COUNT as usize);
        for counter in Counter::ALL {
            let per_cpu = self.counters.get(&(counter as u32), 0)?;
            out.push((counter, per_cpu.iter().sum()));
        }
        Ok(out)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // aya also detaches on drop; doing it here makes failures visible.
        if let Err(e) = self.detach() {
            log::warn!("{e:#}");
        }
    }
}

impl AnswerSink for Dataplane {
    fn set_zone(&mut self, zone: u32, soa: &ZoneSoa) -> Result<()> {
        Dataplane::set_zone(self, zone, soa)
    }

    fn publish(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        addrs: &[IpAddr],
    ) -> Result<()> {
        self.set_addresses(name, rtype, zone, ttl, addrs)
    }

    fn publish_weighted(
        &mut self,
        name: &str,
        rtype: u16,
        zone: u32,
        ttl: u32,
        weighted: &[(IpAddr, u32)],
    ) -> Result<()> {
        self.set_weighted(name, rtype, zone, ttl, weighted)
    }

    fn publish_nodata(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        self.set_nodata(name, rtype, zone)
    }

    fn publish_servfail(&mut self, name: &str, rtype: u16, zone: u32) -> Result<()> {
        self.set_servfail(name, rtype, zone)
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        self.remove(name, rtype)
    }
}

/// A map value holding `addrs` (kind still to be set).
fn address_value(
    name: &str,
    rtype: u16,
    zone: u32,
    ttl: u32,
    addrs: &[IpAddr],
) -> Result<AnswerSet> {
    if addrs.is_empty() || addrs.len() > MAX_ANSWER_ADDRS {
        bail!(
            "{name}: an answer set holds 1 to {MAX_ANSWER_ADDRS} addresses, not {}",
            addrs.len()
        );
    }
    let mut value = AnswerSet::empty();
    value.ttl = ttl;
    value.count = addrs.len() as u16;
    value.zone = zone;
    for (slot, addr) in value.addrs.iter_mut().zip(addrs) {
        match (rtype, addr) {
            (QTYPE_A, IpAddr::V4(v4)) => slot[..4].copy_from_slice(&v4.octets()),
            (QTYPE_AAAA, IpAddr::V6(v6)) => *slot = v6.octets(),
            _ => bail!("{name}: {addr} does not belong in a type {rtype} answer set"),
        }
    }
    Ok(value)
}

/// Wire format of an absolute name, as given (case kept), e.g. for SOA RDATA.
fn wire_name(name: &str) -> Result<Vec<u8>> {
    // record_key validates and lowercases; SOA names keep their case.
    record_key(name, 0)?;
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(out)
}

/// The zone map value: the SOA record after its owner (which the program
/// writes as a pointer into the question), with its checksum sum.
fn encode_soa(soa: &ZoneSoa) -> Result<failover_common::ZoneSoa> {
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
    let mut value = failover_common::ZoneSoa {
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

/// The map key of `name` (absolute or relative to the root, any case) and `qtype`:
/// the lowercased wire-format name, zero-padded, exactly as the XDP program
/// builds it from a query.
pub fn record_key(name: &str, qtype: u16) -> Result<RecordKey> {
    let mut key = RecordKey::zeroed();
    key.qtype = qtype;
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let mut pos = 0;
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            let len = label.len();
            if len == 0 || len > 63 {
                bail!("{name}: label {label:?} must be 1 to 63 bytes");
            }
            if pos + 1 + len + 1 > MAX_NAME_WIRE_LEN {
                bail!("{name}: longer than {MAX_NAME_WIRE_LEN} bytes in wire format");
            }
            key.name[pos] = len as u8;
            for (i, b) in label.bytes().enumerate() {
                key.name[pos + 1 + i] = b.to_ascii_lowercase();
            }
            pos += 1 + len;
        }
    }
    // key.name[pos] is the root label, already zero.
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_key_is_lowercase_wire_format() {
        let key = record_key("WWW.Example.test.", QTYPE_A).unwrap();
        assert_eq!(&key.name[..18], b"\x03www\x07example\x04test\x00");
        assert!(key.name[18..].iter().all(|&b| b == 0));
        assert_eq!(key, record_key("www.example.test", QTYPE_A).unwrap());
    }

    #[test]
    fn record_key_rejects_bad_names() {
        assert!(record_key("a..b.", QTYPE_A).is_err());
        assert!(record_key(&format!("{}.test.", "x".repeat(64)), QTYPE_A).is_err());
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(
            record_key(&long, QTYPE_A).is_err(),
            "256 bytes in wire format"
        );
        let max = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "b".repeat(61));
        assert!(
            record_key(&max, QTYPE_A).is_ok(),
            "255 bytes in wire format"
        );
    }
}
