//! The kernel side's lifecycle: the embedded XDP object, loading and
//! attaching it, its maps and counters. What goes into the maps is written
//! by the publication path ([`crate::publish::kernel`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, MapError, PerCpuArray, ProgramArray,
        lpm_trie::{Key as PrefixKey, LpmTrie},
    },
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use failover_common::{
    ADDR_REFUSED_SOURCE, ADDR_SERVICE_53, AnswerSet, CHECK_BY_MAP, CHECK_DST_MAC, CHECK_SOURCE,
    COOKIES_ANSWER, COOKIES_IGNORE, COUNTER_COUNT, CookieSecrets, Counter, FAMILY_V4, FAMILY_V6,
    HOST_ADDRS_V4, HOST_ADDRS_V6, Heartbeat, HostConfig, MAP_ANSWER_PROGRAM, MAP_COOKIES,
    MAP_COUNTERS, MAP_HEARTBEAT, MAP_HOST, MAP_RATE_EXEMPT, MAP_RATE_LIMIT, MAP_RECORD_VERSION,
    MAP_RECORDS, MAP_SERVICES, MAP_ZONES, MAX_SERVICES, NAME_KEY_LEN, PROGRAM_XDP,
    PROGRAM_XDP_ANSWER, RateLimit, RecordKey, SERVICE_BROADCAST, SERVICE_HOST_ADDRESS,
    SERVICE_LISTEN, SERVICE_WILDCARD, ServiceKey, record_bucket,
};

use crate::config::RateLimitSettings;
use crate::dns::name::{name_key, record_key};
use crate::pin::{self, Lock};
use crate::serve::cookies::Cookies;
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
    records: Records,
    zones: Array<MapData, ZoneSoa>,
    counters: PerCpuArray<MapData, u64>,
    services: HashMap<MapData, ServiceKey, u32>,
    host: Array<MapData, HostConfig>,
    heartbeat: Array<MapData, Heartbeat>,
    rate_limit: Array<MapData, RateLimit>,
    rate_exempt: LpmTrie<MapData, [u8; 16], u8>,
    cookies: Array<MapData, CookieSecrets>,
    /// Slot 0 holds this object's answer program. The table empties when
    /// its last user descriptor or pin goes (the kernel breaks program
    /// cycles so), so a pinned data plane pins it too (`JUMP_TABLE`).
    answer_program: aya::maps::Map,
    /// Written with every heartbeat.
    hold: std::time::Duration,
    attached: Option<XdpLinkId>,
    pinned: Option<Pinned>,
}

/// The maps kept in bpffs: everything that says what the program answers,
/// and its counters. Per-CPU working memory is the program's own, and so
/// are the rate limit's maps: the agent writes the settings before it
/// attaches (or swaps in) the program, and the rate state starts afresh.
pub const PINNED_MAPS: [&str; 10] = [
    MAP_RECORDS[0],
    MAP_RECORDS[1],
    MAP_RECORDS[2],
    MAP_RECORDS[3],
    MAP_RECORD_VERSION,
    MAP_ZONES,
    MAP_SERVICES,
    MAP_HOST,
    MAP_COUNTERS,
    MAP_HEARTBEAT,
];

/// The pin of the attached program's answer jump table, beside the link.
pub const JUMP_TABLE: &str = "answer_program";

