//! Turns a validated query frame into its answer, in place: an answer set of
//! A or AAAA records, or NODATA with the zone's SOA.
//!
//! Order matters here: first everything that can still refuse (sizes, lookups),
//! then `bpf_xdp_adjust_tail`, after which every packet pointer is re-derived
//! and the frame can no longer be passed up the stack.

use aya_ebpf::{
    helpers::generated::{
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    programs::XdpContext,
};
use failover_common::{
    AnswerSet, Counter, EDNS_UDP_SIZE, MAX_ANSWER_ADDRS, QCLASS_IN, QTYPE_A, QTYPE_AAAA, QTYPE_OPT,
    SOA_RR_MAX, ZoneSoa,
};

use crate::{
    checksum,
    maps::{COOKIE_SCRATCH, CookieScratch, FRAME_COPY, FRAME_COPY_LEN},
    packet::*,
    query::Query,
};

/// The OPT record we append: root owner, type, class, TTL, RDLENGTH.
pub const OPT_RR_LEN: usize = 11;
/// The COOKIE option in it, when the query had one: code, length, client
/// cookie (8), server cookie (16).
pub const COOKIE_OPTION_LEN: usize = 28;
/// Compression pointer to the question name at DNS offset 12 (RFC 1035 4.1.4):
/// the client's own spelling of the name is echoed.
const NAME_POINTER: u16 = 0xc00c;
const IP_TTL_DEFAULT: u8 = 64;

/// Why an answer was not sent.
pub enum Refusal {
    /// Pass the frame, untouched, up the stack.
    Pass(Counter),
    /// The frame is already rewritten and cannot be passed: drop it.
    Drop(Counter),
}

type F<const L3: usize, const V6: bool> = Frame<L3, V6>;

/// Writes `count` addresses of `set`, from index `start` on (wrapping), and
/// leaves the frame ready for XDP_TX. Round robin: all of them, or a window of
/// `limit`, from a rotating start; weighted: one, picked per query.
#[inline(always)]
pub fn addresses<const L3: usize, const V6: bool, const ADDR_LEN: usize>(
    ctx: &XdpContext,
    query: &Query,
    set: &AnswerSet,
    start: usize,
    count: usize,
) -> Result<(), Refusal> {
    // Owner pointer, TYPE, CLASS, TTL, RDLENGTH, then the address.
    let rr_len = 12 + ADDR_LEN;
    let rtype = if ADDR_LEN == 4 { QTYPE_A } else { QTYPE_AAAA };
    let stored = set.count as usize;
    if count == 0 || count > stored || stored > MAX_ANSWER_ADDRS || start >= stored {
        return Err(Refusal::Pass(Counter::PassNameNotInMap));
    }
    // A no-op (count <= 16 here), but the verifier tracks ranges, not
    // `count <= stored`: without it a count from `limit` looks unbounded.
    let count = count & (2 * MAX_ANSWER_ADDRS - 1);
    let name_len = query.name_len & 0xff;
    let answers_off = F::<L3, V6>::QNAME + name_len + 4;
    let dns_len = DNS_HEADER_LEN + name_len + 4 + rr_len * count + query.opt_len;
    let (data, data_end, mut sum) = begin::<L3, V6>(ctx, query, dns_len)?;
    sum += dns_header::<L3, V6>(data, query, FLAGS_AA_NOERROR, count as u16, 0);

    // Answers in rotated order; the checksum of the section does not depend on
    // the order, so it is summed alongside.
    let ttl = set.ttl;
    let mut rr_sum: u32 = 0;
    // The addresses, summed in memory order (RFC 1071 2.B): byte-swapped
    // into the big-endian sum below.
    let mut addr_sum: u32 = 0;
    let mut k = 0;
    while k < MAX_ANSWER_ADDRS {
        if k >= count {
            break;
        }
        let mut idx = start + k;
        if idx >= stored {
            idx -= stored;
        }
        let addr = &set.addrs[idx & (MAX_ANSWER_ADDRS - 1)];
        let off = answers_off + k * rr_len;
        if data + off + rr_len > data_end {
            return Err(Refusal::Drop(Counter::DropResizeFailed));
        }
        unsafe {
            let rr = data + off;
            write_be16(rr, NAME_POINTER);
            write_be16(rr + 2, rtype);
            write_be16(rr + 4, QCLASS_IN);
            write_be32(rr + 6, ttl);
            write_be16(rr + 10, ADDR_LEN as u16);
            // Word by word: the address starts 4-aligned in the value.
            let words = addr.as_ptr() as *const u32;
            let mut w = 0;
            while w < ADDR_LEN / 4 {
                let word = *words.add(w);
                write_u32(rr + 12 + 4 * w, word);
                addr_sum += (word & 0xffff) + (word >> 16);
                w += 1;
            }
        }
        k += 1;
    }
    let rr_fixed =
        NAME_POINTER as u32 + rtype as u32 + QCLASS_IN as u32 + (ttl >> 16) + (ttl & 0xffff);
    rr_sum += (rr_fixed + ADDR_LEN as u32) * count as u32;
    rr_sum += checksum::from_memory_order(addr_sum);
    // Answers start at DNS offset 16 + name_len; every RR has an even length.
    let odd = name_len & 1 == 1;
    sum += checksum::at_parity(rr_sum, odd);
    sum += append_opt(data, data_end, query, answers_off + rr_len * count, odd)?;
    finish::<L3, V6>(data, sum);
    Ok(())
}

/// NODATA: NOERROR, no answer, the zone's SOA in the authority section
/// (RFC 2308 section 2.2), its owner a pointer into the question name.
#[inline(always)]
pub fn nodata<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &Query,
    soa: &ZoneSoa,
) -> Result<(), Refusal> {
    let name_len = query.name_len & 0xff;
    let rr_len = soa.rr_len as usize;
    let apex_len = soa.apex_len as usize;
    if rr_len == 0 || rr_len > SOA_RR_MAX || apex_len == 0 || apex_len > name_len {
        return Err(Refusal::Pass(Counter::PassNameNotInMap));
    }
    let auth_off = F::<L3, V6>::QNAME + name_len + 4;
    let dns_len = DNS_HEADER_LEN + name_len + 4 + 2 + rr_len + query.opt_len;
    let (data, data_end, mut sum) = begin::<L3, V6>(ctx, query, dns_len)?;
    sum += dns_header::<L3, V6>(data, query, FLAGS_AA_NOERROR, 0, 1);
    if data + auth_off + 2 > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    // The apex is the last apex_len bytes of the question name.
    let owner = 0xc000 | (DNS_HEADER_LEN + name_len - apex_len) as u16;
    unsafe { write_be16(data + auth_off, owner) };
    let copied = unsafe {
        bpf_xdp_store_bytes(
            ctx.ctx,
            (auth_off + 2) as u32,
            soa.rr.as_ptr() as *mut _,
            rr_len as u32,
        )
    };
    if copied != 0 {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    // Re-derive after the helper wrote to the frame.
    let data = ctx.data();
    let data_end = ctx.data_end();
    if data + F::<L3, V6>::QNAME > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    let odd = name_len & 1 == 1;
    sum += checksum::at_parity(owner as u32 + soa.rr_sum, odd);
    // The SOA may have an odd length: the OPT after it flips parity.
    let opt_odd = odd ^ (rr_len & 1 == 1);
    sum += append_opt(data, data_end, query, auth_off + 2 + rr_len, opt_odd)?;
    finish::<L3, V6>(data, sum);
    Ok(())
}

/// A header-only answer with `flags` (QR, AA, TC, RCODE): the question and,
/// with EDNS, an OPT. Used for SERVFAIL, which carries no AA (RFC 1035: AA
/// speaks of answers), and for rate-limited answers slipped with TC=1.
#[inline(always)]
pub fn header_only<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &Query,
    flags: u16,
) -> Result<(), Refusal> {
    let name_len = query.name_len & 0xff;
    let dns_len = DNS_HEADER_LEN + name_len + 4 + query.opt_len;
    let (data, data_end, mut sum) = begin::<L3, V6>(ctx, query, dns_len)?;
    sum += dns_header::<L3, V6>(data, query, flags, 0, 0);
    let odd = name_len & 1 == 1;
    sum += append_opt(
        data,
        data_end,
        query,
        F::<L3, V6>::QNAME + name_len + 4,
        odd,
    )?;
    finish::<L3, V6>(data, sum);
    Ok(())
}

