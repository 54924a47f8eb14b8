//! failover agent: health checks endpoints, keeps the kernel's answer map true,
//! and answers in userspace what the kernel passes up.
//!
//! Layers, each using only those above it in this list:
//! - [`events`]: what happened (transitions, answer changes, reloads,
//!   overrides) as values, for every observer;
//! - [`logging`]: the log (text or JSON lines) and its events observer;
//! - [`dns`]: wire names, record types, the SOA;
//! - [`field`]: one config field's path and the value checks shared by all;
//! - [`checks`]: the check kinds (each owning its settings), the probe loop
//!   and rise/fall health;
//! - [`config`]: the file, its validation and the validated [`config::Config`];
//! - [`policy`]: pure: (record, endpoint states) -> answer;
//! - [`notify`]: `[[notify]]` hooks (webhook, exec) fed by events, each
//!   delivering from its own bounded queue;
//! - [`serve`]: the userspace DNS server: answer table, zone tree,
//!   responder, sockets;
//! - [`dataplane`], [`pin`]: the XDP program's lifecycle (load, attach,
//!   counters) and where it is pinned in bpffs;
//! - [`publish`]: one path from a decided answer to both answering paths;
//! - [`admin_state`], [`control`]: operator overrides and the control socket;
//! - [`cluster`]: several nameservers agreeing on health through etcd;
//! - [`agent`]: the event loop (checks in, answers out), reload, overrides,
//!   status;
//! - [`http`]: the read-only HTTP endpoint: metrics, the status API and
//!   page, health and readiness (reads what the agent publishes);
//! - [`daemon`], [`cli`], [`demo`]: a running process and its command line.
pub mod admin_state;
pub mod agent;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod dns;
pub mod events;
pub mod field;
pub mod http;
pub mod logging;
pub mod notify;
pub mod pin;
pub mod policy;
pub mod publish;
pub mod serve;
