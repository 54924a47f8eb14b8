//! Validation of an incoming frame as a plain DNS query over UDP port 53.
//!
//! Anything not fully understood is rejected with the counter that says why; the
//! caller then passes the frame up the stack untouched (XDP_PASS), where a full
//! DNS server can answer it properly.

use failover_common::{
    Counter, MAX_NAME_WIRE_LEN, PLAIN_UDP_SIZE, QCLASS_IN, QTYPE_A, QTYPE_AAAA, QTYPE_HTTPS,
    QTYPE_OPT, RECORD_BUCKETS,
};

use crate::{checksum, maps::Scratch, packet::*};

/// The most EDNS options we walk before giving up on a query (unusual, so pass it).
const MAX_EDNS_OPTIONS: usize = 8;
/// EDNS option code of Client Subnet (RFC 7871).
const EDNS_OPTION_CLIENT_SUBNET: u16 = 8;
/// EDNS option code of COOKIE (RFC 7873).
const EDNS_OPTION_COOKIE: u16 = 10;
/// Bound for frame offsets; XDP frames here are single buffers of at most a page.
pub const OFFSET_MASK: usize = 0xfff;
/// `Scratch::fields` slot of the first COOKIE option: its frame offset
/// (0: none) and its length << 16; once judged (cookie.rs), the length of
/// the answer's OPT (0, 11, or 39 with the COOKIE option). Kept out of
/// `Query`: the stack has no room left.
pub const COOKIE_FIELD: usize = 7;
/// `Scratch::fields` slot of the number of COOKIE options.
pub const COOKIE_COUNT_FIELD: usize = 8;
/// `Scratch::fields` slot of where the OPT's options start and (<< 16)
/// the DNS message ends; 0 without an OPT.
const OPTIONS_FIELD: usize = 9;
/// `Scratch::fields` slot of a weighted set's pick (a verifier barrier,
/// select.rs); apart from `COOKIE_FIELD`, which the answer's OPT length
/// is read from after the pick.
pub const PICK_FIELD: usize = 10;
/// `Scratch::fields` slot of whether the record lookup found the name (a
/// verifier barrier, main.rs).
pub const FOUND_FIELD: usize = 11;

/// What the answer needs to know about a validated query.
pub struct Query {
    /// Wire length of the question name, root label included (1..=255).
    pub name_len: usize,
    pub qtype: u16,
    /// Checksum contribution of the whole question section (name, type, class),
    /// as positioned in the message.
    pub question_sum: u32,
    /// The query's DNS flags word (RD and CD are copied into the answer).
    pub flags: u16,
    /// The query carried an EDNS OPT record.
    pub edns: bool,
    /// DO bit of the query's OPT (RFC 3225: copied into the answer's OPT).
    pub dnssec_ok: bool,
    /// Largest UDP message the client accepts.
    pub max_udp_size: usize,
    /// Length of the answer's OPT: 0 without EDNS, the bare OPT, or with a
    /// COOKIE option (set by `cookie::check`).
    pub opt_len: usize,
}

/// Leaves the query's fields in the per-CPU scratch, for the answer program
/// the tail call goes on in ([`read_back`]). Also a verifier barrier:
/// validation ends on many paths on which the verifier knows a field
/// exactly (EDNS or not, DO or not, which type...); values read back from
/// map memory are unknown scalars, so the answer path is checked once.
#[inline(always)]
pub fn store(query: Query, scratch: &mut Scratch) {
    let f = &mut scratch.fields;
    f[0] = query.name_len as u32;
    f[1] = query.qtype as u32;
    f[2] = query.question_sum;
    f[3] = query.flags as u32;
    f[4] = query.edns as u32;
    f[5] = query.dnssec_ok as u32;
    f[6] = query.max_udp_size as u32;
}

/// The query `store` left in `scratch`, in the answer program: the tail
/// call's carried state, and the barrier's second half.
#[inline(always)]
pub fn read_back(scratch: &Scratch) -> Query {
    let read = |i: usize| unsafe { core::ptr::read_volatile(&scratch.fields[i]) };
    Query {
        name_len: read(0) as usize & 0xff,
        qtype: read(1) as u16,
        question_sum: read(2),
        flags: read(3) as u16,
        edns: read(4) != 0,
        dnssec_ok: read(5) != 0,
        max_udp_size: read(6) as usize & 0xffff,
        opt_len: 0,
    }
}

#[inline(always)]
fn fits(data: usize, data_end: usize, off: usize, len: usize) -> bool {
    data + off + len <= data_end
}

