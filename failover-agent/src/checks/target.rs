//! What one probe is aimed at: an address, and a port for kinds that have
//! one.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// What one probe is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckTarget {
    pub address: IpAddr,
    pub port: Option<u16>,
}

impl fmt::Display for CheckTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.address, port)),
            None => write!(f, "{}", self.address),
        }
    }
}
