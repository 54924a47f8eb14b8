//! The kernel side's lifecycle: the embedded XDP object, loading and
//! attaching it, its maps and counters. What goes into the maps is written
//! by the publication path ([`crate::publish::kernel`]).

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use failover_common::{
    AnswerSet, COUNTER_COUNT, Counter, MAP_COUNTERS, MAP_RECORDS, MAP_ZONES, PROGRAM_XDP, RecordKey,
};

use crate::dns::name::record_key;
use failover_common::ZoneSoa;

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

/// The loaded XDP program with its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    records: HashMap<MapData, RecordKey, AnswerSet>,
    zones: Array<MapData, ZoneSoa>,
    counters: PerCpuArray<MapData, u64>,
    attached: Option<XdpLinkId>,
}

impl Dataplane {
    /// Loads the embedded object and verifies the XDP program; attaches nothing.
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_XDP)
            .context("XDP object has no XDP program")?
            .try_into()?;
        program
            .load()
            .context("the kernel verifier rejected the XDP program")?;
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

    /// The loaded XDP program, e.g. for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_XDP)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load()")
    }

    /// Attaches the responder to `iface`.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<()> {
        if self.attached.is_some() {
            bail!("the XDP program is already attached");
        }
        let mode = match mode {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        };
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_XDP)
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
                .program_mut(PROGRAM_XDP)
                .expect("checked in load()")
                .try_into()?;
            program.detach(link).context("detaching XDP")?;
        }
        Ok(())
    }

    /// Writes `value` for (`name`, `rtype`) as it is, as one map update. The
    /// publication path builds values from entries ([`crate::publish::kernel`]);
    /// the packet fixtures write values no entry makes.
    pub fn set_answer_set(&mut self, name: &str, rtype: u16, value: AnswerSet) -> Result<()> {
        let key = record_key(name, rtype)?;
        self.records
            .insert(key, value, 0)
            .with_context(|| format!("writing the type {rtype} answer of {name}"))
    }

    /// Removes (`name`, `rtype`); queries for it then pass up the stack.
    pub fn remove_answer_set(&mut self, name: &str, rtype: u16) -> Result<()> {
        let key = record_key(name, rtype)?;
        match self.records.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the type {rtype} answer of {name}")),
        }
    }

    /// The zone map (one pre-encoded SOA per zone number).
    pub fn zones_mut(&mut self) -> &mut Array<MapData, ZoneSoa> {
        &mut self.zones
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
