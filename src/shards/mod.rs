//! A stream's shards read in order (`eventlake tail`, the console's consumer),
//! pure: which shard is read next and from where, parents before their
//! children after a reshard; each shard's position and the checkpoint that
//! records them, so that a restart continues after the last record written.
//!
//! No AWS types and no clock: the shell lists the shards, reads them and stores
//! the checkpoint (`crate::tail`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One shard as the stream lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    /// The shards it was split or merged from (none for a shard of the stream's creation).
    pub parents: Vec<String>,
    /// Its last sequence number, once it is closed (split or merged into children).
    pub ending_sequence_number: Option<String>,
}

/// Where a tail starts on a shard it holds no position on. `latest` is resolved
/// to the time the checkpoint is made (`At`), so a restart, and every child
/// shard, starts at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StreamStart {
    /// The oldest record each shard still holds.
    TrimHorizon,
    /// The records that arrived at or after this instant (Unix milliseconds).
    At { millis: i64 },
}

/// Where a shard's reading begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    TrimHorizon,
    /// Arrived at or after this instant (Unix milliseconds).
    AtTimestamp(i64),
    /// After the record with this sequence number.
    AfterSequenceNumber(String),
}

/// What a tail has written of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The last record whose events were all written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Every record of the (closed) shard was written: its children may be read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished: bool,
}

/// Every shard's position on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub stream: String,
    pub start: StreamStart,
    pub shards: BTreeMap<String, Position>,
}

impl Checkpoint {
    /// A checkpoint that holds no position yet.
    pub fn new(stream: impl Into<String>, start: StreamStart) -> Self {
        Checkpoint { stream: stream.into(), start, shards: BTreeMap::new() }
    }

    /// Where reading `shard` begins: after its last written record, else at the
    /// stream's start.
    pub fn start_of(&self, shard: &str) -> Start {
        match self.shards.get(shard).and_then(|position| position.after.clone()) {
            Some(sequence_number) => Start::AfterSequenceNumber(sequence_number),
            None => match self.start {
                StreamStart::TrimHorizon => Start::TrimHorizon,
                StreamStart::At { millis } => Start::AtTimestamp(millis),
            },
        }
    }

    /// Whether every record of `shard` was written.
    pub fn is_finished(&self, shard: &str) -> bool {
        self.shards.get(shard).is_some_and(|position| position.finished)
    }

    /// The shards of `listed` to open now, in the listing's order: not finished,
    /// not `open` already, and every parent that is still listed finished (a
    /// parent past the stream's retention is gone, and holds nothing to read).
    pub fn ready<'a>(&self, listed: &'a [Shard], open: &BTreeSet<String>) -> Vec<&'a Shard> {
        let listed_ids: BTreeSet<&str> = listed.iter().map(|shard| shard.id.as_str()).collect();
        listed
            .iter()
            .filter(|shard| !self.is_finished(&shard.id) && !open.contains(&shard.id))
            .filter(|shard| {
                shard
                    .parents
                    .iter()
                    .all(|parent| !listed_ids.contains(parent.as_str()) || self.is_finished(parent))
            })
            .collect()
    }

    /// Records that the events of `shard` up to `sequence_number` are written.
    pub fn advance(&mut self, shard: &str, sequence_number: &str) {
        self.shards.entry(shard.to_owned()).or_default().after = Some(sequence_number.to_owned());
    }

    /// Records that every record of `shard` is written.
    pub fn finish(&mut self, shard: &str) {
        self.shards.entry(shard.to_owned()).or_default().finished = true;
    }

    /// Drops the positions of shards the stream no longer lists (past its
    /// retention): the checkpoint stays as small as the stream's listing.
    pub fn forget_unlisted(&mut self, listed: &[Shard]) -> Vec<String> {
        let listed: BTreeSet<&str> = listed.iter().map(|shard| shard.id.as_str()).collect();
        let gone: Vec<String> =
            self.shards.keys().filter(|id| !listed.contains(id.as_str())).cloned().collect();
        for id in &gone {
            self.shards.remove(id);
        }
        gone
    }
}

