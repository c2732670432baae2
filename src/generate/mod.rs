//! Deterministic sample events: realistic NDJSON for demos, tests and benchmarks.
//!
//! A seed fixes every byte. Events come from a catalog of event types, each with its
//! own subtypes, actions and payload shape (nested objects, arrays, unicode, numbers
//! beyond 64 bits). A share of records repeat an earlier event exactly, and a share
//! are invalid, cycling through every rejection class of the contract.

mod firehose;

use std::collections::VecDeque;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use uuid::Uuid;

pub use firehose::FirehoseBatcher;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Number of distinct event types (the first part of `event_name`).
    pub types: usize,
    /// Share of records that repeat an earlier event exactly, 0 to 1.
    pub duplicates: f64,
    /// Share of records that break a contract rule, 0 to 1.
    pub invalid: f64,
    /// First day of `created_at`, UTC.
    pub start: NaiveDate,
    /// Number of days `created_at` spreads over.
    pub days: u32,
    /// Also produce the invalid classes only a Firehose record can have (empty
    /// data, data that is not base64).
    pub firehose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 42,
            types: 100,
            duplicates: 0.01,
            invalid: 0.005,
            start: NaiveDate::from_ymd_opt(2024, 3, 17).unwrap_or_default(),
            days: 1,
            firehose: false,
        }
    }
}

const DOMAINS: [&str; 50] = [
    "payment",
    "order",
    "user",
    "session",
    "cart",
    "checkout",
    "catalog",
    "search",
    "inventory",
    "shipment",
    "delivery",
    "refund",
    "invoice",
    "subscription",
    "notification",
    "email",
    "sms",
    "push",
    "auth",
    "account",
    "profile",
    "review",
    "wishlist",
    "coupon",
    "promotion",
    "loyalty",
    "support",
    "chat",
    "media",
    "video",
    "ad",
    "campaign",
    "experiment",
    "feature-flag",
    "device",
    "app",
    "page",
    "api",
    "webhook",
    "billing",
    "tax",
    "fraud",
    "kyc",
    "ledger",
    "wallet",
    "transfer",
    "payout",
    "merchant",
    "warehouse",
    "booking",
];
const ENTITIES: [&str; 12] = [
    "order", "intent", "card", "item", "link", "profile", "request", "job", "token", "plan", "batch",
    "message",
];
const ACTIONS: [&str; 10] = [
    "created",
    "updated",
    "completed",
    "failed",
    "cancelled",
    "viewed",
    "started",
    "expired",
    "approved",
    "retried",
];
const TEXTS: [&str; 10] = [
    "Zoë Saldaña",
    "東京都渋谷区",
    "Москва",
    "naïve café",
    "😀 great 👍",
    "مرحبا بالعالم",
    "e\u{301}clair",
    "tab\tand \"quotes\"",
    "line\nbreak",
    "plain ascii",
];
/// Prefixes that make more event types once every domain is used ("partner_order").
const QUALIFIERS: [&str; 6] = ["partner", "internal", "mobile", "b2b", "legacy", "sandbox"];
const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "JPY", "BRL"];

/// Invalid-record classes of NDJSON records; Firehose records have two more.
const INVALID_KINDS: usize = 19;
/// How many recent valid events are kept as sources of exact duplicates.
const DUPLICATE_WINDOW: usize = 1024;

/// One event type of the catalog.
#[derive(Debug, Clone)]
struct Kind {
    event_type: String,
    subtypes: Vec<&'static str>,
    /// Which optional payload fields this type carries (a bit per field).
    shape: u32,
}

/// One generated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The record's bytes, without a trailing newline.
    pub data: Vec<u8>,
    /// For Firehose: send `data` as a string that is not base64.
    pub not_base64: bool,
}

/// A deterministic stream of sample records.
pub struct Generator {
    rng: ChaCha8Rng,
    options: Options,
    catalog: Vec<Kind>,
    recent: VecDeque<Vec<u8>>,
    invalid_sequence: usize,
    start_seconds: i64,
    /// A live producer's clock: events created at this second.
    now_seconds: Option<i64>,
}

