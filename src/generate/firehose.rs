//! Sample records wrapped as Firehose transformation requests.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::Sample;

/// Groups records into Firehose transformation requests the way Firehose's default
/// 1 MB processor buffer does, each rendered as one JSON line.
pub struct FirehoseBatcher {
    rng: ChaCha8Rng,
    buffer_bytes: usize,
    records: Vec<serde_json::Value>,
    pending_bytes: usize,
    sequence: u64,
}

impl FirehoseBatcher {
    /// Batches of at most `buffer_bytes` of record data (Firehose's `BufferSizeInMBs`).
    pub fn new(seed: u64, buffer_bytes: usize) -> Self {
        FirehoseBatcher {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f12e),
            buffer_bytes,
            records: Vec::new(),
            pending_bytes: 0,
            sequence: 0,
        }
    }

    /// Adds a record; returns a full request when this record did not fit.
    pub fn push(&mut self, sample: &Sample) -> Option<String> {
        let record = &sample.data;
        let full = (!self.records.is_empty() && self.pending_bytes + record.len() > self.buffer_bytes)
            .then(|| self.finish())
            .flatten();
        self.sequence += 1;
        let arrival: i64 = 1_710_689_700_000 + self.sequence as i64;
        let data = if sample.not_base64 {
            "not base64!".to_owned()
        } else {
            base64_simd::STANDARD.encode_to_string(record)
        };
        self.records.push(json!({
            "recordId": format!("49546986683135544286507457936321625675700192471156785154{:010}", self.sequence),
            "approximateArrivalTimestamp": arrival,
            "data": data,
            "kinesisRecordMetadata": {
                "shardId": "shardId-000000000000",
                "partitionKey": format!("{:08x}", self.rng.random::<u32>()),
                "approximateArrivalTimestamp": arrival,
                "sequenceNumber": format!("4954698668313554428650745793632162567570019247115678{:04}", self.sequence % 10_000),
                "subsequenceNumber": 0,
            },
        }));
        self.pending_bytes += record.len();
        full
    }

    /// The last, partly filled request, if any records are pending.
    pub fn finish(&mut self) -> Option<String> {
        if self.records.is_empty() {
            return None;
        }
        let invocation_id = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let request = json!({
            "invocationId": invocation_id.to_string(),
            "deliveryStreamArn": "arn:aws:firehose:local:000000000000:deliverystream/eventlake-local",
            "sourceKinesisStreamArn": "arn:aws:kinesis:local:000000000000:stream/eventlake-local",
            "region": "local",
            "records": std::mem::take(&mut self.records),
        });
        self.pending_bytes = 0;
        Some(request.to_string())
    }
}
