//! `tcp`: healthy when the handshake completes. Nothing is sent; the
//! connection is closed at once.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::health::Failure;

pub async fn check(target: SocketAddr) -> Result<String, Failure> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(|e| Failure::from_io(&e))?;
    drop(stream);
    Ok("connected".to_string())
}
