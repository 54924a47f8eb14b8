//! Listening sockets a process is given rather than binds: by systemd
//! socket activation (`LISTEN_FDS`), or by the agent it takes over from,
//! passed over the control socket with SCM_RIGHTS (as HAProxy and gdnsd
//! hand theirs on). A socket handed on stays the same socket: datagrams
//! the kernel queued on it are served by whoever reads next, none is lost.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context as _, Result, bail};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// The most sockets one message carries (two per listen address).
pub const MAX_FDS: usize = 64;

/// The sockets systemd passed (`LISTEN_PID` is us, `LISTEN_FDS` of them
/// from fd 3 on, made close-on-exec), or none. The variables are removed so
/// that children do not take the sockets for theirs. Call before any thread
/// is spawned.
pub fn from_systemd() -> Result<Vec<OwnedFd>> {
    let fds = sd_notify::listen_fds().context("LISTEN_PID / LISTEN_FDS")?;
    // SAFETY: start-up, before any thread is spawned (see above).
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if fds.len() > MAX_FDS {
        bail!(
            "LISTEN_FDS={}: more sockets than the {MAX_FDS} a server takes",
            fds.len()
        );
    }
    // SAFETY: systemd passed these fds to us and nobody else owns them.
    Ok(fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).collect())
}

/// Sends `message` with `fds` attached over `stream`.
pub fn send(stream: &UnixStream, message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    if message.is_empty() {
        bail!("a message with sockets attached needs at least one byte");
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(message)],
        &cmsgs,
        MsgFlags::empty(),
        None,
    )
    .context("sending sockets")?;
    if sent != message.len() {
        bail!("sending sockets: {sent} of {} bytes sent", message.len());
    }
    Ok(())
}

/// Receives one message (at most `buf.len()` bytes) and the sockets attached
/// to it, close-on-exec.
pub fn receive(stream: &UnixStream, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("receiving sockets")?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().context("reading the attached sockets")? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these fds for us.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        bail!("more sockets were sent than {MAX_FDS}: some were lost");
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd as _;

    #[test]
    fn sockets_pass_over_a_unix_stream_and_stay_the_same_sockets() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        send(&a, b"sockets", &[udp.as_fd(), tcp.as_fd()]).unwrap();
        let mut buf = [0u8; 64];
        let (n, fds) = receive(&b, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"sockets");
        assert_eq!(fds.len(), 2);
        let mut fds = fds.into_iter();
        let udp2 = std::net::UdpSocket::from(fds.next().unwrap());
        let tcp2 = std::net::TcpListener::from(fds.next().unwrap());
        assert_eq!(udp2.local_addr().unwrap(), udp.local_addr().unwrap());
        assert_eq!(tcp2.local_addr().unwrap(), tcp.local_addr().unwrap());
        // A datagram queued before the hand-over is read through the copy.
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"q", udp.local_addr().unwrap()).unwrap();
        drop(udp);
        let mut got = [0u8; 4];
        udp2.set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        assert_eq!(udp2.recv(&mut got).unwrap(), 1);
        // Closed on exec.
        // SAFETY: fcntl on an fd we own.
        let flags = unsafe { libc::fcntl(tcp2.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0);
        // No sockets attached: a plain message.
        send(&a, b"none", &[]).unwrap();
        let (n, fds) = receive(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"none"[..], 0));
    }
}
