//! The kernel side's lifecycle: the embedded XDP object, loading and
//! attaching it, its maps and counters. What goes into the maps is written
//! by the publication path ([`crate::publish::kernel`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use failover_common::{
    ADDR_REFUSED_SOURCE, ADDR_SERVICE_53, AnswerSet, CHECK_BY_MAP, CHECK_DST_MAC, CHECK_SOURCE,
    COUNTER_COUNT, Counter, FAMILY_V4, FAMILY_V6, HOST_ADDRS_V4, HOST_ADDRS_V6, HostConfig,
    MAP_COUNTERS, MAP_HOST, MAP_RECORDS, MAP_SERVICES, MAP_ZONES, MAX_SERVICES, PROGRAM_XDP,
    RecordKey, SERVICE_BROADCAST, SERVICE_HOST_ADDRESS, SERVICE_LISTEN, SERVICE_WILDCARD,
    ServiceKey,
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
    services: HashMap<MapData, ServiceKey, u32>,
    host: Array<MapData, HostConfig>,
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
        let services = HashMap::try_from(
            ebpf.take_map(MAP_SERVICES)
                .context("XDP object has no service map")?,
        )?;
        let host = Array::try_from(
            ebpf.take_map(MAP_HOST)
                .context("XDP object has no host map")?,
        )?;
        Ok(Self {
            ebpf,
            records,
            zones,
            counters,
            services,
            host,
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

    /// Writes which destinations the program answers and what it knows of
    /// the interface (MAC, own and broadcast addresses). Before this, the
    /// program answers nothing. Written once, at start.
    pub fn set_addressing(&mut self, addressing: &Addressing) -> Result<()> {
        if addressing.entries.len() > MAX_SERVICES as usize {
            bail!(
                "{} service and host addresses, the kernel map holds {MAX_SERVICES}",
                addressing.entries.len()
            );
        }
        if addressing.by_map() {
            log::warn!(
                "more than {HOST_ADDRS_V4} IPv4 or {HOST_ADDRS_V6} IPv6 service and host addresses: \
                 the fast path looks each query's addresses up in a hash map (slower)"
            );
        }
        for (key, flags) in &addressing.entries {
            self.services
                .insert(key, flags, 0)
                .with_context(|| format!("writing the service address {key:?}"))?;
        }
        self.host
            .set(0, addressing.host, 0)
            .context("writing the interface's MAC")
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

/// What the program must know of the interface it is attached to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// Its Ethernet address; `None` when it has none (loopback).
    pub mac: Option<[u8; 6]>,
    pub loopback: bool,
    /// Its IPv4 and IPv6 addresses.
    pub addrs: Vec<IpAddr>,
    /// The broadcast address of each IPv4 subnet on it.
    pub broadcasts: Vec<Ipv4Addr>,
}

impl Interface {
    /// Reads `iface`'s MAC, flags and addresses in this network namespace.
    pub fn read(iface: &str) -> Result<Self> {
        let mut out = Interface::default();
        let mut found = false;
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `list` with a linked list it owns, freed
        // with freeifaddrs below; every pointer read is checked for null and
        // cast according to its sa_family.
        unsafe {
            if libc::getifaddrs(&mut list) != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("reading the interface addresses (getifaddrs)");
            }
            let mut cur = list;
            while !cur.is_null() {
                let ifa = &*cur;
                cur = ifa.ifa_next;
                if ifa.ifa_name.is_null()
                    || std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() != iface.as_bytes()
                {
                    continue;
                }
                found = true;
                out.loopback |= ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0;
                if ifa.ifa_addr.is_null() {
                    continue;
                }
                match (*ifa.ifa_addr).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        out.addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                        let bcast = ifa.ifa_ifu;
                        if ifa.ifa_flags & libc::IFF_BROADCAST as u32 != 0 && !bcast.is_null() {
                            let b = &*(bcast as *const libc::sockaddr_in);
                            if b.sin_family as i32 == libc::AF_INET {
                                out.broadcasts
                                    .push(Ipv4Addr::from(u32::from_be(b.sin_addr.s_addr)));
                            }
                        }
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.addrs.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    libc::AF_PACKET => {
                        let ll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                        if ll.sll_halen == 6 {
                            let mut mac = [0u8; 6];
                            mac.copy_from_slice(&ll.sll_addr[..6]);
                            out.mac = Some(mac);
                        }
                    }
                    _ => {}
                }
            }
            libc::freeifaddrs(list);
        }
        if !found {
            bail!("no interface {iface} in this network namespace");
        }
        if out.loopback {
            out.mac = None;
        }
        out.broadcasts.sort();
        out.broadcasts.dedup();
        Ok(out)
    }
}