/// Lowercase ASCII, four bytes at once; length bytes (at most 63) are
/// left as they are. Per byte: bit 7 of `b + (0x80 - 'A')` says `b >= 'A'`,
/// of `b + (0x80 - 'Z' - 1)` says `b > 'Z'`, both on the low seven bits
/// (no carry crosses a byte), and only for bytes below 0x80.
#[inline(always)]
fn ascii_lower_word(w: u32) -> u32 {
    const EACH: u32 = 0x0101_0101;
    let low = w & (0x7f * EACH);
    let from_a = low + (0x80 - b'A' as u32) * EACH;
    let past_z = low + (0x80 - b'Z' as u32 - 1) * EACH;
    let upper = from_a & !past_z & !w & (0x80 * EACH);
    w | upper >> 2
}

/// Sorts out traffic for other ports first, before any costlier check: most
/// UDP a busy host sees is not DNS.
#[inline(always)]
fn udp_to_port_53<const L3: usize, const V6: bool>(
    data: usize,
    data_end: usize,
) -> Result<(), Counter> {
    if !fits(data, data_end, 0, Frame::<L3, V6>::UDP_DPORT + 2) {
        return Err(Counter::PassMalformed);
    }
    if unsafe { read_be16(data + Frame::<L3, V6>::UDP_DPORT) } != 53 {
        return Err(Counter::PassNotDnsTransport);
    }
    Ok(())
}

/// Validates the network and transport headers; returns the offset one past
/// the DNS message (the IP length decides: Ethernet padding may follow).
#[inline(always)]
fn validate_transport<const L3: usize, const V6: bool>(
    data: usize,
    data_end: usize,
    on_loopback: bool,
) -> Result<usize, Counter> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    if !fits(data, data_end, 0, F::<L3, V6>::L4) {
        return Err(Counter::PassMalformed);
    }
    // Opaque to the optimiser: otherwise LLVM sees that lengths checked against
    // frame_len imply `data + off + n <= data_end` and drops the later bounds
    // checks, which are the ones the verifier needs.
    let frame_len = core::hint::black_box(data_end - data);
    let msg_end = if V6 {
        if unsafe { read_u8(data + L3) } >> 4 != 6 {
            return Err(Counter::PassMalformed);
        }
        match unsafe { read_u8(data + L3 + IPV6_NEXT_HEADER) } {
            IPPROTO_UDP => {}
            // Hop-by-hop, routing, fragment, ESP, AH, destination options,
            // mobility, HIP, shim6: extension headers are left to the stack.
            0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => {
                return Err(Counter::PassIpUnsupported);
            }
            _ => return Err(Counter::PassNotDnsTransport),
        }
        udp_to_port_53::<L3, V6>(data, data_end)?;
        // Multicast destinations (ff00::/8) are not answered from the fast path.
        if unsafe { read_u8(data + F::<L3, V6>::IP_DST) } == 0xff {
            return Err(Counter::PassNotDnsTransport);
        }
        // Sources the stack drops as martian are not answered either (an
        // answer would go to a spoofed or impossible address): multicast,
        // unspecified (::), and loopback (::1) anywhere but on lo.
        let src = data + F::<L3, V6>::IP_SRC;
        if unsafe { read_u8(src) } == 0xff {
            return Err(Counter::PassNotDnsTransport);
        }
        let mut high: u8 = 0;
        let mut w = 0;
        while w < 15 {
            high |= unsafe { read_u8(src + w) };
            w += 1;
        }
        let last = unsafe { read_u8(src + 15) };
        if high == 0 && (last == 0 || (last == 1 && !on_loopback)) {
            return Err(Counter::PassNotDnsTransport);
        }
        let payload_len = unsafe { read_be16(data + F::<L3, V6>::IP_LEN) } as usize;
        if F::<L3, V6>::L4 + payload_len > frame_len {
            return Err(Counter::PassMalformed);
        }
        F::<L3, V6>::L4 + payload_len
    } else {
        let ver_ihl = unsafe { read_u8(data + L3 + IPV4_VER_IHL) };
        if ver_ihl >> 4 != 4 {
            return Err(Counter::PassMalformed);
        }
        if unsafe { read_u8(data + L3 + IPV4_PROTO) } != IPPROTO_UDP {
            return Err(Counter::PassNotDnsTransport);
        }
        match ver_ihl & 0x0f {
            5 => {}
            ihl if ihl > 5 => return Err(Counter::PassIpUnsupported),
            _ => return Err(Counter::PassMalformed),
        }
        // More-fragments flag or a fragment offset: only a whole datagram is a query.
        if unsafe { read_be16(data + L3 + IPV4_FRAG) } & 0x3fff != 0 {
            return Err(Counter::PassIpUnsupported);
        }
        udp_to_port_53::<L3, V6>(data, data_end)?;
        // Multicast and broadcast (224.0.0.0 and up) are not answered here.
        if unsafe { read_u8(data + F::<L3, V6>::IP_DST) } >= 224 {
            return Err(Counter::PassNotDnsTransport);
        }
        // Nor martian sources: 0.0.0.0/8, multicast, reserved and broadcast,
        // and 127.0.0.0/8 anywhere but on lo.
        let src = unsafe { read_u8(data + F::<L3, V6>::IP_SRC) };
        if src == 0 || src >= 224 || (src == 127 && !on_loopback) {
            return Err(Counter::PassNotDnsTransport);
        }
        // A damaged header is the stack's to drop, not ours to answer.
        // Summed as five words in memory order: all ones either way.
        let mut wide: u64 = 0;
        let mut w = 0;
        while w < 20 {
            wide += unsafe { read_u32(data + L3 + w) } as u64;
            w += 4;
        }
        if checksum::fold_wide(wide) != 0xffff {
            return Err(Counter::PassMalformed);
        }
        let total_len = unsafe { read_be16(data + F::<L3, V6>::IP_LEN) } as usize;
        if total_len < F::<L3, V6>::IP_HEADER_LEN || L3 + total_len > frame_len {
            return Err(Counter::PassMalformed);
        }
        L3 + total_len
    };
    if !fits(data, data_end, 0, F::<L3, V6>::DNS) || msg_end < F::<L3, V6>::DNS {
        return Err(Counter::PassMalformed);
    }
    // Source port 0 cannot be answered (the stack drops such datagrams).
    if unsafe { read_be16(data + F::<L3, V6>::UDP_SPORT) } == 0 {
        return Err(Counter::PassNotDnsTransport);
    }
    // UDP must claim exactly the rest of the IP datagram.
    if unsafe { read_be16(data + F::<L3, V6>::UDP_LEN) } as usize != msg_end - F::<L3, V6>::L4 {
        return Err(Counter::PassMalformed);
    }
    if msg_end < F::<L3, V6>::QNAME {
        return Err(Counter::PassMalformed);
    }
    crate::host::addressed_to_us::<L3, V6>(data)?;
    Ok(msg_end)
}

