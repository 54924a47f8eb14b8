//! DNS cookies (RFC 7873) with RFC 9018 server cookies, as the agent's
//! server makes them (failover-agent/src/serve/cookies.rs): version 1,
//! three reserved bytes, a 32-bit Unix timestamp, and SipHash-2-4 keyed
//! with the server secret over client cookie | version | reserved |
//! timestamp | client address (4 or 16 bytes).
//!
//! The hash input has a fixed length per address family (20 or 32 bytes),
//! so SipHash runs as straight-line code: 2 or 4 message words, the last
//! block, and the finalisation, each round unrolled. Buffers live in
//! per-CPU scratch (`COOKIE_SCRATCH`), not on the nearly full stack.

use aya_ebpf::programs::XdpContext;
use failover_common::{COOKIES_ANSWER, COOKIES_IGNORE, Counter};

use crate::{
    checksum,
    maps::{COOKIE_SCRATCH, COOKIES, CookieScratch, Scratch},
    packet::{Frame, read_u32},
    query::{COOKIE_COUNT_FIELD, COOKIE_FIELD, OFFSET_MASK, Query},
    response::{COOKIE_OPTION_LEN, OPT_RR_LEN, Refusal},
};

/// Our server cookies are version 1 (RFC 9018 section 4.1).
const VERSION: u8 = 1;
/// A client cookie alone; with a server cookie of 8 to 32 bytes, 16 to 40.
const CLIENT_LEN: usize = 8;
const MIN_WITH_SERVER: usize = 16;
const MAX_WITH_SERVER: usize = 40;
/// Ours: client cookie and a 16-byte server cookie.
const OURS_LEN: usize = 24;
/// A cookie older than an hour, or more than 5 minutes ahead (clock skew
/// among nameservers sharing a secret), is not valid (RFC 9018 4.3).
const LIFETIME_SECS: i32 = 3600;
const AHEAD_SECS: i32 = 300;

/// What the query's COOKIE option comes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// No COOKIE option, or cookies off: the answer has none.
    None,
    /// A client cookie alone, or a server cookie that is not a valid one of
    /// ours: answered as usual with a fresh server cookie (RFC 7873 5.2.3,
    /// and 5.2.4's choice of a normal answer over BADCOOKIE, as userspace).
    Fresh,
    /// A valid server cookie of ours: answered with a fresh one, and
    /// exempt from the rate limit (a spoofed source cannot have one).
    Valid,
}

/// Judges the query's COOKIE option (noted by `query::options` in
/// `scratch.fields`) from the frame's source at `unix_ns` (the heartbeat's
/// Unix time: `bpf_ktime_get_coarse_ns` plus its offset);
/// for `Fresh` and `Valid` leaves the answer's option in `COOKIE_SCRATCH`.
/// Either way leaves the length of the answer's OPT in the slot (read
/// back from map memory it is one unknown scalar to the verifier, which
/// then checks each answer path once, not once per length).
#[inline(always)]
pub fn check<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &mut Query,
    scratch: &mut Scratch,
    unix_ns: u64,
) -> Result<Cookie, Refusal> {
    let noted = unsafe { core::ptr::read_volatile(&scratch.fields[COOKIE_FIELD]) } as usize;
    // Two COOKIE options: odd enough to leave to userspace.
    if unsafe { core::ptr::read_volatile(&scratch.fields[COOKIE_COUNT_FIELD]) } > 1 {
        return Err(Refusal::Pass(Counter::PassCookie));
    }
    let verdict = if noted & OFFSET_MASK == 0 {
        Cookie::None
    } else {
        judge::<L3, V6>(ctx, noted, unix_ns)?
    };
    scratch.fields[COOKIE_FIELD] = match (query.edns, verdict) {
        (false, _) => 0,
        (true, Cookie::None) => OPT_RR_LEN as u32,
        (true, _) => (OPT_RR_LEN + COOKIE_OPTION_LEN) as u32,
    };
    // Read back through the same reference (ordered after the store).
    query.opt_len =
        unsafe { core::ptr::read_volatile(&scratch.fields[COOKIE_FIELD]) } as usize & 0x3f;
    Ok(verdict)
}