use crate::config::DEFAULT_DATAPLANE_HOLD as DEFAULT_HOLD;

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_coarse_ns`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC (wrapping): what the program adds
/// to `bpf_ktime_get_coarse_ns` for Unix time (see `Heartbeat`).
pub fn unix_offset_ns() -> u64 {
    let mono = monotonic_ns();
    clock_ns(libc::CLOCK_REALTIME).wrapping_sub(mono)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A data plane pinned in bpffs ([`crate::pin`]).
struct Pinned {
    dir: PathBuf,
    /// Held for the agent's lifetime.
    lock: Lock,
    /// The pinned link, once attached (or adopted).
    link: Option<FdLink>,
    /// The maps and the link were pinned already: another agent's data plane.
    adopted: bool,
    /// The data plane of another map layout this one takes over from (a
    /// running agent's, handed over with its lock): its link is moved to
    /// this program at attach, then its pins go.
    predecessor: Option<(PathBuf, Lock)>,
}

impl Dataplane {
    /// Loads the embedded object and verifies the XDP program; attaches nothing.
    pub fn load() -> Result<Self> {
        let ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object")?;
        Self::from_ebpf(ebpf, None)
    }

    /// Like [`Dataplane::load`], with the maps pinned in `dir` (reused if
    /// they are there: the kernel keeps answering what it answered). Locks
    /// `dir` first: one agent per pinned data plane.
    pub fn load_pinned(dir: &Path) -> Result<Self> {
        Self::load_pinned_locked(dir, Lock::take(dir)?)
    }

    /// [`Dataplane::load_pinned`] with `dir`'s lock already held (handed
    /// over by the agent this one takes over from).
    pub fn load_pinned_locked(dir: &Path, lock: Lock) -> Result<Self> {
        let adopted = dir.join(pin::LINK).exists() && dir.join(MAP_RECORDS[0]).exists();
        let paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|m| (*m, dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(XDP_OBJECT).with_context(|| {
            format!(
                "loading the embedded XDP object with its maps in {}",
                dir.display()
            )
        })?;
        Self::from_ebpf(
            ebpf,
            Some(Pinned {
                dir: dir.to_path_buf(),
                lock,
                link: None,
                adopted,
                predecessor: None,
            }),
        )
    }

    /// Takes over the data plane of another map layout pinned in `dir`
    /// (whose `lock` the agent running it handed over): at
    /// [`Dataplane::attach`] its link gets this program, atomically, once
    /// this data plane's maps are filled; then its pins are removed.
    pub fn take_over_from(&mut self, dir: &Path, lock: Lock) -> Result<()> {
        let pinned = self
            .pinned
            .as_mut()
            .context("only a pinned data plane takes over another")?;
        pinned.predecessor = Some((dir.to_path_buf(), lock));
        Ok(())
    }

    /// Another descriptor of the pin directory's lock, to hand over to the
    /// agent that takes over from this one.
    pub fn share_lock(&self) -> Result<std::os::fd::OwnedFd> {
        self.pinned
            .as_ref()
            .context("the data plane is not pinned: nothing to hand over")?
            .lock
            .share()
    }

    /// Whether this data plane was pinned already (by an earlier agent).
    pub fn adopted(&self) -> bool {
        self.pinned.as_ref().is_some_and(|p| p.adopted)
    }

    /// The pin directory, if pinned.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pinned.as_ref().map(|p| p.dir.as_path())
    }

    fn from_ebpf(mut ebpf: Ebpf, pinned: Option<Pinned>) -> Result<Self> {
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_XDP)
            .context("XDP object has no XDP program")?
            .try_into()?;
        program
            .load()
            .context("the kernel verifier rejected the XDP program")?;
        let answer_half: &mut Xdp = ebpf
            .program_mut(PROGRAM_XDP_ANSWER)
            .context("XDP object has no answer program")?
            .try_into()?;
        answer_half
            .load()
            .context("the kernel verifier rejected the XDP answer program")?;
        let mut answer_program = ebpf
            .take_map(MAP_ANSWER_PROGRAM)
            .context("XDP object has no answer jump table")?;
        let answer_half: &Xdp = ebpf
            .program(PROGRAM_XDP_ANSWER)
            .context("XDP object has no answer program")?
            .try_into()?;
        ProgramArray::try_from(&mut answer_program)?
            .set(0, answer_half.fd()?, 0)
            .context("putting the answer program in its jump table")?;
        let records = Records::take(&mut ebpf)?;
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
        let heartbeat = Array::try_from(
            ebpf.take_map(MAP_HEARTBEAT)
                .context("XDP object has no heartbeat map")?,
        )?;
        let rate_limit = Array::try_from(
            ebpf.take_map(MAP_RATE_LIMIT)
                .context("XDP object has no rate limit map")?,
        )?;
        let rate_exempt = LpmTrie::try_from(
            ebpf.take_map(MAP_RATE_EXEMPT)
                .context("XDP object has no rate limit exempt map")?,
        )?;
        let cookies = Array::try_from(
            ebpf.take_map(MAP_COOKIES)
                .context("XDP object has no cookie map")?,
        )?;
        Ok(Self {
            ebpf,
            cookies,
            answer_program,
            records,
            zones,
            counters,
            services,
            host,
            heartbeat,
            rate_limit,
            rate_exempt,
            hold: DEFAULT_HOLD,
            attached: None,
            pinned,
        })
    }

    /// One of the object's loaded programs by name.
    pub fn ebpf_program(&self, name: &str) -> &Xdp {
        self.ebpf
            .program(name)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load()")
    }

    /// The loaded XDP program, e.g. for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_XDP)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load()")
    }

    /// Attaches the responder to `iface`.
    /// Pinned: replaces the program of the pinned link atomically if there
    /// is one (adoption: the kernel never stops answering), else attaches
    /// and pins the link.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<()> {
        self.attach_program(iface, mode)?;
        if let Some(pinned) = &self.pinned {
            // The attached program's jump table outlives this agent with
            // the link; the table of the program it replaced goes.
            let path = pinned.dir.join(JUMP_TABLE);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
            self.answer_program
                .pin(&path)
                .with_context(|| format!("pinning the answer jump table at {}", path.display()))?;
        }
        Ok(())
    }

    fn attach_program(&mut self, iface: &str, mode: AttachMode) -> Result<()> {
        if self.attached.is_some() || self.pinned.as_ref().is_some_and(|p| p.link.is_some()) {
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
        if let Some(pinned) = &mut self.pinned {
            let link_path = pinned.dir.join(pin::LINK);
            if !link_path.exists()
                && let Some((old_dir, _)) = &pinned.predecessor
            {
                // An upgrade to another layout: the running link moves to
                // this program (which reads the maps filled already), then
                // is pinned here; the old layout's pins go.
                let old_link = old_dir.join(pin::LINK);
                let link = replace_pinned(program, &old_link)?;
                let pinned_link = link
                    .pin(&link_path)
                    .with_context(|| format!("pinning the XDP link at {}", link_path.display()))?;
                pinned.link = Some(FdLink::from(pinned_link));
                let (old_dir, lock) = pinned.predecessor.take().expect("checked above");
                pin::remove_dir(&old_dir).with_context(|| {
                    format!("removing the old layout's pins {}", old_dir.display())
                })?;
                drop(lock);
                return Ok(());
            }
            if link_path.exists() {
                match replace_pinned(program, &link_path) {
                    Ok(link) => {
                        pinned.link = Some(link);
                        return Ok(());
                    }
                    Err(e) => {
                        // The kernel refuses to update a link whose
                        // interface went away (ENOLINK): a stale pin.
                        log::warn!(
                            "{e:#}: removing the stale pinned link {} and attaching anew",
                            link_path.display()
                        );
                        pinned.adopted = false;
                        std::fs::remove_file(&link_path)
                            .with_context(|| format!("removing {}", link_path.display()))?;
                    }
                }
            }
            let id = program
                .attach(iface, mode)
                .with_context(|| format!("attaching XDP to {iface} in {mode:?} mode"))?;
            let link = FdLink::try_from(program.take_link(id)?).context(
                "the kernel attached XDP without a bpf_link (Linux before 5.9?): it cannot be pinned",
            )?;
            let pinned_link = link
                .pin(&link_path)
                .with_context(|| format!("pinning the XDP link at {}", link_path.display()))?;
            pinned.link = Some(FdLink::from(pinned_link));
            return Ok(());
        }
        let link = program
            .attach(iface, mode)
            .with_context(|| format!("attaching XDP to {iface} in {mode:?} mode"))?;
        self.attached = Some(link);
        Ok(())
    }

    /// Detaches the responder; the kernel stops answering at once. Pinned:
    /// removes the link and every pin of the interface.
    pub fn detach(&mut self) -> Result<()> {
        if let Some(mut pinned) = self.pinned.take() {
            drop(pinned.link.take());
            pin::remove_dir(&pinned.dir)?;
        }
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
        let wire = name_key(name)?;
        self.records
            .insert(&wire, rtype, value)
            .with_context(|| format!("writing the type {rtype} answer of {name}"))
    }

    /// Removes (`name`, `rtype`); queries for it then pass up the stack.
    pub fn remove_answer_set(&mut self, name: &str, rtype: u16) -> Result<()> {
        let wire = name_key(name)?;
        match self.records.remove(&wire, rtype) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the type {rtype} answer of {name}")),
        }
    }

    /// Every (name, type) in the record maps with its value: what an
    /// adopted data plane answers. Keys that do not decode are skipped
    /// (logged).
    pub fn answer_sets(&self) -> Result<Vec<(String, u16, AnswerSet)>> {
        let mut out = Vec::new();
        self.records.read_into(&mut out)?;
        Ok(out)
    }

    /// The zone map (one pre-encoded SOA per zone number).
    pub fn zones_mut(&mut self) -> &mut Array<MapData, ZoneSoa> {
        &mut self.zones
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
        // A pinned map may hold an earlier agent's entries: drop the others.
        let stale: Vec<ServiceKey> = self
            .services
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !addressing.entries.contains_key(key))
            .collect();
        for key in stale {
            match self.services.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing the service address {key:?}"));
                }
            }
        }
        self.host
            .set(0, addressing.host, 0)
            .context("writing the interface's MAC")
    }

    /// Sets how long the program answers after the last heartbeat; written
    /// with the next [`Dataplane::beat`].
    pub fn set_hold(&mut self, hold: std::time::Duration) {
        self.hold = hold;
    }

    /// Writes a heartbeat: now, the hold, and the offset of Unix time. The
    /// program answers from the maps only while the last one is younger
    /// than the hold.
    pub fn beat(&mut self) -> Result<()> {
        self.beat_at(monotonic_ns())
    }

    /// Writes a heartbeat taken at `at_ns` (CLOCK_MONOTONIC), e.g. a stale
    /// one for the packet fixtures.
    pub fn beat_at(&mut self, at_ns: u64) -> Result<()> {
        self.write_beat(at_ns, unix_offset_ns())
    }

    /// Writes a heartbeat of now after which the program's Unix clock
    /// reads `unix_ns` (nanoseconds since the epoch) now: server cookies
    /// stamped at a chosen second, for tests.
    pub fn beat_with_unix_time(&mut self, unix_ns: u64) -> Result<()> {
        let now = monotonic_ns();
        self.write_beat(now, unix_ns.wrapping_sub(now))
    }

    fn write_beat(&mut self, at_ns: u64, unix_offset_ns: u64) -> Result<()> {
        let value = Heartbeat {
            at_ns,
            hold_ns: self.hold.as_nanos().min(u64::MAX as u128) as u64,
            unix_offset_ns,
        };
        self.heartbeat
            .set(0, value, 0)
            .context("writing the heartbeat")
    }

    /// Writes the response rate limit (`None`: off) with a fresh random
    /// seed for the rate table's hash (`RateLimit::seed`), and the exempt
    /// prefixes. Before attaching: the program starts limiting with its
    /// first packet. Written again, the new seed moves every prefix to
    /// another pair of buckets: the rate state starts afresh.
    pub fn set_rate_limit(&mut self, settings: Option<&RateLimitSettings>) -> Result<()> {
        let old: Vec<PrefixKey<[u8; 16]>> = self
            .rate_exempt
            .keys()
            .collect::<Result<_, _>>()
            .context("reading the rate limit's exempt prefixes")?;
        for key in old {
            self.rate_exempt
                .remove(&key)
                .context("removing a rate limit exempt prefix")?;
        }
        let Some(settings) = settings else {
            return self
                .rate_limit
                .set(0, RateLimit::off(), 0)
                .context("writing the rate limit");
        };
        for (bits, addr) in settings.exempt_keys() {
            self.rate_exempt
                .insert(&PrefixKey::new(bits, addr), 1, 0)
                .context("writing a rate limit exempt prefix")?;
        }
        let mut seed = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| anyhow::anyhow!("no random seed for the rate limit's table"))?;
        self.rate_limit
            .set(0, settings.kernel_value(u64::from_ne_bytes(seed)), 0)
            .context("writing the rate limit")
    }

    /// The rate limit the program reads (its seed, e.g., for tests that
    /// place prefixes in the table).
    pub fn rate_limit(&self) -> Result<RateLimit> {
        self.rate_limit.get(&0, 0).context("reading the rate limit")
    }

    /// Writes how the program treats COOKIE options: `Some`: it checks and
    /// issues server cookies with the secrets `cookies` holds now (the
    /// userspace server's); `None`: the server has cookies off, and the
    /// program ignores COOKIE options as it does. Never written (front
    /// mode, where another server answers what the program passes), the
    /// program passes every query with a COOKIE option up. Before
    /// attaching, and again at every rotation ([`CookieWriter`]).
    pub fn set_cookies(&mut self, cookies: Option<&Cookies>) -> Result<()> {
        self.cookies
            .set(0, cookie_value(cookies), 0)
            .context("writing the cookie secrets")
    }

    /// A second handle on the cookie map, for the task that rotates the
    /// secret (it must not wait for whoever owns the data plane).
    pub fn cookie_writer(&self) -> Result<CookieWriter> {
        use aya::maps::IterableMap as _;
        let map = second_handle(self.cookies.map(), "cookie")?;
        let cookies = Array::try_from(aya::maps::Map::Array(map))
            .context("the cookie map is not an array")?;
        Ok(CookieWriter { cookies })
    }

    /// Packet counters summed over all CPUs, in `Counter::ALL` order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        sum_counters(&self.counters)
    }

    /// A second handle on the counter map, for readers on other tasks (a
    /// metrics scrape) that must not wait for whoever owns the data plane.
    pub fn counter_reader(&self) -> Result<CounterReader> {
        use aya::maps::IterableMap as _;
        let map = second_handle(self.counters.map(), "counter")?;
        let counters = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(map))
            .context("the counter map is not a per-CPU array")?;
        Ok(CounterReader { counters })
    }
}

/// Another descriptor of `map`, opened as a map of its own: for tasks that
/// must not wait for whoever owns the data plane.
fn second_handle(map: &MapData, what: &str) -> Result<MapData> {
    use std::os::fd::AsFd as _;
    let fd = map
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .with_context(|| format!("duplicating the {what} map's descriptor"))?;
    MapData::from_fd(fd).with_context(|| format!("opening the {what} map again"))
}

/// The record maps, one per name length bucket (`RECORD_BUCKETS`): a name
/// lives in the map of the shortest bucket it fits. Every change is
/// followed by a new version (`MAP_RECORD_VERSION`), which empties the
/// program's per-CPU answer caches.
struct Records {
    b32: HashMap<MapData, RecordKey<32>, AnswerSet>,
    b64: HashMap<MapData, RecordKey<64>, AnswerSet>,
    b128: HashMap<MapData, RecordKey<128>, AnswerSet>,
    b256: HashMap<MapData, RecordKey<NAME_KEY_LEN>, AnswerSet>,
    version: Array<MapData, u64>,
    /// The last version this agent wrote.
    written: u64,
}

impl Records {
    fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let mut map = |name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("XDP object has no record map {name}"))
        };
        Ok(Self {
            b32: HashMap::try_from(map(MAP_RECORDS[0])?)?,
            b64: HashMap::try_from(map(MAP_RECORDS[1])?)?,
            b128: HashMap::try_from(map(MAP_RECORDS[2])?)?,
            b256: HashMap::try_from(map(MAP_RECORDS[3])?)?,
            version: Array::try_from(map(MAP_RECORD_VERSION)?)?,
            written: 0,
        })
    }

    /// Announces a change: a version no cache slot holds. The monotonic
    /// clock, so that the agent taking over a pinned data plane goes on
    /// past its predecessor's versions without reading them.
    fn announce(&mut self) -> Result<(), MapError> {
        self.written = (self.written + 1).max(monotonic_ns());
        self.version.set(0, self.written, 0)
    }

    /// Writes `value` for the lowercased wire name `wire` and `rtype`, as one
    /// map update, in its bucket's map.
    fn insert(&mut self, wire: &[u8], rtype: u16, value: AnswerSet) -> Result<(), MapError> {
        match record_bucket(wire.len()) {
            0 => self.b32.insert(record_key(wire, rtype), value, 0),
            1 => self.b64.insert(record_key(wire, rtype), value, 0),
            2 => self.b128.insert(record_key(wire, rtype), value, 0),
            _ => self.b256.insert(record_key(wire, rtype), value, 0),
        }?;
        self.announce()
    }

    fn remove(&mut self, wire: &[u8], rtype: u16) -> Result<(), MapError> {
        match record_bucket(wire.len()) {
            0 => self.b32.remove(&record_key(wire, rtype)),
            1 => self.b64.remove(&record_key(wire, rtype)),
            2 => self.b128.remove(&record_key(wire, rtype)),
            _ => self.b256.remove(&record_key(wire, rtype)),
        }?;
        self.announce()
    }

    /// Appends every entry of every bucket to `out`.
    fn read_into(&self, out: &mut Vec<(String, u16, AnswerSet)>) -> Result<()> {
        read_bucket(&self.b32, out)?;
        read_bucket(&self.b64, out)?;
        read_bucket(&self.b128, out)?;
        read_bucket(&self.b256, out)
    }
}

fn read_bucket<const N: usize>(
    map: &HashMap<MapData, RecordKey<N>, AnswerSet>,
    out: &mut Vec<(String, u16, AnswerSet)>,
) -> Result<()> {
    for item in map.iter() {
        let (key, value) = item.context("reading a record map")?;
        match crate::dns::name::text_name(&key.name) {
            Ok(name) => out.push((name, key.qtype, value)),
            Err(e) => log::warn!("record map: skipping a key: {e:#}"),
        }
    }
    Ok(())
}

/// Writes the kernel's cookie secrets apart from the [`Dataplane`].
pub struct CookieWriter {
    cookies: Array<MapData, CookieSecrets>,
}

impl CookieWriter {
    /// As [`Dataplane::set_cookies`] with `Some(cookies)`.
    pub fn write(&mut self, cookies: &Cookies) -> Result<()> {
        self.cookies
            .set(0, cookie_value(Some(cookies)), 0)
            .context("writing the cookie secrets")
    }
}

/// The cookie map's value for the server's `cookies` (`None`: off).
fn cookie_value(cookies: Option<&Cookies>) -> CookieSecrets {
    let Some(cookies) = cookies else {
        return CookieSecrets {
            mode: COOKIES_IGNORE,
            ..CookieSecrets::pass()
        };
    };
    // SipHash's key words: little-endian halves of the 16 bytes.
    let words = |k: &[u8; 16]| {
        [
            u64::from_le_bytes(k[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(k[8..].try_into().expect("8 bytes")),
        ]
    };
    let (current, previous) = cookies.secrets();
    CookieSecrets {
        mode: COOKIES_ANSWER,
        has_previous: u32::from(previous.is_some()),
        current: words(&current),
        previous: previous.as_ref().map_or([0; 2], words),
    }
}

/// Reads the kernel's packet counters apart from the [`Dataplane`] (it
/// keeps the map open while the data plane goes away).
pub struct CounterReader {
    counters: PerCpuArray<MapData, u64>,
}

impl CounterReader {
    /// Packet counters summed over all CPUs, in `Counter::ALL` order.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        sum_counters(&self.counters)
    }
}

fn sum_counters(map: &PerCpuArray<MapData, u64>) -> Result<Vec<(Counter, u64)>> {
    let mut out = Vec::with_capacity(COUNTER_COUNT as usize);
    for counter in Counter::ALL {
        let per_cpu = map.get(&(counter as u32), 0)?;
        out.push((counter, per_cpu.iter().sum()));
    }
    Ok(out)
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

/// Moves the pinned XDP link at `path` to `program` (an atomic program
/// replacement: `bpf_link_update`).
fn replace_pinned(program: &mut Xdp, path: &Path) -> Result<FdLink> {
    let pinned = PinnedLink::from_pin(path)
        .with_context(|| format!("opening the pinned link {}", path.display()))?;
    let link = XdpLink::try_from(FdLink::from(pinned))
        .with_context(|| format!("{} is not an XDP link", path.display()))?;
    let id = program.attach_to_link(link).with_context(|| {
        format!(
            "replacing the program of the pinned link {}",
            path.display()
        )
    })?;
    Ok(FdLink::try_from(program.take_link(id)?)?)
}

/// Removes the data plane of `iface` pinned under `root` (every layout
/// version): the link (the program stops answering) and every pin, with the
/// directories left empty. Fails if an agent runs on it. Returns the
/// directories removed.
pub fn remove_pinned(root: &Path, iface: &str) -> Result<Vec<PathBuf>> {
    let mut dirs = pin::other_layouts(root, iface);
    let current = pin::pin_dir(root, iface);
    if current.is_dir() {
        dirs.push(current);
    }
    for dir in &dirs {
        let lock = Lock::take(dir)?;
        pin::remove_dir(dir)?;
        drop(lock);
    }
    Ok(dirs)
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        // Pinned: the link and the maps stay (the kernel keeps answering).
        if self.pinned.is_some() {
            return;
        }
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
