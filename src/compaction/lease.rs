//! One compaction at a time per lake: a lease held in an S3 object.
//!
//! A switch checks that the partition is still where it was read with a
//! `GetPartition` then an `UpdatePartition`, which is not atomic: two compactions at
//! once (the scheduled Lambda and a laptop's `eventlake compact --lake s3://…`) could
//! write an old location back and orphan files a writer settled meanwhile. So every
//! compaction of an S3 lake first takes the lease [`LEASE_KEY`]:
//!
//! - it is taken with a conditional PUT that succeeds only if there is no lease
//!   (`If-None-Match: *`), or only if the expired lease read is still the one there
//!   (`If-Match` on its ETag): of two runners, exactly one gets it;
//! - it expires: a runner killed without releasing it holds the lake only until
//!   then. A run renews it (`If-Match` on its own ETag) before each partition and
//!   before each switch; a renewal that finds another holder's lease ends the run's
//!   changes, so a run that outlived its lease never switches a partition;
//! - it is released with a conditional DELETE on the run's own ETag.
//!
//! Writers do not take it: settling follows a partition that moves ([`super::settle`]).

use std::sync::Mutex;
use std::time::Duration;

use crate::aws::s3::S3Store;
use crate::core::timestamp::EventTime;
use crate::lake::storage::StorageError;

/// The lease object, under the lake root (outside `events/`, where Athena reads).
pub const LEASE_KEY: &str = "_leases/compaction.json";
/// How often a runner tries again when the lease changes under it while taking it.
const ATTEMPTS: usize = 3;

/// Why the lease is not this run's.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another runner holds an unexpired lease.
    #[error(
        "another compaction holds this lake's lease ({url}): {holder}, taken {since}, expiring {until}. \
         Wait for it to finish; if it died, the lease expires by itself at {until} (or delete {url} \
         once you know that run is gone)"
    )]
    Held { url: String, holder: String, since: String, until: String },
    /// The run's lease expired and another runner took it over.
    #[error("this run's compaction lease ({url}) expired and {holder} took it over: the run stops changing the lake")]
    Lost { url: String, holder: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Record {
    /// Who holds it, for the message a second runner gets.
    holder: String,
    acquired_at_millis: i64,
    expires_at_millis: i64,
}

impl Record {
    /// A lease that cannot be read (written by hand, or by another program) counts
    /// as expired: it names no holder to wait for.
    fn read(body: &[u8]) -> Record {
        serde_json::from_slice(body).unwrap_or(Record {
            holder: "(an unreadable lease)".into(),
            acquired_at_millis: 0,
            expires_at_millis: 0,
        })
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn instant(millis: i64) -> String {
    EventTime::from_millis(millis).map_or_else(|| millis.to_string(), EventTime::created_datetime)
}

/// A lease this run holds.
#[derive(Debug)]
pub struct Lease {
    store: S3Store,
    record: Mutex<(Record, String)>,
    ttl: Duration,
}

impl Lease {
    /// Takes the lake's lease for `ttl` from `now_millis`, in the name of `holder`
    /// (a person reads it: where the run is and what it is). Refused with
    /// [`LeaseError::Held`] while another runner's lease has not expired.
    pub async fn acquire(
        store: &S3Store,
        holder: &str,
        ttl: Duration,
        now_millis: i64,
    ) -> Result<Lease, LeaseError> {
        let ours = Record {
            holder: holder.to_owned(),
            acquired_at_millis: now_millis,
            expires_at_millis: now_millis.saturating_add(ttl.as_millis() as i64),
        };
        let mut last_seen = None;
        for _ in 0..ATTEMPTS {
            if let Some(etag) = store.put_conditionally(LEASE_KEY, ours.bytes(), None).await? {
                return Ok(Lease { store: store.clone(), record: Mutex::new((ours, etag)), ttl });
            }
            let Some((etag, body)) = store.get_if_present(LEASE_KEY).await? else {
                continue; // released meanwhile
            };
            let theirs = Record::read(&body);
            if theirs.expires_at_millis > now_millis {
                return Err(held(store, &theirs));
            }
            if let Some(etag) = store.put_conditionally(LEASE_KEY, ours.bytes(), Some(&etag)).await? {
                tracing::warn!(holder = %theirs.holder, expired = %instant(theirs.expires_at_millis), "took over an expired compaction lease");
                return Ok(Lease { store: store.clone(), record: Mutex::new((ours, etag)), ttl });
            }
            last_seen = Some(theirs);
        }
        let current = match store.get_if_present(LEASE_KEY).await? {
            Some((_, body)) => Record::read(&body),
            None => last_seen.unwrap_or_else(|| Record::read(b"")),
        };
        Err(held(store, &current))
    }

    /// Extends the lease to `ttl` from `now_millis`, if it is still this run's:
    /// [`LeaseError::Lost`] when another runner took it over after it expired.
    pub async fn renew(&self, now_millis: i64) -> Result<(), LeaseError> {
        let (mut record, etag) = self.current();
        record.expires_at_millis = now_millis.saturating_add(self.ttl.as_millis() as i64);
        match self.store.put_conditionally(LEASE_KEY, record.bytes(), Some(&etag)).await? {
            Some(etag) => {
                *self.record.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = (record, etag);
                Ok(())
            }
            None => {
                let holder = match self.store.get_if_present(LEASE_KEY).await? {
                    Some((_, body)) => Record::read(&body).holder,
                    None => "(nobody: the lease was deleted)".into(),
                };
                Err(LeaseError::Lost { url: self.store.url(LEASE_KEY), holder })
            }
        }
    }

    /// Deletes the lease if it is still this run's (a run that lost it leaves the
    /// new holder's alone).
    pub async fn release(self) -> Result<(), LeaseError> {
        let (_, etag) = self.current();
        if !self.store.delete_if_match(LEASE_KEY, &etag).await? {
            tracing::warn!("the compaction lease was no longer this run's when it ended");
        }
        Ok(())
    }

    fn current(&self) -> (Record, String) {
        self.record.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

fn held(store: &S3Store, record: &Record) -> LeaseError {
    LeaseError::Held {
        url: store.url(LEASE_KEY),
        holder: record.holder.clone(),
        since: instant(record.acquired_at_millis),
        until: instant(record.expires_at_millis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_lease_counts_as_expired() {
        assert_eq!(Record::read(b"not json").expires_at_millis, 0);
        let record = Record { holder: "h".into(), acquired_at_millis: 1, expires_at_millis: 2 };
        assert_eq!(Record::read(&record.bytes()), record);
    }
}