/// QR and AA set, RCODE NOERROR.
pub const FLAGS_AA_NOERROR: u16 = 0x8400;
/// QR set, RCODE SERVFAIL.
pub const FLAGS_SERVFAIL: u16 = 0x8002;
/// TC: the answer did not fit (or was rate limited); retry over TCP.
pub const FLAG_TC: u16 = 0x0200;

/// Resizes the frame for a DNS message of `dns_len` bytes and turns the
/// Ethernet, IP and UDP headers around. Returns the fresh packet bounds and
/// the checksum sum of the pseudo header and the UDP header.
#[inline(always)]
fn begin<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &Query,
    dns_len: usize,
) -> Result<(usize, usize, u32), Refusal> {
    // Never more than 512 bytes without EDNS or than the advertised size with
    // it; userspace answers with TC=1 instead.
    if dns_len > query.max_udp_size {
        return Err(Refusal::Pass(Counter::PassAnswerTooLarge));
    }
    // Opaque, so LLVM cannot fold it into `x - data_end` (pkt_end arithmetic
    // is refused by the verifier; pkt_end - pkt is allowed).
    let old_len = core::hint::black_box(ctx.data_end() - ctx.data());
    let new_len = F::<L3, V6>::DNS + dns_len;
    let delta = new_len as i32 - old_len as i32;
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        grow_at_head::<L3, V6>(ctx, query, delta)?;
    }
    // Every packet pointer is stale after adjust_tail/head: start over from ctx.
    let data = ctx.data();
    let data_end = ctx.data_end();
    if data + F::<L3, V6>::QNAME > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    let udp_len = (UDP_LEN + dns_len) as u16;
    let alen = F::<L3, V6>::IP_ADDR_LEN;
    let mut sum: u32 = 0;
    unsafe {
        // One 802.1Q tag, if any, sits between and stays as it is.
        swap_bytes(data + ETH_DST, data + ETH_SRC, 6);
        swap_bytes(data + F::<L3, V6>::IP_SRC, data + F::<L3, V6>::IP_DST, alen);
        if V6 {
            write_be16(data + F::<L3, V6>::IP_LEN, udp_len);
            write_u8(data + L3 + IPV6_HOP_LIMIT, IP_TTL_DEFAULT);
        } else {
            // The query's header checksum was verified: updated for the
            // two words that change (RFC 1624, eqn. 3), not summed again.
            let total_len = (20 + udp_len as usize) as u16;
            let ttl_word = data + L3 + IPV4_TTL;
            let old_len = read_be16(data + F::<L3, V6>::IP_LEN);
            let old_ttl = read_be16(ttl_word);
            let new_ttl = (IP_TTL_DEFAULT as u16) << 8 | old_ttl & 0xff;
            let ip_sum = !read_be16(data + L3 + IPV4_CSUM) as u32
                + !old_len as u32
                + total_len as u32
                + !old_ttl as u32
                + new_ttl as u32;
            write_be16(data + F::<L3, V6>::IP_LEN, total_len);
            write_be16(ttl_word, new_ttl);
            write_be16(data + L3 + IPV4_CSUM, checksum::finish(ip_sum));
        }
        // Pseudo header: both addresses (contiguous), protocol, UDP length.
        let mut w = 0;
        while w < 2 * alen {
            sum += read_be16(data + F::<L3, V6>::IP_SRC + w) as u32;
            w += 2;
        }
        sum += IPPROTO_UDP as u32 + udp_len as u32;

        swap_bytes(
            data + F::<L3, V6>::UDP_SPORT,
            data + F::<L3, V6>::UDP_DPORT,
            2,
        );
        write_be16(data + F::<L3, V6>::UDP_LEN, udp_len);
        write_be16(data + F::<L3, V6>::UDP_CSUM, 0);
        sum += read_be16(data + F::<L3, V6>::UDP_SPORT) as u32;
        sum += read_be16(data + F::<L3, V6>::UDP_DPORT) as u32;
        sum += udp_len as u32;
    }
    Ok((data, data_end, sum))
}

