//! failover agent: health checks endpoints, keeps the kernel's answer map true,
//! and answers in userspace what the kernel passes up.
pub mod admin_state;
pub mod agent;
pub mod answers;
pub mod checks;
pub mod cli;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod demo;
pub mod fanout;
pub mod health;
pub mod policy;
pub mod reload;
pub mod responder;
pub mod server;
pub mod sink;
