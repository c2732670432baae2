//! The partition: the one place that knows how an event's place in the lake is
//! named. Its two keys are the Firehose partition keys the transform returns, the
//! lake's directories (`events/event_type=<t>/created_date=<d>`), the Glue table's
//! partition columns and each Glue partition's values, in that order.

use std::fmt;

use crate::core::event::is_valid_event_type;
use crate::core::timestamp::{CreatedDate, EventTime};

/// The partition keys, in order: the first part of `event_name`, and the UTC date
/// of `created_at`.
pub const KEYS: [&str; 2] = ["event_type", "created_date"];

/// The directory under the lake root that holds every partition.
pub const EVENTS_DIR: &str = "events";

/// Where an event lives in the lake. Borrowed (`Partition<&str>`) while it comes
/// from an event being transformed, owned (`Partition`) once the lake keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition<S = String> {
    pub event_type: S,
    pub created_date: CreatedDate,
}

impl<S: AsRef<str>> Partition<S> {
    /// The partition of an event of `event_type` created at `time`.
    pub fn of(event_type: S, time: EventTime) -> Self {
        Partition { event_type, created_date: time.created_date() }
    }

    /// The owned form.
    pub fn to_owned(&self) -> Partition {
        Partition { event_type: self.event_type.as_ref().to_owned(), created_date: self.created_date }
    }

    /// The partition's directory under the lake root. The event type's charset
    /// (`A-Z a-z 0-9 _ - .`) is enforced by the event contract, so the value cannot
    /// hold a `/`; the storage layer still refuses any `..` segment.
    pub fn directory(&self) -> String {
        format!("{EVENTS_DIR}/{self}")
    }

    /// The Glue partition's values, in the order of [`KEYS`].
    pub fn values(&self) -> Vec<String> {
        vec![self.event_type.as_ref().to_owned(), self.created_date.to_string()]
    }
}

/// `event_type=<t>/created_date=<d>`: the partition's path below [`EVENTS_DIR`].
impl<S: AsRef<str>> fmt::Display for Partition<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [event_type, created_date] = KEYS;
        write!(f, "{event_type}={}/{created_date}={}", self.event_type.as_ref(), self.created_date)
    }
}

impl Partition {
    /// The partition named by the two directory names under [`EVENTS_DIR`]
    /// (`event_type=<t>`, `created_date=<d>`); `None` for anything the writer
    /// would not have written.
    pub fn from_directories(event_type_dir: &str, created_date_dir: &str) -> Option<Self> {
        let event_type = event_type_of_directory(event_type_dir)?;
        let created_date = CreatedDate::parse(created_date_dir.strip_prefix(KEYS[1])?.strip_prefix('=')?)?;
        is_valid_event_type(event_type).then(|| Partition { event_type: event_type.to_owned(), created_date })
    }
}

/// The event type a directory directly under [`EVENTS_DIR`] is named for
/// (`event_type=<t>`), unchecked.
pub fn event_type_of_directory(name: &str) -> Option<&str> {
    name.strip_prefix(KEYS[0])?.strip_prefix('=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_read_back_only_from_names_the_writer_writes() {
        let partition =
            Partition::from_directories("event_type=pay.ment-2", "created_date=2024-03-17").unwrap();
        assert_eq!(partition.directory(), "events/event_type=pay.ment-2/created_date=2024-03-17");
        assert_eq!(partition.values(), ["pay.ment-2", "2024-03-17"]);
        for (t, d) in [
            ("event_type=", "created_date=2024-03-17"),
            ("event_type=a:b", "created_date=2024-03-17"),
            ("event_type=a b", "created_date=2024-03-17"),
            ("type=a", "created_date=2024-03-17"),
            ("event_typea", "created_date=2024-03-17"),
            ("event_type=a", "created_date=2024-3-17"),
            ("event_type=a", "created_date=2024-02-30"),
            ("event_type=a", "created_date=1969-12-31"),
            ("event_type=a", "created_date=+2024-03-17"),
            ("event_type=a", "created_date=2024-03-17x"),
        ] {
            assert_eq!(Partition::from_directories(t, d), None, "{t}/{d}");
        }
    }

    #[test]
    fn a_borrowed_partition_names_the_same_directory_as_its_owned_form() {
        let created_date = CreatedDate::parse("2024-03-17").unwrap();
        let borrowed = Partition { event_type: "payment", created_date };
        assert_eq!(borrowed.directory(), borrowed.to_owned().directory());
        assert_eq!(borrowed.to_string(), "event_type=payment/created_date=2024-03-17");
    }
}
