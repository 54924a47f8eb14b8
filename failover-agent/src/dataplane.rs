//! The kernel side as the agent sees it: the embedded XDP object, attaching it,
//! writing answer sets into the record map and reading counters.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use failover_common::{
    AnswerSet, COUNTER_COUNT, Counter, MAP_COUNTERS, MAP_RECORDS, MAX_ANSWER_ADDRS,
    MAX_NAME_WIRE_LEN, PROGRAM_RESPONDER, QTYPE_A, RecordKey,
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
        let counters = PerCpuArray::try_from(
            ebpf.take_map(MAP_COUNTERS)
                .context("XDP object has no counter map")?,
        )?;
        Ok(Self {
            ebpf,
            records,
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

    /// Writes one record's whole A answer set as a single map update.
    pub fn set_a(&mut self, name: &str, ttl: u32, addrs: &[Ipv4Addr]) -> Result<()> {
        if addrs.is_empty() || addrs.len() > MAX_ANSWER_ADDRS {
            bail!(
                "{name}: an answer set holds 1 to {MAX_ANSWER_ADDRS} addresses, not {}",
                addrs.len()
            );
        }
        let key = record_key(name, QTYPE_A)?;
        let mut value = AnswerSet::empty();
        value.ttl = ttl;
        value.count = addrs.len() as u32;
        for (slot, addr) in value.addrs.iter_mut().zip(addrs) {
            *slot = addr.octets();
        }
        self.records
            .insert(key, value, 0)
            .with_context(|| format!("writing the answer set of {name}"))
    }

    /// Removes a record's A answer set; queries for it then pass up the stack.
    pub fn remove_a(&mut self, name: &str) -> Result<()> {
        let key = record_key(name, QTYPE_A)?;
        match self.records.remove(&key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the answer set of {name}")),
        }
    }

    /// Reads the answer set the kernel holds for `name`, if any.
    pub fn get_a(&self, name: &str) -> Result<Option<AnswerSet>> {
        let key = record_key(name, QTYPE_A)?;
        match self.records.get(&key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
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
    fn set_zone(&mut self, _zone: u32, _soa: &ZoneSoa) -> Result<()> {
        // The kernel does not answer NODATA yet (layout version 1).
        Ok(())
    }

    fn publish(
        &mut self,
        name: &str,
        rtype: u16,
        _zone: u32,
        ttl: u32,
        addrs: &[IpAddr],
    ) -> Result<()> {
        if rtype != QTYPE_A {
            bail!("{name}: the kernel answers only A records so far (type {rtype})");
        }
        let v4: Vec<Ipv4Addr> = addrs
            .iter()
            .map(|a| match a {
                IpAddr::V4(v4) => Ok(*v4),
                IpAddr::V6(v6) => Err(anyhow::anyhow!("{name}: {v6} in an A answer set")),
            })
            .collect::<Result<_>>()?;
        self.set_a(name, ttl, &v4)
    }

    fn publish_nodata(&mut self, name: &str, rtype: u16, _zone: u32) -> Result<()> {
        bail!("{name}: the kernel does not answer NODATA yet (type {rtype})")
    }

    fn withdraw(&mut self, name: &str, rtype: u16) -> Result<()> {
        if rtype != QTYPE_A {
            return Ok(());
        }
        self.remove_a(name)
    }
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