/// Makes the frame `delta` bytes longer at the front when there is no room at
/// the tail: saves everything up to the end of the question, moves the start
/// of the frame back and puts it there again; the answer then goes where the
/// old frame's tail was. veth hands XDP the skb's own buffer when it has enough
/// headroom, and such buffers often have too little tailroom for an answer.
#[inline(always)]
fn grow_at_head<const L3: usize, const V6: bool>(
    ctx: &XdpContext,
    query: &Query,
    delta: i32,
) -> Result<(), Refusal> {
    let no_room = Refusal::Pass(Counter::PassNoTailroom);
    if delta <= 0 {
        return Err(no_room);
    }
    let copy = match FRAME_COPY.get_ptr_mut(0) {
        Some(p) => p as *mut u8,
        None => return Err(no_room),
    };
    let keep = F::<L3, V6>::QNAME + (query.name_len & 0xff) + 4;
    if keep > FRAME_COPY_LEN {
        return Err(no_room);
    }
    unsafe {
        if bpf_xdp_load_bytes(ctx.ctx, 0, copy as *mut _, keep as u32) != 0 {
            return Err(no_room);
        }
        if bpf_xdp_adjust_head(ctx.ctx, -delta) != 0 {
            return Err(no_room);
        }
        // From here on the frame is moved: it cannot be passed any more.
        if bpf_xdp_store_bytes(ctx.ctx, 0, copy as *mut _, keep as u32) != 0 {
            return Err(Refusal::Drop(Counter::DropResizeFailed));
        }
    }
    Ok(())
}

