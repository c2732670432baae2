//! The sending side: NDJSON events packed into stream records ([`pack`]) and put
//! with retries that never drop an event ([`send`]). The stream itself is behind
//! [`send::RecordSink`]; Kinesis is `crate::aws::kinesis`.

pub mod pack;
pub mod send;
