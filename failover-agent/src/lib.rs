//! failover agent: health checks endpoints and keeps the kernel's answer map true.
pub mod dataplane;
pub mod sink;