/// Writes the DNS header of the answer; returns its checksum sum and that of
/// the (unchanged) question section.
#[inline(always)]
fn dns_header<const L3: usize, const V6: bool>(
    data: usize,
    query: &Query,
    base_flags: u16,
    ancount: u16,
    nscount: u16,
) -> u32 {
    let arcount: u16 = if query.edns { 1 } else { 0 };
    // `base_flags` (QR, AA, RCODE); RD and CD copied (RFC 1035 4.1.1,
    // RFC 4035 3.1.6); RA=0.
    let flags = base_flags | (query.flags & 0x0110);
    unsafe {
        write_be16(data + F::<L3, V6>::DNS_FLAGS, flags);
        write_be16(data + F::<L3, V6>::DNS_ANCOUNT, ancount);
        write_be16(data + F::<L3, V6>::DNS_NSCOUNT, nscount);
        write_be16(data + F::<L3, V6>::DNS_ARCOUNT, arcount);
        read_be16(data + F::<L3, V6>::DNS_ID) as u32
            + flags as u32
            + 1
            + ancount as u32
            + nscount as u32
            + arcount as u32
            + query.question_sum
    }
}

/// A fresh OPT at frame offset `off` when the query had EDNS (the client's own
/// was overwritten), with the COOKIE option of `COOKIE_SCRATCH` when
/// `Query::opt_len` says so. Returns its checksum contribution.
#[inline(always)]
fn append_opt(
    data: usize,
    data_end: usize,
    query: &Query,
    off: usize,
    odd: bool,
) -> Result<u32, Refusal> {
    if !query.edns {
        return Ok(0);
    }
    if data + off + OPT_RR_LEN > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    let do_bit: u8 = if query.dnssec_ok { 0x80 } else { 0 };
    unsafe {
        let opt = data + off;
        write_u8(opt, 0); // root owner
        write_be16(opt + 1, QTYPE_OPT);
        write_be16(opt + 3, EDNS_UDP_SIZE);
        write_u8(opt + 5, 0); // extended RCODE
        write_u8(opt + 6, 0); // version
        write_u8(opt + 7, do_bit);
        write_u8(opt + 8, 0);
        write_be16(opt + 9, 0); // no options
    }
    // Bytes 00 | 00 29 | 04 d0 | 00 00 | DO 00 | 00 00 taken as words from
    // an even start: 0x0000 0x2904 0xd000 0x00DO 0x0000 0x00(pad).
    let mut sum = ((QTYPE_OPT as u32) << 8 | (EDNS_UDP_SIZE as u32 >> 8))
        + ((EDNS_UDP_SIZE as u32 & 0xff) << 8)
        + do_bit as u32;
    if query.opt_len != OPT_RR_LEN + COOKIE_OPTION_LEN {
        return Ok(checksum::at_parity(sum, odd));
    }
    let cookie = match COOKIE_SCRATCH.get(0) {
        Some(c) => c,
        None => return Err(Refusal::Drop(Counter::DropResizeFailed)),
    };
    if data + off + OPT_RR_LEN + COOKIE_OPTION_LEN > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }
    let option = data + off + OPT_RR_LEN;
    unsafe {
        write_u8(data + off + 10, COOKIE_OPTION_LEN as u8);
        // The option is contiguous in the scratch: seven words.
        let words = cookie as *const CookieScratch as *const u32;
        let mut w = 0;
        while w < COOKIE_OPTION_LEN / 4 {
            write_u32(option + 4 * w, *words.add(w));
            w += 1;
        }
    }
    // RDLENGTH's low byte is the high byte of the sixth word; the option
    // starts one byte later than the OPT (11 is odd).
    sum += (COOKIE_OPTION_LEN as u32) << 8;
    Ok(checksum::at_parity(sum, odd) + checksum::at_parity(cookie.sum, !odd))
}

/// Stores the UDP checksum (mandatory over IPv6, always computed here).
#[inline(always)]
fn finish<const L3: usize, const V6: bool>(data: usize, sum: u32) {
    let mut csum = checksum::finish(sum);
    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
    if csum == 0 {
        csum = 0xffff;
    }
    unsafe { write_be16(data + F::<L3, V6>::UDP_CSUM, csum) };
}
