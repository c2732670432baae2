//! Events packed into stream records (CONTRACT section 5, `eventlake send`):
//! several events per Kinesis record, separated by `\n`, which Firehose's record
//! de-aggregation (type `Delimited`, delimiter `\n`) splits again before the
//! transformation Lambda, so the transform still sees one event per record.
//!
//! A split on the delimiter, not a JSON parse: an event that is not valid JSON
//! still reaches the transform on its own and is rejected there with its reason,
//! and never takes its neighbours in the record with it.
//!
//! Pure: records are built from the lines given, nothing is read or sent here.

use crate::core::event::MAX_RECORD_BYTES;

/// The separator between events of one record, and the delimiter the Terraform
/// gives Firehose's de-aggregation (base64 `Cg==`).
pub const DELIMITER: u8 = b'\n';

/// Most events Firehose's de-aggregation splits out of one record.
pub const MAX_EVENTS_PER_RECORD: usize = 500;

/// The default packing: the largest record that Firehose bills as one 5 KB
/// ingestion increment whether its KB is 1,000 or 1,024 bytes.
pub const DEFAULT_RECORD_BYTES: usize = 5_000;

/// Largest record a packed one may grow to (`--pack-kib`): Kinesis takes records
/// of up to 1 MiB, Firehose of up to 1,000 KiB.
pub const MAX_PACK_BYTES: usize = MAX_RECORD_BYTES;

/// One stream record: events joined by [`DELIMITER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub data: Vec<u8>,
    /// How many events `data` holds.
    pub events: u32,
}

impl Record {
    /// The events the record holds, as they were given to the packer.
    pub fn events(&self) -> impl Iterator<Item = &[u8]> {
        self.data.split(|&byte| byte == DELIMITER)
    }

    /// The record's Kinesis partition key: a hash of its bytes, so records spread
    /// evenly over the shards whatever the events hold, and a record sent again
    /// goes to the same shard.
    pub fn partition_key(&self) -> String {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&self.data))
    }
}

/// The events of a stream record as a reader takes them apart again: the pieces
/// between [`DELIMITER`]s, without the JSON whitespace around them, pieces that
/// hold only whitespace left out (a record put by another producer may end with
/// a line break, or hold one event alone).
pub fn unpack(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&byte| byte == DELIMITER).map(trim_json_whitespace).filter(|event| !event.is_empty())
}

fn trim_json_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| matches!(byte, b' ' | b'\t' | b'\r' | b'\n');
    let start = bytes.iter().position(|byte| !is_space(byte)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|byte| !is_space(byte)).map_or(start, |last| last + 1);
    &bytes[start..end.max(start)]
}

/// Why an event cannot be put in any record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    /// Longer than the contract allows: Firehose refuses the record.
    #[error("the event is {len} bytes, over the contract's limit of {} bytes (1,000 KiB)", MAX_RECORD_BYTES)]
    TooLarge { len: usize },
    /// A newline inside the event would split it in two at de-aggregation.
    #[error("the event holds a line break; NDJSON events are one line each")]
    LineBreak,
}

/// Builds records of up to `limit` bytes and [`MAX_EVENTS_PER_RECORD`] events,
/// keeping the events' order. `limit` 0 puts every event in a record of its own.
#[derive(Debug)]
pub struct Packer {
    limit: usize,
    open: Option<Record>,
}

impl Packer {
    /// A packer for records of at most `limit` bytes (0: one event per record).
    pub fn new(limit: usize) -> Self {
        Packer { limit: limit.min(MAX_PACK_BYTES), open: None }
    }

    /// Adds `event` (one NDJSON line, without its line end). Returns the record
    /// it closed, if any: the open record is closed when `event` does not fit in it.
    /// An event longer than the limit gets a record of its own.
    pub fn push(&mut self, event: &[u8]) -> Result<Option<Record>, Unsendable> {
        if event.len() > MAX_RECORD_BYTES {
            return Err(Unsendable::TooLarge { len: event.len() });
        }
        if memchr::memchr(DELIMITER, event).is_some() {
            return Err(Unsendable::LineBreak);
        }
        let limit = self.limit;
        let closed = match &mut self.open {
            Some(open) if fits(open, event, limit) => {
                open.data.push(DELIMITER);
                open.data.extend_from_slice(event);
                open.events += 1;
                return Ok(None);
            }
            open => open.take(),
        };
        self.open = Some(Record { data: event.to_vec(), events: 1 });
        Ok(closed)
    }