/// Zeroes what of `scratch` this query's lookup reads: the fields the
/// answer program adds to, and the key as far as the bucket of the longest
/// name the message has room for (its N + 2 bytes; bytes after the name
/// must be zero for the hash lookup to match the agent's key). Most names
/// are short: 5 words of the key instead of all 33.
#[inline(always)]
fn zero_scratch<const L3: usize, const V6: bool>(msg_end: usize, scratch: &mut Scratch) {
    const FIELDS_WORD: usize = core::mem::offset_of!(Scratch, fields) / 8;
    const WORDS: usize = core::mem::size_of::<Scratch>() / 8;
    const fn key_words(bucket: usize) -> usize {
        (RECORD_BUCKETS[bucket] + 2).div_ceil(8)
    }
    let words = scratch as *mut Scratch as *mut u64;
    // Volatile: plain stores in a loop become a call to the BPF `memset`,
    // which stores byte by byte (five instructions a byte).
    let zero = |from: usize, to: usize| {
        let mut w = from;
        while w < to {
            unsafe { words.add(w).write_volatile(0) };
            w += 1;
        }
    };
    zero(FIELDS_WORD, WORDS);
    // Read back through the scratch: a fresh value, so that these branches
    // leave msg_end's bounds, and the name loop's states, alone.
    scratch.name_len = msg_end.saturating_sub(Frame::<L3, V6>::QNAME + 4) as u32;
    let room = unsafe { core::ptr::read_volatile(&scratch.name_len) } as usize;
    zero(0, key_words(0));
    if room > RECORD_BUCKETS[0] {
        zero(key_words(0), key_words(1));
    }
    if room > RECORD_BUCKETS[1] {
        zero(key_words(1), key_words(2));
    }
    if room > RECORD_BUCKETS[2] {
        zero(key_words(2), key_words(3));
    }
}

