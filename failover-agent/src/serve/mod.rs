//! The userspace DNS server: what the kernel passes up is answered here,
//! from the same entries the kernel map holds.
//!
//! - [`table`]: the answer table (entries and zone tree) the publication
//!   path writes;
//! - [`zones`]: the zone tree of a configuration;
//! - [`responder`]: one query in, its answer out (pure, no sockets);
//! - [`select`]: which addresses a query gets;
//! - [`wire`]: parsing queries and encoding responses;
//! - [`server`]: the UDP and TCP sockets, and [`pktinfo`] for answering
//!   from the address a query was sent to;
//! - [`tcp_limits`]: the open TCP connections, per source prefix and in all;
//! - [`rate_limit`]: UDP answers per source prefix (`[rate_limit]`);
//! - [`cookies`]: DNS cookies (RFC 7873, server cookies of RFC 9018).

pub mod cookies;
pub mod pktinfo;
pub mod rate_limit;
pub mod responder;
pub mod select;
pub mod server;
pub mod table;
pub mod tcp_limits;
pub mod wire;
pub mod zones;

pub use responder::Responder;
pub use table::{AnswerTable, Entry};
pub use wire::Transport;
