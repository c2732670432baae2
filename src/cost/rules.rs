//! The billing units AWS rounds records up to, each named once.

/// Kinesis Data Streams (on-demand) bills data in per record rounded up to 1 KB
/// of 1,024 bytes.
pub const KINESIS_RECORD_UNIT: u64 = 1024;
/// Kinesis Data Streams (provisioned) bills PUT payload units of 25 KB per record.
pub const KINESIS_PUT_PAYLOAD_UNIT: u64 = 25 * 1024;
/// Firehose bills ingestion per record rounded up to 5 KB (taken as 5 × 1,024
/// bytes; `eventlake send`'s default packing stays under 5,000 bytes, inside one
/// increment either way).
pub const FIREHOSE_RECORD_UNIT: u64 = 5 * 1024;

/// `len` rounded up to whole `unit`s, in bytes; a record of 0 bytes still counts one unit.
pub fn billed(len: u64, unit: u64) -> u64 {
    len.max(1).div_ceil(unit) * unit
}

/// Units of `unit` bytes a record of `len` bytes counts for.
pub fn units(len: u64, unit: u64) -> u64 {
    len.max(1).div_ceil(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_billed_in_whole_units() {
        // AWS's own examples: a 3 KB record is billed as 5 KB by Firehose, a 12 KB
        // one as 15 KB; a 4.5 KB record as 5 KB of Kinesis data in.
        assert_eq!(billed(3 * 1024, FIREHOSE_RECORD_UNIT), 5 * 1024);
        assert_eq!(billed(12 * 1024, FIREHOSE_RECORD_UNIT), 15 * 1024);
        assert_eq!(billed(4608, KINESIS_RECORD_UNIT), 5 * 1024);
        assert_eq!(billed(340, KINESIS_RECORD_UNIT), 1024);
        assert_eq!(billed(0, KINESIS_RECORD_UNIT), 1024);
        assert_eq!(units(25 * 1024 + 1, KINESIS_PUT_PAYLOAD_UNIT), 2);
    }
}
