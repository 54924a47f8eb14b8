//! `icmp`: one echo request, up on the matching echo reply (same id,
//! sequence and payload). Raw sockets (root or CAP_NET_RAW), IPv4 and IPv6;
//! the socket is connected to the target so the kernel hands it only the
//! target's ICMP messages.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::result::Failure;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

/// The echo request: type, code, checksum, id, sequence, `payload`. The
/// ICMPv6 checksum covers a pseudo-header the kernel fills in, so it is left
/// zero there.
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// RFC 1071 Internet checksum.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet` (as a raw socket reads it: with the IPv4 header, without
/// an IPv6 one) is the reply to our request.
pub fn is_reply(v6: bool, packet: &[u8], id: u16, seq: u16, payload: &[u8]) -> bool {
    let icmp = if v6 {
        packet
    } else {
        let Some(&first) = packet.first() else {
            return false;
        };
        let header = usize::from(first & 0x0f) * 4;
        if header < 20 || packet.len() < header {
            return false;
        }
        &packet[header..]
    };
    icmp.len() >= 8 + payload.len()
        && icmp[0] == if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 }
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + payload.len()] == payload
}

/// One echo; the caller bounds it in time.
pub async fn check(target: IpAddr, id: u16, seq: u16, token: u64) -> Result<String, Failure> {
    let v6 = target.is_ipv6();
    let open = || -> io::Result<Socket> {
        let socket = if v6 {
            Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
        } else {
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
        };
        socket.set_nonblocking(true)?;
        socket.connect(&SocketAddr::new(target, 0).into())?;
        Ok(socket)
    };
    let socket = open().map_err(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            Failure::Failed("icmp checks need root or CAP_NET_RAW (raw socket)".into())
        } else {
            Failure::Unreachable(e.to_string())
        }
    })?;
    // SAFETY: the AsyncFd owns the socket, so its descriptor stays open and
    // the same for the AsyncFd's whole life.
    let socket =
        unsafe { AsyncFd::register(socket) }.map_err(|e| Failure::Unreachable(e.to_string()))?;
    let payload = token.to_be_bytes();
    let request = echo_request(v6, id, seq, &payload);
    loop {
        let mut guard = socket
            .writable()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        match guard.try_io(|s| s.get_ref().send(&request)) {
            Ok(Ok(_)) => break,
            Ok(Err(e)) => return Err(Failure::from_io(&e)),
            Err(_would_block) => continue,
        }
    }
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let mut guard = socket
            .readable()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let n = match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(Failure::from_io(&e)),
            Err(_would_block) => continue,
        };
        // SAFETY: recv initialised the first n bytes.
        let packet: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        if is_reply(v6, &packet, id, seq, &payload) {
            return Ok("echo reply".to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_v4_checksums_to_zero() {
        let packet = echo_request(false, 0x1234, 7, b"abcdefgh");
        assert_eq!(&packet[..2], &[8, 0]);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(checksum(&packet), 0, "a valid checksum sums to zero");
        let v6 = echo_request(true, 1, 2, b"x");
        assert_eq!(&v6[..4], &[128, 0, 0, 0]);
    }

    #[test]
    fn replies_are_matched_by_id_sequence_and_payload() {
        let mut reply = vec![0x45u8];
        reply.extend_from_slice(&[0; 19]);
        let mut icmp = echo_request(false, 9, 3, b"tok");
        icmp[0] = ECHO_REPLY_V4;
        reply.extend_from_slice(&icmp);
        assert!(is_reply(false, &reply, 9, 3, b"tok"));
        assert!(!is_reply(false, &reply, 9, 4, b"tok"));
        assert!(!is_reply(false, &reply, 8, 3, b"tok"));
        assert!(!is_reply(false, &reply, 9, 3, b"tox"));
        // Our own request looped back is no reply.
        let mut request = reply.clone();
        request[20] = ECHO_REQUEST_V4;
        assert!(!is_reply(false, &request, 9, 3, b"tok"));
        let mut v6 = echo_request(true, 9, 3, b"tok");
        v6[0] = ECHO_REPLY_V6;
        assert!(is_reply(true, &v6, 9, 3, b"tok"));
    }
}