    /// The open record, if it holds any event.
    pub fn finish(&mut self) -> Option<Record> {
        self.open.take()
    }

    /// Whether the open record holds any event.
    pub fn is_empty(&self) -> bool {
        self.open.is_none()
    }
}

/// Whether `event` joins `open` within `limit` bytes and the event cap.
fn fits(open: &Record, event: &[u8], limit: usize) -> bool {
    (open.events as usize) < MAX_EVENTS_PER_RECORD && open.data.len() + 1 + event.len() <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_unpacks_into_the_events_packed_and_whitespace_only_pieces_are_left_out() {
        let events: [&[u8]; 3] = [br#"{"a":1}"#, br#"{"b":" x "}"#, b"not json"];
        for record in pack(DEFAULT_RECORD_BYTES, &events) {
            assert_eq!(unpack(&record.data).collect::<Vec<_>>(), events);
        }
        let foreign = b" {\"a\":1}\r\n\n\t\n{\"b\":2}\n";
        assert_eq!(unpack(foreign).collect::<Vec<_>>(), [&br#"{"a":1}"#[..], br#"{"b":2}"#]);
        assert_eq!(unpack(b"").count(), 0);
        assert_eq!(unpack(b" \n ").count(), 0);
    }

    fn pack(limit: usize, events: &[&[u8]]) -> Vec<Record> {
        let mut packer = Packer::new(limit);
        let mut records: Vec<Record> =
            events.iter().filter_map(|event| packer.push(event).unwrap()).collect();
        records.extend(packer.finish());
        records
    }

    #[test]
    fn records_hold_the_events_in_order_within_the_limit() {
        let events: Vec<Vec<u8>> = (0..1000).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
        let refs: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        let records = pack(100, &refs);
        assert!(records.iter().all(|record| record.data.len() <= 100));
        let unpacked: Vec<&[u8]> = records.iter().flat_map(Record::events).collect();
        assert_eq!(unpacked, refs);
        let counted: u32 = records.iter().map(|record| record.events).sum();
        assert_eq!(counted, 1000);
        // Each record but the last is full: the next event would not have fitted.
        for (record, next) in records.iter().zip(records.iter().skip(1)) {
            let first_of_next = next.events().next().unwrap();
            assert!(record.data.len() + 1 + first_of_next.len() > 100);
        }
    }

    #[test]
    fn a_record_holds_at_most_500_events() {
        let one: &[u8] = b"1";
        let records = pack(1_000_000, &[one; 1201]);
        assert_eq!(records.iter().map(|record| record.events).collect::<Vec<_>>(), [500, 500, 201]);
        assert_eq!(records[0].data.len(), 999, "500 one-byte events and 499 delimiters");
    }

    #[test]
    fn zero_packs_one_event_per_record_and_a_long_event_gets_its_own() {
        let records = pack(0, &[b"a", b"b"]);
        assert_eq!(
            records,
            [Record { data: b"a".to_vec(), events: 1 }, Record { data: b"b".to_vec(), events: 1 }]
        );
        let long = vec![b'x'; 50];
        let records = pack(10, &[b"a", &long, b"b"]);
        assert_eq!(records.iter().map(|record| record.data.len()).collect::<Vec<_>>(), [1, 50, 1]);
    }

    #[test]
    fn events_past_the_contract_limit_or_with_line_breaks_are_refused() {
        let mut packer = Packer::new(DEFAULT_RECORD_BYTES);
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert_eq!(packer.push(&huge), Err(Unsendable::TooLarge { len: MAX_RECORD_BYTES + 1 }));
        assert_eq!(packer.push(b"{\"a\":\n1}"), Err(Unsendable::LineBreak));
        assert!(packer.is_empty(), "a refused event leaves nothing behind");
        assert_eq!(packer.push(&huge[1..]), Ok(None), "exactly 1,000 KiB is allowed");
    }

    #[test]
    fn the_partition_key_is_a_hash_of_the_record() {
        let record = Record { data: b"{}".to_vec(), events: 1 };
        assert_eq!(record.partition_key().len(), 16);
        assert_eq!(record.partition_key(), record.clone().partition_key());
        assert_ne!(record.partition_key(), Record { data: b"{ }".to_vec(), events: 1 }.partition_key());
    }
}
