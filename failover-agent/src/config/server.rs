//! `[server]`: how queries the XDP program passes up are answered.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::file::ServerFile;
use crate::field::duration_value;
use crate::field::{FieldError, field_err};

/// Where the server listens in `authoritative` mode unless `[server] listen`
/// says otherwise: every address, both families, port 53.
pub const DEFAULT_LISTEN: [&str; 2] = ["0.0.0.0:53", "[::]:53"];
/// TCP: how long a connection may sit without a complete query (RFC 7766
/// section 6.2.3 suggests seconds, not minutes).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `tcp_idle_timeout`: an hour.
pub const MAX_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// TCP: connections served at once; more are closed as they arrive.
pub const DEFAULT_TCP_MAX_CONNECTIONS: u32 = 256;

/// How queries that the XDP program passes up are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    /// The agent serves UDP and TCP on `listen` itself.
    Authoritative,
    /// The agent binds nothing: another server on the host answers.
    Front,
}

impl fmt::Display for ServerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerMode::Authoritative => "authoritative",
            ServerMode::Front => "front",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub mode: ServerMode,
    /// Where to serve UDP and TCP (authoritative mode). Never empty there.
    pub listen: Vec<SocketAddr>,
    /// `listen` is the built-in default, not configured: a missing IPv6 stack
    /// is then a warning, not an error.
    pub listen_is_default: bool,
    /// Front mode: where the DNS server on the host serves, i.e. what the
    /// XDP program answers for. Empty: every address of the interface.
    pub front_addresses: Vec<SocketAddr>,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: u32,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            mode: ServerMode::Authoritative,
            listen: DEFAULT_LISTEN
                .iter()
                .map(|a| a.parse().expect("valid default"))
                .collect(),
            listen_is_default: true,
            front_addresses: Vec::new(),
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            tcp_max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
        }
    }
}

impl Server {
    /// The addresses and ports of this host's DNS service, which the XDP
    /// program answers for: `listen` in authoritative mode, `front_addresses`
    /// in front mode. An unspecified address (`0.0.0.0`, `[::]`, and front
    /// mode without `front_addresses`) means every address of its family on
    /// the interface the program is attached to.
    pub fn dns_service_addresses(&self) -> Vec<SocketAddr> {
        match self.mode {
            ServerMode::Authoritative => self.listen.clone(),
            ServerMode::Front if !self.front_addresses.is_empty() => self.front_addresses.clone(),
            ServerMode::Front => DEFAULT_LISTEN
                .iter()
                .map(|a| a.parse().expect("valid default"))
                .collect(),
        }
    }
}

pub(super) fn server_value(server: &ServerFile) -> Result<Server, FieldError> {
    let defaults = Server::default();
    let mode = match server.mode.as_deref() {
        None | Some("authoritative") => ServerMode::Authoritative,
        Some("front") => ServerMode::Front,
        Some(other) => {
            return Err(field_err(
                "server.mode",
                format!(
                    "unknown mode {other}: expected \"authoritative\" or \"front\"",
                    other = crate::field::quoted(other)
                ),
            ));
        }
    };
    let (listen, listen_is_default) = match (&server.listen, mode) {
        (None, ServerMode::Authoritative) => (defaults.listen, true),
        (None, ServerMode::Front) => (Vec::new(), false),
        (Some(_), ServerMode::Front) => {
            return Err(field_err(
                "server.listen",
                "in mode \"front\" the agent binds nothing (the DNS server on the host does): remove listen or set mode = \"authoritative\"",
            ));
        }
        (Some(list), ServerMode::Authoritative) => {
            if list.is_empty() {
                return Err(field_err(
                    "server.listen",
                    "at least one address is required in mode \"authoritative\" (or use mode = \"front\")",
                ));
            }
            let mut listen: Vec<SocketAddr> = Vec::with_capacity(list.len());
            for (i, text) in list.iter().enumerate() {
                let field = format!("server.listen[{i}]");
                let addr = listen_address(&field, text)?;
                if listen.contains(&addr) {
                    return Err(field_err(field, format!("{addr} is listed twice")));
                }
                listen.push(addr);
            }
            (listen, false)
        }
    };
    let front_addresses = match (&server.front_addresses, mode) {
        (None, _) => Vec::new(),
        (Some(_), ServerMode::Authoritative) => {
            return Err(field_err(
                "server.front_addresses",
                "only in mode \"front\": in mode \"authoritative\" the XDP program answers on the listen addresses",
            ));
        }
        (Some(list), ServerMode::Front) => {
            let mut addrs: Vec<SocketAddr> = Vec::with_capacity(list.len());
            for (i, text) in list.iter().enumerate() {
                let field = format!("server.front_addresses[{i}]");
                let addr = listen_address(&field, text)?;
                if addr.ip().is_unspecified() {
                    return Err(field_err(
                        field,
                        format!(
                            "{text:?}: leave front_addresses out to mean every address of the interface"
                        ),
                    ));
                }
                if addrs.contains(&addr) {
                    return Err(field_err(field, format!("{addr} is listed twice")));
                }
                addrs.push(addr);
            }
            addrs
        }
    };
    let tcp_idle_timeout = duration_value(
        "server.tcp_idle_timeout",
        server.tcp_idle_timeout.as_ref(),
        DEFAULT_TCP_IDLE_TIMEOUT,
        MAX_TCP_IDLE_TIMEOUT,
    )?;
    let tcp_max_connections = match server.tcp_max_connections {
        None => DEFAULT_TCP_MAX_CONNECTIONS,
        Some(n) if (1..=1_000_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(field_err(
                "server.tcp_max_connections",
                format!("{n} is out of range: must be 1 to 1000000"),
            ));
        }
    };
    Ok(Server {
        mode,
        listen,
        listen_is_default,
        front_addresses,
        tcp_idle_timeout,
        tcp_max_connections,
    })
}

/// `"192.0.2.53"`, `"192.0.2.53:53"`, `"::1"` or `"[::1]:53"`; port 53 when
/// none is given.
pub fn listen_address(field: &str, text: &str) -> Result<SocketAddr, FieldError> {
    let addr = match text.trim().parse::<SocketAddr>() {
        Ok(addr) => addr,
        // A bare address, IPv6 with or without brackets, means port 53.
        Err(_) => match text
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text.trim())
            .parse::<IpAddr>()
        {
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => {
                return Err(field_err(
                    field,
                    format!(
                        "{text} is not an address to listen on (e.g. \"0.0.0.0:53\", \"[::]:53\", \"192.0.2.53\")",
                        text = crate::field::quoted(text)
                    ),
                ));
            }
        },
    };
    if addr.port() == 0 {
        return Err(field_err(
            field,
            format!(
                "{text}: port 0 is not a port",
                text = crate::field::quoted(text)
            ),
        ));
    }
    if addr.ip().is_multicast() {
        return Err(field_err(
            field,
            format!(
                "{text} is a multicast address",
                text = crate::field::quoted(text)
            ),
        ));
    }
    Ok(addr)
}
