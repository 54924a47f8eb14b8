pub mod packets;
pub mod xdp;
