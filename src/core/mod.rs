//! The event contract itself, pure: no I/O, no Arrow, no AWS (`make lint` checks
//! these modules import nothing from the rest of the crate but each other).

pub mod dedupe;
pub mod event;
pub mod json;
pub mod partition;
pub mod rejection;
pub mod timestamp;