#[inline(always)]
fn judge<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    noted: usize,
    unix_ns: u64,
) -> Result<Cookie, Refusal> {
    let cookie_off = noted & OFFSET_MASK;
    let pass = Refusal::Pass(Counter::PassCookie);
    let secrets = match COOKIES.get(0) {
        Some(s) => s,
        None => return Err(pass),
    };
    if secrets.mode == COOKIES_IGNORE {
        return Ok(Cookie::None);
    }
    if secrets.mode != COOKIES_ANSWER {
        return Err(pass);
    }
    let len = (noted >> 16) & 0xffff;
    if len != CLIENT_LEN && !(MIN_WITH_SERVER..=MAX_WITH_SERVER).contains(&len) {
        return Err(pass);
    }
    let scratch: &mut CookieScratch = match COOKIE_SCRATCH.get_ptr_mut(0) {
        Some(p) => unsafe { &mut *p },
        None => return Err(pass),
    };
    // Unix seconds, as server cookies count them (mod 2^32).
    let now = (unix_ns / 1_000_000_000) as u32;
    // The client address, as the hash takes it.
    let data = ctx.data();
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    if data + F::<L3, V6>::IP_SRC + F::<L3, V6>::IP_ADDR_LEN > ctx.data_end() {
        return Err(pass);
    }
    let src = data + F::<L3, V6>::IP_SRC;
    if V6 {
        let mut w = 0;
        while w < 4 {
            scratch.addr[w] = unsafe { read_u32(src + 4 * w) };
            w += 1;
        }
        // Userspace hashes a mapped address as IPv4 (`to_canonical`);
        // such a source is no real IPv6 client anyway.
        if scratch.addr[0] == 0
            && scratch.addr[1] == 0
            && scratch.addr[2] == u32::from_ne_bytes([0, 0, 0xff, 0xff])
        {
            return Err(pass);
        }
    } else {
        scratch.addr = [unsafe { read_u32(src) }, 0, 0, 0];
    }
    // The client cookie and, if ours in length, the server cookie, read
    // straight from the frame (the offset is bounded: a helper call would
    // cost more than the check).
    let value = data + ((cookie_off + 4) & OFFSET_MASK);
    let data_end = ctx.data_end();
    if value + CLIENT_LEN > data_end {
        return Err(pass);
    }
    unsafe { write_u64(scratch.client.as_mut_ptr(), read_u64(value as *const u8)) };
    if len == OURS_LEN {
        if value + OURS_LEN > data_end {
            return Err(pass);
        }
        unsafe {
            let server = (value + CLIENT_LEN) as *const u8;
            write_u64(scratch.server.as_mut_ptr(), read_u64(server));
            write_u64(scratch.server.as_mut_ptr().add(8), read_u64(server.add(8)));
        }
    }
    // Words as SipHash reads its input: little-endian (BPF's own order).
    let client = unsafe { read_u64(scratch.client.as_ptr()) };
    let mut verdict = Cookie::Fresh;
    if len == OURS_LEN && scratch.server[0] == VERSION {
        // Version, reserved bytes and timestamp as sent: hashed as such.
        let header = unsafe { read_u64(scratch.server.as_ptr()) };
        let stamped = ((header >> 32) as u32).swap_bytes();
        let age = now.wrapping_sub(stamped) as i32;
        if (-AHEAD_SECS..=LIFETIME_SECS).contains(&age) {
            let sent = unsafe { read_u64(scratch.server.as_ptr().add(8)) };
            let addr = &scratch.addr;
            if hash::<V6>(&secrets.current, client, header, addr) == sent
                || (secrets.has_previous != 0
                    && hash::<V6>(&secrets.previous, client, header, addr) == sent)
            {
                verdict = Cookie::Valid;
            }
        }
    }
    // The answer's option: code 10, length 24, the client cookie (in
    // place already), version 1, reserved 0, now, and the hash.
    scratch.head = [0, 10, 0, OURS_LEN as u8];
    let header = VERSION as u64 | (now.swap_bytes() as u64) << 32;
    let mac = hash::<V6>(&secrets.current, client, header, &scratch.addr);
    unsafe {
        write_u64(scratch.server.as_mut_ptr(), header);
        write_u64(scratch.server.as_mut_ptr().add(8), mac);
    }
    // Its checksum contribution as 16-bit words from an even start: the
    // cookies summed as they lie in memory, byte-swapped (RFC 1071 2.B).
    let cookies = checksum::fold_wide(client) as u32
        + checksum::fold_wide(header) as u32
        + checksum::fold_wide(mac) as u32;
    let sum = 10 + OURS_LEN as u32 + checksum::from_memory_order(cookies);
    scratch.sum = checksum::fold(sum) as u32;
    Ok(verdict)
}

// Eight bytes as one load or store although the address may not be
// 8-aligned (see packet.rs: split into bytes otherwise; the kernel allows
// it for map values where unaligned access is efficient).
#[inline(always)]
unsafe fn read_u64(p: *const u8) -> u64 {
    u64::from_le(unsafe { *(p as *const u64) })
}

#[inline(always)]
unsafe fn write_u64(p: *mut u8, v: u64) {
    unsafe { *(p as *mut u64) = v.to_le() }
}

/// SipHash-2-4 of client cookie | `header` (version, reserved, timestamp:
/// the message's second word) | address under `key` (k0, k1).
#[inline(always)]
fn hash<const V6: bool>(key: &[u64; 2], client: u64, header: u64, addr: &[u32; 4]) -> u64 {
    let mut v = Sip {
        v0: key[0] ^ 0x736f6d6570736575,
        v1: key[1] ^ 0x646f72616e646f6d,
        v2: key[0] ^ 0x6c7967656e657261,
        v3: key[1] ^ 0x7465646279746573,
    };
    v.compress(client);
    v.compress(header);
    // The address words as read (native = little-endian on BPF): byte
    // order as on the wire.
    let last = if V6 {
        v.compress(addr[0] as u64 | (addr[1] as u64) << 32);
        v.compress(addr[2] as u64 | (addr[3] as u64) << 32);
        32u64 << 56
    } else {
        20u64 << 56 | addr[0] as u64
    };
    v.compress(last);
    v.v2 ^= 0xff;
    v.round();
    v.round();
    v.round();
    v.round();
    v.v0 ^ v.v1 ^ v.v2 ^ v.v3
}

/// SipHash's state.
struct Sip {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl Sip {
    /// One message word: two rounds.
    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }
}
