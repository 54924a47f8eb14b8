//! DNS vocabulary every other module speaks: names in wire format and the
//! record types, response codes and SOA the agent deals in. Depends on
//! nothing else in the agent.

pub mod name;
pub mod rr;
