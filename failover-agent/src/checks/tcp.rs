//! `tcp`: healthy when the handshake completes. Nothing is sent; the
//! connection is closed at once.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::result::Failure;

pub async fn check(target: SocketAddr) -> Result<String, Failure> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| Failure::from_io(&e))?;
    drop(stream);
    Ok("connected".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::result::CheckResult;
    use std::time::{Duration, Instant};

    /// One check with its timeout, as the probe loop runs it (`run_once`).
    async fn tcp_check(target: SocketAddr, timeout: Duration) -> CheckResult {
        let start = Instant::now();
        let outcome = match tokio::time::timeout(timeout, check(target)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Timeout(timeout)),
        };
        CheckResult::new(outcome, start.elapsed())
    }

    #[tokio::test]
    async fn tcp_check_against_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = tcp_check(addr, Duration::from_secs(1)).await;
        assert!(up.is_success(), "{up:?}");
        drop(listener);
        let down = tcp_check(addr, Duration::from_secs(1)).await;
        assert_eq!(down.outcome, Err(Failure::Refused));
    }

    #[tokio::test]
    async fn tcp_check_over_ipv6() {
        let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let up = tcp_check(addr, Duration::from_secs(1)).await;
        assert!(up.is_success(), "{up:?}");
        drop(listener);
        let down = tcp_check(addr, Duration::from_secs(1)).await;
        assert_eq!(down.outcome, Err(Failure::Refused));
    }
}