/// Validates the frame in `[data, data_end)` and fills `scratch.key` with the
/// lowercased name, zero-padded. Returns the counter to bump on rejection.
#[inline(always)]
pub fn validate<const L3: usize, const V6: bool>(
    data: usize,
    data_end: usize,
    on_loopback: bool,
    scratch: &mut Scratch,
) -> Result<Query, Counter> {
    type F<const L3: usize, const V6: bool> = Frame<L3, V6>;
    // Opaque to the optimiser: otherwise LLVM sees that `off + n <= msg_end`
    // implies `data + off + n <= data_end` and drops the second check, which
    // is the one the verifier needs.
    let msg_end = core::hint::black_box(validate_transport::<L3, V6>(data, data_end, on_loopback)?);
    if !fits(data, data_end, 0, F::<L3, V6>::QNAME) {
        return Err(Counter::PassMalformed);
    }

    // A plain query: QR=0, opcode QUERY, not truncated, one question, no
    // answers or authority, at most one additional record (the OPT).
    let flags = unsafe { read_be16(data + F::<L3, V6>::DNS_FLAGS) };
    if flags & 0xfa00 != 0 {
        // 0x8000 QR, 0x7800 opcode, 0x0200 TC
        return Err(Counter::PassNotPlainQuery);
    }
    let arcount = unsafe { read_be16(data + F::<L3, V6>::DNS_ARCOUNT) };
    if unsafe { read_be16(data + F::<L3, V6>::DNS_QDCOUNT) } != 1
        || unsafe { read_be16(data + F::<L3, V6>::DNS_ANCOUNT) } != 0
        || unsafe { read_be16(data + F::<L3, V6>::DNS_NSCOUNT) } != 0
        || arcount > 1
    {
        return Err(Counter::PassNotPlainQuery);
    }

    zero_scratch::<L3, V6>(msg_end, scratch);

    // The name: uncompressed labels of 1..=63 bytes, 255 bytes at most in all.
    // Copied lowercased into the zeroed key so 0x20-randomised names match.
    // Four bytes a step, read as one word: a whole name is followed by its
    // type and class, so the word holding its last byte is still in the
    // message. Each word is lowercased at once (length bytes, at most 63,
    // are left alone), stored, and summed; only the length bytes are
    // looked at one by one (most words hold none or one). Where the
    // message ends is checked once, after.
    let qname = F::<L3, V6>::QNAME;
    let mut memory_sum: u32 = 0;
    // Where the next length byte is.
    let mut next: usize = 0;
    let mut name_len: usize = 0;
    let mut i: usize = 0;
    while i <= MAX_NAME_WIRE_LEN {
        if !fits(data, data_end, qname + i, 4) {
            return Err(Counter::PassMalformed);
        }
        let word = unsafe { read_u32(data + qname + i) };
        // How many of the word's bytes are the name's.
        let mut used = 4;
        let mut k = 0;
        while k < 4 {
            if next >= i + 4 {
                break;
            }
            let at = (next - i) & 3;
            let b = (word >> (8 * at)) as u8;
            if b == 0 {
                name_len = next + 1;
                used = at + 1;
                break;
            }
            // 0x40..=0xff: compression pointers (0xc0) and obsolete label types.
            if b > 63 {
                return Err(Counter::PassMalformed);
            }
            next += b as usize + 1;
            k += 1;
        }
        // Bytes past the name (the type's) stay out of key and sum.
        let keep = if used == 4 {
            u32::MAX
        } else {
            (1u32 << (8 * used)) - 1
        };
        let word = word & keep;
        unsafe {
            write_u32(
                scratch.key.as_mut_ptr().add(i) as usize,
                ascii_lower_word(word),
            )
        };
        memory_sum += (word & 0xffff) + (word >> 16);
        if name_len != 0 {
            break;
        }
        // Verifier barrier: one bounded scalar, so that each step is
        // checked once, not once per number of length bytes before it.
        scratch.name_len = next as u32;
        next = unsafe { core::ptr::read_volatile(&scratch.name_len) } as usize & 0x1ff;
        i += 4;
    }
    // The name's bytes summed as words from an even start (it starts at
    // DNS offset 12), summed in memory order: byte-swapped (RFC 1071 2.B).
    let name_sum = checksum::from_memory_order(memory_sum);
    // A 256th byte ending the name makes it one too long.
    if name_len == 0 || name_len > MAX_NAME_WIRE_LEN {
        return Err(Counter::PassMalformed);
    }
    // Verifier barrier: a value read back from map memory is one bounded scalar,
    // so everything below is verified once instead of once per name length.
    scratch.name_len = name_len as u32;
    let name_len = unsafe { core::ptr::read_volatile(&scratch.name_len) } as usize & 0xff;

    let qtype_off = qname + name_len;
    if qtype_off + 4 > msg_end || !fits(data, data_end, qtype_off, 4) {
        return Err(Counter::PassMalformed);
    }
    let qtype = unsafe { read_be16(data + qtype_off) };
    let qclass = unsafe { read_be16(data + qtype_off + 2) };
    if qclass != QCLASS_IN || !(qtype == QTYPE_A || qtype == QTYPE_AAAA || qtype == QTYPE_HTTPS) {
        return Err(Counter::PassUnsupportedType);
    }
    let question_sum = checksum::fold(name_sum) as u32
        + checksum::at_parity(qtype as u32 + qclass as u32, name_len & 1 == 1);

    // The additional section: nothing, or exactly one well-formed OPT (RFC 6891).
    let opt_off = qtype_off + 4;
    let mut query = Query {
        name_len,
        qtype,
        question_sum,
        flags,
        edns: false,
        dnssec_ok: false,
        max_udp_size: PLAIN_UDP_SIZE as usize,
        opt_len: 0,
    };
    if arcount == 0 {
        if opt_off != msg_end {
            return Err(Counter::PassMalformed);
        }
    } else {
        if opt_off + 11 > msg_end || !fits(data, data_end, opt_off, 11) {
            return Err(Counter::PassMalformed);
        }
        // A non-root owner or another type: TSIG, SIG(0)... userspace's business.
        if unsafe { read_u8(data + opt_off) } != 0
            || unsafe { read_be16(data + opt_off + 1) } != QTYPE_OPT
        {
            return Err(Counter::PassNotPlainQuery);
        }
        // EDNS version > 0 must get BADVERS, which userspace answers.
        if unsafe { read_u8(data + opt_off + 6) } != 0 {
            return Err(Counter::PassNotPlainQuery);
        }
        let udp_size = unsafe { read_be16(data + opt_off + 3) } as usize;
        let opt_flags = unsafe { read_be16(data + opt_off + 7) };
        let rdlen = unsafe { read_be16(data + opt_off + 9) } as usize;
        if opt_off + 11 + rdlen != msg_end {
            return Err(Counter::PassMalformed);
        }
        // The options are walked in the answer program (`options`): the
        // parser's verifier budget is spent on the name.
        scratch.fields[OPTIONS_FIELD] = ((opt_off + 11) | msg_end << 16) as u32;
        query.edns = true;
        query.dnssec_ok = opt_flags & 0x8000 != 0;
        // RFC 6891 6.2.5: values below 512 are treated as 512.
        if udp_size > query.max_udp_size {
            query.max_udp_size = udp_size;
        }
    }
    Ok(query)
}

