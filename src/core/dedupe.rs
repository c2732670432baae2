//! Deduplication: the first record seen with a [`DedupeKey`] wins.
//!
//! The set keeps a 128-bit xxh3 digest of each key rather than the 24-byte key: a
//! whole-run dedupe of millions of events then fits the writer's memory budget, and
//! the chance that two distinct keys share a digest (about n²/2¹²⁹, 10⁻²⁶ for ten
//! million events) is far below that of a hardware memory error.

use std::collections::HashSet;

use foldhash::fast::RandomState;

use crate::core::event::DedupeKey;

/// The keys seen so far in a batch (the Lambda) or a run (`eventlake ingest`).
///
/// foldhash is several times faster than SipHash on these 24-byte keys, and its
/// per-process random seed keeps crafted UUIDs from forcing collisions.
#[derive(Debug, Default)]
pub struct Seen {
    keys: HashSet<u128, RandomState>,
}

impl Seen {
    /// An empty set with room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Seen { keys: HashSet::with_capacity_and_hasher(capacity, RandomState::default()) }
    }

    /// Records `key`; true when it was not seen before, so the event is kept.
    pub fn first_time(&mut self, key: DedupeKey) -> bool {
        self.keys.insert(digest(key))
    }

    /// Forgets `key` (an event that was not delivered after all).
    pub fn forget(&mut self, key: DedupeKey) {
        self.keys.remove(&digest(key));
    }

    /// Memory the set holds, for the writer's budget: its table's buckets.
    pub fn bytes(&self) -> usize {
        table_bytes(self.keys.capacity())
    }

    /// The memory the set holds once it takes one more key: when the table is
    /// full, a table of twice its buckets.
    pub fn bytes_after_next_key(&self) -> usize {
        if self.keys.len() < self.keys.capacity() {
            self.bytes()
        } else {
            table_bytes(self.keys.capacity().max(1) * 2)
        }
    }

    /// How many distinct keys were seen.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key was seen.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Bytes of a table with room for `capacity` keys: hashbrown keeps 7 of every 8
/// buckets usable (all but one below 8 buckets), with one control byte per bucket
/// beside each 16-byte digest.
fn table_bytes(capacity: usize) -> usize {
    let buckets = if capacity == 0 {
        0
    } else if capacity < 7 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (std::mem::size_of::<u128>() + 1)
}

fn digest(key: DedupeKey) -> u128 {
    let mut bytes = [0_u8; 24];
    bytes[..16].copy_from_slice(key.uuid.as_bytes());
    bytes[16..].copy_from_slice(&key.created_at_millis.to_le_bytes());
    xxhash_rust::xxh3::xxh3_128(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn first_wins_and_key_needs_both_parts() {
        let uuid = Uuid::from_u128(7);
        let key = |millis| DedupeKey { uuid, created_at_millis: millis };
        let mut seen = Seen::default();
        assert!(seen.first_time(key(1000)));
        assert!(!seen.first_time(key(1000)));
        assert!(seen.first_time(key(1001)));
        assert!(seen.first_time(DedupeKey { uuid: Uuid::from_u128(8), created_at_millis: 1000 }));
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn the_next_key_into_a_full_set_takes_a_table_twice_as_large() {
        let key = |n: u128| DedupeKey { uuid: Uuid::from_u128(n), created_at_millis: 0 };
        let mut seen = Seen::default();
        assert_eq!((seen.bytes(), seen.bytes_after_next_key()), (0, 4 * 17));
        seen.first_time(key(0));
        assert_eq!(seen.bytes(), 4 * 17);
        let mut n = 1;
        for _ in 0..3 {
            while seen.len() < seen.keys.capacity() {
                assert_eq!(seen.bytes_after_next_key(), seen.bytes(), "room for the next key");
                seen.first_time(key(n));
                n += 1;
            }
            let (full, next) = (seen.bytes(), seen.bytes_after_next_key());
            assert_eq!(next, 2 * full, "a table of twice the buckets");
            seen.first_time(key(n));
            n += 1;
            assert_eq!(seen.bytes(), 2 * full, "the table doubled");
        }
        // 2^20 buckets of 17 bytes.
        assert_eq!(table_bytes(917_504), 17 << 20);
    }
}