impl Generator {
    pub fn new(options: Options) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let catalog = (0..options.types.max(1)).map(|index| kind(index, &mut rng)).collect();
        let start_seconds = options.start.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp();
        Generator {
            rng,
            options,
            catalog,
            recent: VecDeque::with_capacity(DUPLICATE_WINDOW),
            invalid_sequence: 0,
            start_seconds,
            now_seconds: None,
        }
    }

    /// From now on, events are created within the second `seconds` (a live
    /// producer), not spread over the options' days.
    pub fn created_at_second(&mut self, seconds: i64) {
        self.now_seconds = Some(seconds);
    }

    /// The next record.
    pub fn next_record(&mut self) -> Sample {
        let roll: f64 = self.rng.random();
        if roll < self.options.invalid {
            let kinds = INVALID_KINDS + if self.options.firehose { 2 } else { 0 };
            let kind = self.invalid_sequence % kinds;
            self.invalid_sequence += 1;
            return match kind {
                INVALID_KINDS => Sample { data: Vec::new(), not_base64: false },
                kind if kind > INVALID_KINDS => Sample { data: self.valid(), not_base64: true },
                kind => Sample { data: self.invalid(kind), not_base64: false },
            };
        }
        if roll < self.options.invalid + self.options.duplicates && !self.recent.is_empty() {
            let index = self.rng.random_range(0..self.recent.len());
            return Sample { data: self.recent[index].clone(), not_base64: false };
        }
        let record = self.valid();
        if self.recent.len() == DUPLICATE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(record.clone());
        Sample { data: record, not_base64: false }
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    /// `created_at` as JSON text: whole seconds, or seconds with three decimals.
    fn created_at(&mut self) -> String {
        let span = i64::from(self.options.days.max(1)) * 86_400;
        let seconds = match self.now_seconds {
            Some(now) => now,
            None => self.start_seconds + self.rng.random_range(0..span),
        };
        if self.rng.random_bool(0.3) {
            format!("{seconds}.{:03}", self.rng.random_range(0..1000))
        } else {
            seconds.to_string()
        }
    }

    fn valid(&mut self) -> Vec<u8> {
        self.valid_fields().render()
    }

    fn valid_fields(&mut self) -> Fields {
        let kind = self.catalog[self.rng.random_range(0..self.catalog.len())].clone();
        let uuid = self.uuid();
        let uuid = match self.rng.random_range(0..40) {
            0 => uuid.simple().to_string(),
            1 => uuid.braced().to_string(),
            2 => uuid.urn().to_string(),
            3 => uuid.hyphenated().to_string().to_uppercase(),
            _ => uuid.hyphenated().to_string(),
        };
        let action = ACTIONS[self.rng.random_range(0..ACTIONS.len())];
        let name = match self.rng.random_range(0..50) {
            0 => kind.event_type.clone(),
            1 => format!("{}::{action}", kind.event_type),
            _ => {
                let subtype = kind.subtypes[self.rng.random_range(0..kind.subtypes.len())];
                format!("{}:{subtype}:{action}", kind.event_type)
            }
        };
        let mut fields = Fields::default();
        fields.set("event_uuid", json!(uuid).to_string());
        fields.set("event_name", json!(name).to_string());
        fields.set("created_at", self.created_at());
        fields.set("user_id", json!(format!("u_{:06}", self.rng.random_range(0..200_000))).to_string());
        self.payload(kind.shape, &mut fields);
        fields
    }

    fn payload(&mut self, shape: u32, fields: &mut Fields) {
        let rng = &mut self.rng;
        if shape & 1 != 0 {
            let cents: u64 = rng.random_range(100..1_000_000);
            fields.set("amount", format!("{}.{:02}", cents / 100, cents % 100));
            fields.set("currency", json!(CURRENCIES[rng.random_range(0..CURRENCIES.len())]).to_string());
        }
        if shape & 2 != 0 {
            let items: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| {
                    let sku = format!("SKU-{:05}", rng.random_range(0..99_999));
                    let (qty, euros, cents) =
                        (rng.random_range(1..5), rng.random_range(1..500), rng.random_range(0..100));
                    format!(r#"{{"sku":"{sku}","qty":{qty},"price":{euros}.{cents:02}}}"#)
                })
                .collect();
            fields.set("items", format!("[{}]", items.join(",")));
        }
        if shape & 4 != 0 {
            let os = ["ios", "android", "web"][rng.random_range(0..3)];
            let locale = ["en-US", "de-DE", "ja-JP", "pt-BR"][rng.random_range(0..4)];
            let version =
                format!("{}.{}.{}", rng.random_range(1..6), rng.random_range(0..20), rng.random_range(0..10));
            let context = json!({
                "app_version": version,
                "device": {"os": os, "model": null},
                "locale": locale,
            });
            fields.set("context", context.to_string());
        }
        if shape & 8 != 0 {
            fields.set("comment", json!(TEXTS[rng.random_range(0..TEXTS.len())]).to_string());
        }
        if shape & 16 != 0 {
            // Beyond 64 bits and beyond f64 precision: must come out digit for digit.
            let high: u64 = rng.random_range(100_000_000_000..999_999_999_999);
            fields.set("ledger_id", format!("{high}{:018}", rng.random_range(0..u64::MAX / 100)));
            fields.set("ratio", format!("0.{:023}", rng.random_range(0..u64::MAX)));
        }
        if shape & 32 != 0 {
            let flags = json!({"first_time": rng.random_bool(0.2), "beta": rng.random_bool(0.5)});
            fields.set("flags", flags.to_string());
            fields.set("tags", json!(["a", "b", "c"][..rng.random_range(0..4)]).to_string());
        }
    }

    /// An invalid record of class `kind`, built from a valid one where possible.
    fn invalid(&mut self, kind: usize) -> Vec<u8> {
        let mut fields = self.valid_fields();
        let valid = fields.render();
        let mut with = |field: &'static str, raw: &str| {
            fields.set(field, raw.to_owned());
            fields.render()
        };
        match kind {
            0 => valid[..valid.len() / 2].to_vec(),
            1 => b"[1,2,3]".to_vec(),
            2 => [b"\xEF\xBB\xBF".as_slice(), &valid].concat(),
            3 => [b"\xFF".as_slice(), &valid].concat(),
            4 => [valid.as_slice(), b" {}"].concat(),
            5 => with("note", r#""\ud800""#),
            6 => [&valid[..valid.len() - 1], br#","user_id":"again"}"#.as_slice()].concat(),
            7 => fields.without("event_uuid"),
            8 => fields.without("event_name"),
            9 => fields.without("created_at"),
            10 => with("created_at", r#""1710689696""#),
            11 => with("event_uuid", r#""not-a-uuid""#),
            12 => with("event_name", r#""pay ment:order:completed""#),
            13 => with("event_name", r#"":order:completed""#),
            14 => with("event_name", &format!(r#""{}:x""#, "t".repeat(129))),
            15 => with("created_at", "-5"),
            16 => with("created_at", "1710689696123"),
            17 => with("event_name", "17"),
            _ => with("created_at", "NaN"),
        }
    }
}

/// An event under construction: top-level keys in order, each with raw JSON text,
/// so numbers are written exactly as generated.
#[derive(Debug, Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn set(&mut self, key: &'static str, raw: String) {
        match self.0.iter_mut().find(|(existing, _)| *existing == key) {
            Some(entry) => entry.1 = raw,
            None => self.0.push((key, raw)),
        }
    }

    fn without(&mut self, key: &str) -> Vec<u8> {
        self.0.retain(|(existing, _)| *existing != key);
        self.render()
    }

    fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.push(b'{');
        for (index, (key, raw)) in self.0.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(format!("\"{key}\":").as_bytes());
            out.extend_from_slice(raw.as_bytes());
        }
        out.push(b'}');
        out
    }
}

fn kind(index: usize, rng: &mut ChaCha8Rng) -> Kind {
    let domain = DOMAINS[index % DOMAINS.len()];
    // Round 0: the domains; then each qualifier in turn, then the qualifiers again
    // with a number ("partner_order_2"), so every index names a distinct type.
    let event_type = match index / DOMAINS.len() {
        0 => domain.to_owned(),
        round => {
            let qualifier = QUALIFIERS[(round - 1) % QUALIFIERS.len()];
            match (round - 1) / QUALIFIERS.len() {
                0 => format!("{qualifier}_{domain}"),
                cycle => format!("{qualifier}_{domain}_{}", cycle + 1),
            }
        }
    };
    let count = rng.random_range(1..4);
    let subtypes = (0..count).map(|_| ENTITIES[rng.random_range(0..ENTITIES.len())]).collect();
    Kind { event_type, subtypes, shape: rng.random_range(0..64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_asks_for_that_many_distinct_valid_event_types() {
        for types in [1, 100, 350, 351, 5000] {
            let generator = Generator::new(Options { types, ..Options::default() });
            let names: std::collections::BTreeSet<&str> =
                generator.catalog.iter().map(|kind| kind.event_type.as_str()).collect();
            assert_eq!(names.len(), types);
            assert!(names.iter().all(|name| crate::core::event::is_valid_event_type(name)), "{names:?}");
        }
    }
}