/// What one read of a shard returned, as far as its end is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// How many records it gave.
    pub records: usize,
    /// Whether the stream gave an iterator to read on.
    pub has_next: bool,
    /// How far the shard's reading is behind its newest record.
    pub millis_behind_latest: Option<i64>,
}

impl Read {
    /// It gave nothing and is not behind (or did not say).
    pub fn is_quiet(&self) -> bool {
        self.records == 0 && self.millis_behind_latest.is_none_or(|millis| millis == 0)
    }
}

/// Reads in a row that give nothing and are not behind after which a closed
/// shard that still gives an iterator is taken as read to its end.
pub const QUIET_READS_AT_END: u32 = 3;

/// Whether a shard is read to its end after `read`, the last of `quiet_reads`
/// reads in a row that gave nothing and were not behind. Kinesis ends a closed
/// shard's reading by giving no next iterator. An emulator (moto) gives one
/// forever, so a shard the listing shows closed that gave nothing and was not
/// behind [`QUIET_READS_AT_END`] times in a row is at its end too: on Kinesis a
/// closed shard with records left is behind the stream's newest record, and an
/// empty page over a gap in it is behind as well.
pub fn is_read_to_end(shard: &Shard, read: &Read, quiet_reads: u32) -> bool {
    let quiet = read.is_quiet() && read.millis_behind_latest.is_some();
    !read.has_next || shard.ending_sequence_number.is_some() && quiet && quiet_reads >= QUIET_READS_AT_END
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> Shard {
        Shard {
            id: id.into(),
            parents: parents.iter().map(|p| (*p).into()).collect(),
            ending_sequence_number: closed.then(|| "9".into()),
        }
    }

    fn ids(shards: Vec<&Shard>) -> Vec<&str> {
        shards.into_iter().map(|shard| shard.id.as_str()).collect()
    }

    #[test]
    fn children_wait_until_every_listed_parent_is_finished() {
        // 0 split into 2 and 3; 1 and 2 merged into 4.
        let listed = vec![
            shard("0", &[], true),
            shard("1", &[], true),
            shard("2", &["0"], true),
            shard("3", &["0"], false),
            shard("4", &["1", "2"], false),
        ];
        let mut checkpoint = Checkpoint::new("s", StreamStart::TrimHorizon);
        let none = BTreeSet::new();
        assert_eq!(ids(checkpoint.ready(&listed, &none)), ["0", "1"]);
        checkpoint.finish("0");
        assert_eq!(ids(checkpoint.ready(&listed, &none)), ["1", "2", "3"]);
        checkpoint.finish("1");
        assert_eq!(ids(checkpoint.ready(&listed, &none)), ["2", "3"], "4 waits for 2 as well");
        checkpoint.finish("2");
        assert_eq!(ids(checkpoint.ready(&listed, &none)), ["3", "4"]);
        let open = BTreeSet::from(["3".to_owned()]);
        assert_eq!(ids(checkpoint.ready(&listed, &open)), ["4"], "an open shard is not opened twice");
    }

    #[test]
    fn a_parent_past_retention_does_not_hold_its_children_back() {
        let listed = vec![shard("2", &["0"], false), shard("3", &["0"], false)];
        let checkpoint = Checkpoint::new("s", StreamStart::TrimHorizon);
        assert_eq!(ids(checkpoint.ready(&listed, &BTreeSet::new())), ["2", "3"]);
    }

    #[test]
    fn a_shard_starts_after_its_last_written_record_else_at_the_streams_start() {
        let mut checkpoint = Checkpoint::new("s", StreamStart::At { millis: 1_700_000_000_000 });
        assert_eq!(checkpoint.start_of("0"), Start::AtTimestamp(1_700_000_000_000));
        checkpoint.advance("0", "4960");
        assert_eq!(checkpoint.start_of("0"), Start::AfterSequenceNumber("4960".into()));
        assert_eq!(Checkpoint::new("s", StreamStart::TrimHorizon).start_of("1"), Start::TrimHorizon);
    }

    #[test]
    fn the_checkpoint_file_reads_back_and_forgets_shards_no_longer_listed() {
        let mut checkpoint = Checkpoint::new("events", StreamStart::TrimHorizon);
        checkpoint.advance("0", "12");
        checkpoint.finish("0");
        checkpoint.advance("1", "7");
        let text = serde_json::to_string(&checkpoint).unwrap();
        assert_eq!(
            text,
            r#"{"stream":"events","start":{"from":"trim_horizon"},"shards":{"0":{"after":"12","finished":true},"1":{"after":"7"}}}"#
        );
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), checkpoint);
        assert_eq!(checkpoint.forget_unlisted(&[shard("1", &[], false)]), ["0"]);
        assert_eq!(checkpoint.shards.keys().collect::<Vec<_>>(), ["1"]);
    }

    #[test]
    fn a_shard_ends_without_a_next_iterator_or_closed_and_quiet_three_times() {
        let read = |records, has_next, behind| Read { records, has_next, millis_behind_latest: behind };
        let (open, closed) = (shard("0", &[], false), shard("1", &[], true));
        assert!(is_read_to_end(&open, &read(0, false, None), 0));
        assert!(!is_read_to_end(&open, &read(0, true, Some(0)), 9), "an open shard is followed");
        assert!(is_read_to_end(&closed, &read(0, true, Some(0)), QUIET_READS_AT_END));
        assert!(
            !is_read_to_end(&closed, &read(0, true, Some(0)), QUIET_READS_AT_END - 1),
            "once is not enough"
        );
        assert!(!is_read_to_end(&closed, &read(3, true, Some(0)), 9), "it gave records: read on");
        assert!(!is_read_to_end(&closed, &read(0, true, Some(500)), 9), "behind: records are left");
        assert!(!is_read_to_end(&closed, &read(0, true, None), 9));
    }

    /// A stream's history of reshards: shard 0 at creation, then each step
    /// splits an open shard in two or merges two open shards into one. The
    /// listing, in creation order.
    fn resharded(steps: &[(bool, usize, usize)]) -> Vec<Shard> {
        let mut shards = vec![shard("0", &[], false)];
        for &(split, a, b) in steps {
            let open: Vec<usize> =
                (0..shards.len()).filter(|&i| shards[i].ending_sequence_number.is_none()).collect();
            let first = open[a % open.len()];
            let parents: Vec<usize> = if split || open.len() < 2 {
                vec![first]
            } else {
                let second = open[(a + 1 + b % (open.len() - 1)) % open.len()];
                vec![first, second]
            };
            let names: Vec<String> = parents.iter().map(|&i| shards[i].id.clone()).collect();
            for &i in &parents {
                shards[i].ending_sequence_number = Some("9".into());
            }
            let children = if parents.len() == 1 { 2 } else { 1 };
            for _ in 0..children {
                let id = shards.len().to_string();
                shards.push(Shard { id, parents: names.clone(), ending_sequence_number: None });
            }
        }
        shards
    }

    proptest::proptest! {
        /// Reading what `ready` offers, a shard at a time, reads every shard once,
        /// each after all of its parents, whatever the history of reshards and
        /// whichever ready shard is read first.
        #[test]
        fn every_shard_is_read_once_and_after_its_parents(
            steps in proptest::collection::vec((proptest::bool::ANY, 0usize..8, 0usize..8), 0..12),
            picks in proptest::collection::vec(0usize..8, 64),
        ) {
            let listed = resharded(&steps);
            let mut checkpoint = Checkpoint::new("s", StreamStart::TrimHorizon);
            let mut order: Vec<String> = Vec::new();
            let none = BTreeSet::new();
            for pick in picks.iter().cycle().take(listed.len() * 2) {
                let ready = checkpoint.ready(&listed, &none);
                if ready.is_empty() {
                    break;
                }
                let next = ready[pick % ready.len()];
                for parent in &next.parents {
                    proptest::prop_assert!(order.contains(parent), "{} before its parent {}", next.id, parent);
                }
                order.push(next.id.clone());
                checkpoint.finish(&next.id);
            }
            let mut read = order.clone();
            read.sort();
            read.dedup();
            proptest::prop_assert_eq!(read.len(), order.len(), "a shard read twice: {:?}", order);
            proptest::prop_assert_eq!(order.len(), listed.len(), "every shard read: {:?}", order);
        }
    }
}