/// The service map's entries and the host map's value, built from the DNS
/// service addresses and the interface ([`Dataplane::set_addressing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addressing {
    pub host: HostConfig,
    pub entries: BTreeMap<ServiceKey, u32>,
}

impl Addressing {
    /// `services` are the addresses and ports this host serves DNS on; an
    /// unspecified address (`0.0.0.0`, `[::]`) stands for every address of
    /// its family on `interface`. Every service and interface address is
    /// also entered as a host address (port 0), and so is each broadcast
    /// address: the program refuses them as sources.
    pub fn new(interface: &Interface, services: &[SocketAddr]) -> Self {
        let mut entries = BTreeMap::new();
        let mut add = |ip: IpAddr, port: u16, flags: u32| {
            *entries.entry(service_key(ip, port)).or_insert(0) |= flags;
        };
        for service in services {
            if service.ip().is_unspecified() {
                for addr in &interface.addrs {
                    if addr.is_ipv4() == service.is_ipv4() {
                        add(*addr, service.port(), SERVICE_LISTEN | SERVICE_WILDCARD);
                    }
                }
            } else {
                add(service.ip(), service.port(), SERVICE_LISTEN);
                add(service.ip(), 0, SERVICE_HOST_ADDRESS);
            }
        }
        for addr in &interface.addrs {
            add(*addr, 0, SERVICE_HOST_ADDRESS);
        }
        for bcast in &interface.broadcasts {
            add(IpAddr::V4(*bcast), 0, SERVICE_BROADCAST);
        }
        let checks = match (interface.loopback, interface.mac) {
            (true, _) => 0,
            (false, Some(_)) => CHECK_DST_MAC | CHECK_SOURCE,
            (false, None) => CHECK_SOURCE,
        };
        let mut host = HostConfig::zeroed();
        host.mac = interface.mac.unwrap_or_default();
        host.checks = checks;
        if !host_lists(&mut host, &entries) {
            host.checks |= CHECK_BY_MAP;
        }
        Addressing { host, entries }
    }

    /// More addresses of a family than `HostConfig` lists: the program looks
    /// them up in the service map, more slowly.
    pub fn by_map(&self) -> bool {
        self.host.checks & CHECK_BY_MAP != 0
    }

    /// The addresses and ports answered, e.g. for a log line.
    pub fn answered(&self) -> Vec<SocketAddr> {
        self.entries
            .iter()
            .filter(|(k, flags)| k.port != 0 && *flags & SERVICE_LISTEN != 0)
            .map(|(k, _)| {
                let ip = if k.family == FAMILY_V4 {
                    IpAddr::from([k.addr[0], k.addr[1], k.addr[2], k.addr[3]])
                } else {
                    IpAddr::from(k.addr)
                };
                SocketAddr::new(ip, k.port)
            })
            .collect()
    }
}

/// Fills `host`'s address lists from the service map's entries: each
/// address with a port 53 entry or a port 0 entry, with its `ADDR_*` bits.
/// False (lists left empty) when a family has more addresses than they hold.
fn host_lists(host: &mut HostConfig, entries: &BTreeMap<ServiceKey, u32>) -> bool {
    let mut v4: BTreeMap<u32, u8> = BTreeMap::new();
    let mut v6: BTreeMap<[u32; 4], u8> = BTreeMap::new();
    for key in entries.keys() {
        let bit = match key.port {
            53 => ADDR_SERVICE_53,
            0 => ADDR_REFUSED_SOURCE,
            _ => continue,
        };
        let word = |i: usize| {
            u32::from_ne_bytes([
                key.addr[4 * i],
                key.addr[4 * i + 1],
                key.addr[4 * i + 2],
                key.addr[4 * i + 3],
            ])
        };
        if key.family == FAMILY_V4 {
            *v4.entry(word(0)).or_insert(0) |= bit;
        } else {
            *v6.entry([word(0), word(1), word(2), word(3)]).or_insert(0) |= bit;
        }
    }
    if v4.len() > HOST_ADDRS_V4 || v6.len() > HOST_ADDRS_V6 {
        return false;
    }
    for (i, (addr, flags)) in v4.into_iter().enumerate() {
        host.v4[i] = addr;
        host.v4_flags[i] = flags;
        host.v4_count += 1;
    }
    for (i, (addr, flags)) in v6.into_iter().enumerate() {
        host.v6[i] = addr;
        host.v6_flags[i] = flags;
        host.v6_count += 1;
    }
    true
}

