//! failover agent: health checks endpoints and keeps the kernel's answer map true.
pub mod agent;
pub mod answers;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod demo;
pub mod health;
pub mod policy;
pub mod responder;
pub mod server;
pub mod sink;
