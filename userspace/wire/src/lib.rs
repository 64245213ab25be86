//! Pure decoders for what xacct reads off the wire.
//!
//! Everything here takes a byte slice and returns a typed result: no IO, no allocation on the
//! hot path, no `unsafe`, and no input can make it panic (the decoders are fuzzed). Errors carry
//! a reason that the daemon counts, so malformed input is always visible to the operator.
#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod fuzzing;
pub mod netflow;
pub mod packet;
pub mod pcapfile;
pub mod sflow;

pub use packet::{decode, DecodeError, LinkType, PacketSummary, L3};
