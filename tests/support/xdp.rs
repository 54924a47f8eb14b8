//! Runs the real XDP program on crafted frames with BPF_PROG_TEST_RUN: no
//! network, no interface, the same object the agent attaches.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use failover_agent::dataplane::{Addressing, Dataplane, Interface};
use failover_agent::dns::rr::RTYPE_A;
use failover_agent::policy::Answer;
use failover_agent::publish::Publisher as _;
use failover_agent::serve::Entry;
use failover_common::{ANSWER_CACHE_KEY_WORDS, Counter, RECORD_BUCKETS, answer_cache_slot};

use crate::packets::{SERVER_IP, SERVER_IP6, SERVER_MAC};

/// The broadcast address of the frames' subnet (198.51.100.0/24).
pub const SERVER_BROADCAST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 255);

/// The interface the crafted frames arrive on, as the agent would read it:
/// not loopback, `SERVER_MAC`, the server's addresses.
pub fn test_interface() -> Interface {
    Interface {
        mac: Some(SERVER_MAC),
        loopback: false,
        addrs: vec![IpAddr::V4(SERVER_IP), IpAddr::V6(SERVER_IP6)],
        broadcasts: vec![SERVER_BROADCAST],
    }
}

/// The DNS service of the crafted frames: port 53 of both server addresses.
pub fn test_services() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((SERVER_IP, 53)),
        SocketAddr::from((SERVER_IP6, 53)),
    ]
}

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub verdict: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Kernel-measured average run time per repetition.
    pub ns_per_run: u128,
}

/// The hold the harness writes: a week, longer than any run.
const HOLD: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The loaded XDP program (the kernel fast path) with its maps.
pub struct XdpProgram {
    pub dataplane: Dataplane,
}

impl XdpProgram {
    /// Loads the embedded object (needs root / CAP_BPF) with the service
    /// addresses and MAC of the crafted frames ([`test_interface`],
    /// [`test_services`]) written, as the agent writes them at start.
    pub fn load() -> Result<Self> {
        let mut dataplane = Dataplane::load()?;
        dataplane.set_addressing(&Addressing::new(&test_interface(), &test_services()))?;
        let mut program = Self { dataplane };
        program.fresh_heartbeat()?;
        Ok(program)
    }

    /// Writes a heartbeat of now with a hold longer than any test run, as
    /// a live agent would: the program answers.
    pub fn fresh_heartbeat(&mut self) -> Result<()> {
        self.dataplane.set_hold(HOLD);
        self.dataplane.beat()
    }

    /// Writes a heartbeat older than the hold, as of a dead agent: the
    /// program passes every query up.
    pub fn stale_heartbeat(&mut self) -> Result<()> {
        self.dataplane.set_hold(HOLD);
        let at = failover_agent::dataplane::monotonic_ns()
            .wrapping_sub(HOLD.as_nanos() as u64 + 1_000_000_000);
        self.dataplane.beat_at(at)
    }

    /// Writes an A answer set (zone 0).
    pub fn set_a(&mut self, name: &str, ttl: u32, addrs: &[Ipv4Addr]) -> Result<()> {
        let addrs: Vec<IpAddr> = addrs.iter().map(|a| IpAddr::V4(*a)).collect();
        let entry = Entry::new(0, ttl, Answer::Addrs(addrs));
        self.dataplane.put(name, failover_common::QTYPE_A, &entry)
    }

    /// Runs the program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Result<Run> {
        self.run_repeat(frame, 1)
    }

    /// Runs the program `repeat` times on `frame` and returns the last result.
    /// The kernel does NOT restore the frame between repetitions: after an
    /// answer (XDP_TX) the next repetition sees the answer, not the query. Use
    /// `repeat > 1` only for frames the program passes unmodified.
    pub fn run_repeat(&self, frame: &[u8], repeat: u32) -> Result<Run> {
        test_run(self.dataplane.program(), frame, repeat)
    }

    /// Counter values summed over CPUs.
    pub fn counter(&self, counter: Counter) -> Result<u64> {
        let all = self.dataplane.counters()?;
        Ok(all
            .into_iter()
            .find(|(c, _)| *c == counter)
            .map(|(_, v)| v)
            .unwrap_or(0))
    }
}

/// The object's pass-through program, loaded on its own: the cost of running
/// an XDP program that does nothing (the benchmark's baseline).
pub struct EmptyProgram {
    ebpf: aya::Ebpf,
}

impl EmptyProgram {
    pub fn load() -> Result<Self> {
        let mut ebpf = aya::Ebpf::load(failover_agent::dataplane::XDP_OBJECT)?;
        let program: &mut Xdp = ebpf
            .program_mut(failover_common::PROGRAM_PASS)
            .context("no pass-through program in the object")?
            .try_into()?;
        program.load()?;
        Ok(Self { ebpf })
    }

    pub fn run(&self, frame: &[u8], repeat: u32) -> Result<Run> {
        let program: &Xdp = self
            .ebpf
            .program(failover_common::PROGRAM_PASS)
            .context("no pass-through program")?
            .try_into()?;
        test_run(program, frame, repeat)
    }
}

fn test_run(program: &Xdp, frame: &[u8], repeat: u32) -> Result<Run> {
    let mut out = vec![0u8; 4096];
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    out.truncate(result.data_size_out as usize);
    Ok(Run {
        verdict: result.return_value,
        frame: out,
        ns_per_run: result.duration.as_nanos(),
    })
}

/// Pins the calling thread to one CPU, so that consecutive runs share the
/// per-CPU round-robin counter.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The program's answer cache key words of an A query for `name`: the
/// lowercased wire name padded to the first record bucket, the type
/// after it (as `failover-ebpf/src/answer_cache.rs` reads the key).
pub fn answer_cache_key(name: &str) -> [u64; ANSWER_CACHE_KEY_WORDS] {
    let mut bytes = [0u8; ANSWER_CACHE_KEY_WORDS * 8];
    let mut at = 0;
    for label in name.trim_end_matches('.').split('.') {
        bytes[at] = label.len() as u8;
        bytes[at + 1..at + 1 + label.len()].copy_from_slice(label.to_ascii_lowercase().as_bytes());
        at += 1 + label.len();
    }
    assert!(
        at < RECORD_BUCKETS[0],
        "{name} is longer than the cache keeps"
    );
    bytes[RECORD_BUCKETS[0]..RECORD_BUCKETS[0] + 2].copy_from_slice(&RTYPE_A.to_ne_bytes());
    std::array::from_fn(|w| u64::from_ne_bytes(bytes[8 * w..8 * w + 8].try_into().unwrap()))
}

/// Two names (`h<N>.example.test.`) whose A queries share a slot of the
/// program's per-CPU answer cache.
pub fn names_sharing_an_answer_cache_slot() -> (String, String) {
    let mut by_slot = std::collections::HashMap::new();
    (0..1000)
        .map(|i| format!("h{i}.example.test."))
        .find_map(|name| {
            let slot = answer_cache_slot(&answer_cache_key(&name));
            by_slot
                .insert(slot, name.clone())
                .map(|other| (other, name))
        })
        .expect("two of 1000 names share one of the slots")
}