/// Walks the OPT's options of the query `validate` left in `scratch`:
/// well formed, no Client Subnet, and notes the COOKIE option(s). In the
/// answer program, before anything is written.
#[inline(always)]
pub fn options(data: usize, data_end: usize, scratch: &mut Scratch) -> Result<(), Counter> {
    let noted = unsafe { core::ptr::read_volatile(&scratch.fields[OPTIONS_FIELD]) } as usize;
    if noted == 0 {
        return Ok(());
    }
    let msg_end = (noted >> 16) & OFFSET_MASK;
    let mut off = noted & OFFSET_MASK;
    let mut n = 0;
    while n < MAX_EDNS_OPTIONS {
        if off == msg_end {
            break;
        }
        let at = off & OFFSET_MASK;
        if at + 4 > msg_end || !fits(data, data_end, at, 4) {
            return Err(Counter::PassMalformed);
        }
        // EDNS Client Subnet: userspace validates it (RFC 7871 section 6:
        // FORMERR when malformed); the kernel does not parse it, so it
        // leaves such queries to userspace.
        let code = unsafe { read_be16(data + at) };
        if code == EDNS_OPTION_CLIENT_SUBNET {
            return Err(Counter::PassNotPlainQuery);
        }
        let len = unsafe { read_be16(data + at + 2) } as usize;
        off = at + 4 + len;
        if off > msg_end {
            return Err(Counter::PassMalformed);
        }
        if code == EDNS_OPTION_COOKIE {
            // The last one's place, and how many: two are odd enough to
            // leave to userspace (cookie.rs checks). No branch here: one
            // would split the verifier's states for the rest of the loop.
            scratch.fields[COOKIE_COUNT_FIELD] += 1;
            scratch.fields[COOKIE_FIELD] = (at | len << 16) as u32;
        }
        n += 1;
    }
    if off != msg_end {
        return Err(Counter::PassNotPlainQuery);
    }
    Ok(())
}