/// The service map's key for `ip` and `port` (0: a host address).
pub fn service_key(ip: IpAddr, port: u16) -> ServiceKey {
    let mut key = ServiceKey::zeroed();
    key.port = port;
    match ip {
        IpAddr::V4(a) => {
            key.family = FAMILY_V4;
            key.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            key.family = FAMILY_V6;
            key.addr = a.octets();
        }
    }
    key
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // aya also detaches on drop; doing it here makes failures visible.
        if let Err(e) = self.detach() {
            log::warn!("{e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth() -> Interface {
        Interface {
            mac: Some([2, 0, 0, 0, 0, 1]),
            loopback: false,
            addrs: vec![
                "198.51.100.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
                "fe80::1".parse().unwrap(),
            ],
            broadcasts: vec![Ipv4Addr::new(198, 51, 100, 255)],
        }
    }

    #[test]
    fn a_wildcard_stands_for_the_interface_addresses_of_its_family() {
        let a = Addressing::new(&veth(), &["0.0.0.0:53".parse().unwrap()]);
        assert_eq!(a.answered(), vec!["198.51.100.1:53".parse().unwrap()]);
        let key = service_key("198.51.100.1".parse().unwrap(), 53);
        assert_eq!(a.entries[&key], SERVICE_LISTEN | SERVICE_WILDCARD);
        // Every interface address and the broadcast are host entries (port 0).
        for ip in ["198.51.100.1", "2001:db8::1", "fe80::1"] {
            assert_eq!(
                a.entries[&service_key(ip.parse().unwrap(), 0)],
                SERVICE_HOST_ADDRESS
            );
        }
        let bcast = service_key("198.51.100.255".parse().unwrap(), 0);
        assert_eq!(a.entries[&bcast], SERVICE_BROADCAST);
        assert_eq!(a.host.checks, CHECK_DST_MAC | CHECK_SOURCE);
        assert_eq!(a.host.mac, [2, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn listed_addresses_are_answered_as_listed_and_lo_has_no_checks() {
        let lo = Interface {
            mac: None,
            loopback: true,
            addrs: vec!["127.0.0.1".parse().unwrap()],
            broadcasts: vec![],
        };
        let services = [
            "127.0.0.2:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ];
        let a = Addressing::new(&lo, &services);
        let mut answered = a.answered();
        answered.sort();
        let mut want = services.to_vec();
        want.sort();
        assert_eq!(answered, want);
        assert!(
            a.entries
                .contains_key(&service_key("127.0.0.2".parse().unwrap(), 0))
        );
        assert_eq!(a.host.checks, 0);
        // Keys carry no stray bytes.
        let key = service_key("127.0.0.2".parse().unwrap(), 5353);
        assert_eq!(key.addr[4..], [0; 12]);
        assert_eq!((key.family, key._pad), (FAMILY_V4, 0));
    }

    #[test]
    fn the_host_value_lists_port_53_and_port_0_addresses_with_their_bits() {
        let services = [
            "0.0.0.0:53".parse().unwrap(),
            "[2001:db8::53]:5353".parse().unwrap(),
        ];
        let a = Addressing::new(&veth(), &services);
        assert!(!a.by_map());
        let word = |ip: Ipv4Addr| u32::from_ne_bytes(ip.octets());
        let v4: Vec<_> = (0..a.host.v4_count as usize)
            .map(|i| (a.host.v4[i], a.host.v4_flags[i]))
            .collect();
        assert_eq!(
            v4,
            vec![
                (
                    word(Ipv4Addr::new(198, 51, 100, 1)),
                    ADDR_SERVICE_53 | ADDR_REFUSED_SOURCE
                ),
                (word(Ipv4Addr::new(198, 51, 100, 255)), ADDR_REFUSED_SOURCE),
            ]
        );
        // Port 5353 is not port 53: its address is only a refused source.
        let v6_addrs: Vec<_> = (0..a.host.v6_count as usize)
            .map(|i| a.host.v6_flags[i])
            .collect();
        assert_eq!(v6_addrs, vec![ADDR_REFUSED_SOURCE; 3]);
        assert_eq!(a.host.v4[2..], [0; HOST_ADDRS_V4 - 2]);
        assert_eq!(a.host._pad, [0; 2]);
    }

    #[test]
    fn more_addresses_than_the_host_value_lists_go_by_the_service_map() {
        let mut iface = veth();
        iface.addrs = (1..=HOST_ADDRS_V4 as u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 51, 100, i)))
            .collect();
        // With the broadcast, one IPv4 address more than the list holds.
        let a = Addressing::new(&iface, &["0.0.0.0:53".parse().unwrap()]);
        assert!(a.by_map());
        assert_eq!((a.host.v4_count, a.host.v6_count), (0, 0));
        assert_eq!(a.host.checks, CHECK_DST_MAC | CHECK_SOURCE | CHECK_BY_MAP);
        iface.broadcasts.clear();
        assert!(!Addressing::new(&iface, &["0.0.0.0:53".parse().unwrap()]).by_map());
    }
}
