//! Where the agent's decisions go. The real one is the kernel map
//! ([`crate::dataplane::Dataplane`]); tests use an in-memory one.

use std::net::Ipv4Addr;

use anyhow::Result;

/// Receives whole answer sets. Every call replaces the record's previous set
/// atomically: a reader sees either the old or the new set, never a mix.
pub trait AnswerSink {
    /// Replaces the A answer set of `name` (absolute, e.g. "www.example.test.").
    /// `addrs` holds 1 to 16 addresses.
    fn publish_a(&mut self, name: &str, ttl: u32, addrs: &[Ipv4Addr]) -> Result<()>;
    /// Removes `name`'s A answer set: the kernel then passes its queries up the stack.
    fn withdraw_a(&mut self, name: &str) -> Result<()>;
}
