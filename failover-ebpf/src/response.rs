//! Turns a validated query frame into its answer, in place.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_tail, programs::XdpContext};
use failover_common::{AnswerSet, Counter, EDNS_UDP_SIZE, MAX_ANSWER_ADDRS, QTYPE_OPT};

use crate::{checksum, packet::*, query::Query};

/// One A record in the answer section: name pointer, type, class, TTL,
/// RDLENGTH, address.
const A_RR_LEN: usize = 16;
/// The OPT record we append: root owner, type, class, TTL, RDLENGTH.
const OPT_RR_LEN: usize = 11;
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

/// Writes the answer for `query` from `answers`, starting the round robin at
/// `rotation`, and leaves the frame ready for XDP_TX.
#[inline(always)]
pub fn answer(
    ctx: &XdpContext,
    query: &Query,
    answers: &AnswerSet,
    rotation: u32,
) -> Result<(), Refusal> {
    let count = answers.count as usize;
    if count == 0 || count > MAX_ANSWER_ADDRS {
        return Err(Refusal::Pass(Counter::PassNameNotInMap));
    }
    let name_len = query.name_len & 0xff;
    let opt_len = if query.edns { OPT_RR_LEN } else { 0 };
    let answers_off = QNAME_OFF + name_len + 4;
    let dns_len = DNS_HEADER_LEN + name_len + 4 + A_RR_LEN * count + opt_len;
    // Never more than 512 bytes without EDNS or than the advertised size with it;
    // userspace answers with TC=1 instead.
    if dns_len > query.max_udp_size {
        return Err(Refusal::Pass(Counter::PassAnswerTooLarge));
    }

    // Opaque, so LLVM cannot fold it into `x - data_end` (pkt_end arithmetic
    // is refused by the verifier; pkt_end - pkt is allowed).
    let old_len = core::hint::black_box(ctx.data_end() - ctx.data());
    let new_len = DNS_OFF + dns_len;
    let delta = new_len as i32 - old_len as i32;
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Err(Refusal::Pass(Counter::PassNoTailroom));
    }
    // Every packet pointer is stale after adjust_tail: start over from ctx.
    let data = ctx.data();
    let data_end = ctx.data_end();
    if data + QNAME_OFF > data_end {
        return Err(Refusal::Drop(Counter::DropResizeFailed));
    }

    let ip_len = (IPV4_LEN + UDP_LEN + dns_len) as u16;
    let udp_len = (UDP_LEN + dns_len) as u16;
    let ancount = count as u16;
    let arcount: u16 = if query.edns { 1 } else { 0 };
    // QR, AA; RD and CD copied (RFC 1035 4.1.1, RFC 4035 3.1.6); RA=0, NOERROR.
    let flags = 0x8400 | (query.flags & 0x0110);
    let ttl = answers.ttl;

    unsafe {
        swap_bytes::<6>(data + ETH_DST, data + ETH_SRC);
        swap_bytes::<4>(data + IP_SRC, data + IP_DST);
        write_be16(data + IP_TOT_LEN, ip_len);
        write_u8(data + IP_TTL, IP_TTL_DEFAULT);
        write_be16(data + IP_CSUM, 0);
        let mut ip_sum: u32 = 0;
        let mut w = 0;
        while w < IPV4_LEN {
            ip_sum += read_be16(data + ETH_LEN + w) as u32;
            w += 2;
        }
        write_be16(data + IP_CSUM, checksum::finish(ip_sum));

        swap_bytes::<2>(data + UDP_SPORT, data + UDP_DPORT);
        write_be16(data + UDP_LEN_OFF, udp_len);
        write_be16(data + UDP_CSUM, 0);

        write_be16(data + DNS_FLAGS, flags);
        write_be16(data + DNS_ANCOUNT, ancount);
        write_be16(data + DNS_NSCOUNT, 0);
        write_be16(data + DNS_ARCOUNT, arcount);
    }

    // Answers in rotated order; the checksum of the section does not depend on
    // the order, so it is summed alongside.
    let start = rotation as usize % count;
    let mut rr_sum: u32 = 0;
    let mut k = 0;
    while k < MAX_ANSWER_ADDRS {
        if k >= count {
            break;
        }
        let mut idx = start + k;
        if idx >= count {
            idx -= count;
        }
        let addr = answers.addrs[idx & (MAX_ANSWER_ADDRS - 1)];
        let off = answers_off + k * A_RR_LEN;
        if data + off + A_RR_LEN > data_end {
            return Err(Refusal::Drop(Counter::DropResizeFailed));
        }
        unsafe {
            let rr = data + off;
            write_be16(rr, NAME_POINTER);
            write_be16(rr + 2, failover_common::QTYPE_A);
            write_be16(rr + 4, failover_common::QCLASS_IN);
            write_be32(rr + 6, ttl);
            write_be16(rr + 10, 4);
            write_u8(rr + 12, addr[0]);
            write_u8(rr + 13, addr[1]);
            write_u8(rr + 14, addr[2]);
            write_u8(rr + 15, addr[3]);
        }
        rr_sum += checksum::sum_addr(addr);
        k += 1;
    }
    let rr_fixed = NAME_POINTER as u32 + 1 + 1 + (ttl >> 16) + (ttl & 0xffff) + 4;
    rr_sum += rr_fixed * count as u32;

    // A fresh OPT: the client's own was overwritten by the answers.
    let mut opt_sum: u32 = 0;
    if query.edns {
        let off = answers_off + A_RR_LEN * count;
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
        opt_sum = ((QTYPE_OPT as u32) << 8 | (EDNS_UDP_SIZE as u32 >> 8))
            + ((EDNS_UDP_SIZE as u32 & 0xff) << 8)
            + do_bit as u32;
    }

    // UDP checksum over pseudo header, UDP header and the whole DNS message.
    unsafe {
        let src = [
            read_u8(data + IP_SRC),
            read_u8(data + IP_SRC + 1),
            read_u8(data + IP_SRC + 2),
            read_u8(data + IP_SRC + 3),
        ];
        let dst = [
            read_u8(data + IP_DST),
            read_u8(data + IP_DST + 1),
            read_u8(data + IP_DST + 2),
            read_u8(data + IP_DST + 3),
        ];
        let odd = name_len & 1 == 1;
        let mut sum = checksum::sum_addr(src) + checksum::sum_addr(dst) + 17 + udp_len as u32;
        sum += read_be16(data + UDP_SPORT) as u32 + read_be16(data + UDP_DPORT) as u32;
        sum += udp_len as u32;
        sum += read_be16(data + DNS_ID) as u32 + flags as u32 + 1 + ancount as u32;
        sum += arcount as u32;
        sum += query.question_sum;
        sum += checksum::at_parity(rr_sum, odd);
        sum += checksum::at_parity(opt_sum, odd);
        let mut csum = checksum::finish(sum);
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        if csum == 0 {
            csum = 0xffff;
        }
        write_be16(data + UDP_CSUM, csum);
    }
    Ok(())
}
