//! What AWS bills for a load: the per-record rounding rules of Kinesis and
//! Firehose (shared with `eventlake send`'s estimate) and the monthly cost model
//! of `eventlake cost`. Pure: prices come in as data.

pub mod model;
pub mod rules;
