//! The `parquet-writer` Lambda's work: S3 notifications for objects Firehose staged
//! (through SQS, or sent directly), each object turned into Parquet by the lake
//! writer.
//!
//! Each staged object is one run of the writer: its rows are deduped within the
//! object, its output names derive from its bucket, key and the ETag of the version
//! read, so a retried or replayed notification (even one of a version since
//! replaced) overwrites the files of what it reads. Through SQS, a message that fails
//! is reported in `batchItemFailures` and retried alone, reaching the DLQ after the
//! queue's `maxReceiveCount`; its neighbours are not retried.
//!
//! After its files are written, the partitions an object touched are registered in
//! the Glue table; a registration failure fails the object, so the retry rewrites
//! the same files and registers again. Then the staged object is tagged
//! [`WRITTEN_TAG`]: the bucket's lifecycle rule expires only tagged objects, so
//! nothing that waits for a retry or a redrive can expire first.
//!
//! An invocation stops taking objects when less time remains than one object may
//! need ([`Config::seconds_per_object`]): the rest are reported as batch item
//! failures and come back from SQS, instead of the whole batch timing out.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;

use crate::aws::s3::{S3Client, S3Store};
use crate::catalog::{Catalog, CatalogError};
use crate::compaction;
use crate::core::event::MAX_ENRICHED_BYTES;
use crate::lake::ndjson::{self, IngestError};
use crate::lake::storage::StorageError;
use crate::lake::writer::{LakeWriter, Limits, SourceId, Summary};
use crate::telemetry;

/// A problem with the whole invocation's configuration or payload.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A required environment variable is missing or empty.
    #[error("environment variable {0} must be set")]
    MissingSetting(&'static str),
    /// The payload is neither an SQS nor an S3 event.
    #[error("payload is neither an SQS event nor an S3 event: {0}")]
    UnknownPayload(String),
    /// A setting has a value the writer cannot use.
    #[error("environment variable {name}: {why}, got {value:?}")]
    BadSetting { name: &'static str, value: String, why: &'static str },
    /// A direct S3 event had objects that failed (Lambda retries the event).
    #[error("{failed} of {total} objects failed; first: {first}")]
    ObjectsFailed { failed: usize, total: usize, first: String },
}

/// Why one staged object could not be turned into Parquet.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("message body is not an S3 event: {0}")]
    NotAnS3Event(serde_json::Error),
    #[error("S3 record has no {0}")]
    MissingField(&'static str),
    #[error("object key is not valid URL encoding: {0}")]
    BadKey(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("files written, partitions not registered")]
    Catalog(#[from] CatalogError),
    #[error("files written, not yet moved to their compacted partition")]
    Settle(#[from] compaction::CompactorError),
}

impl ObjectError {
    /// A stable name for metrics and alarms (the `Reason` dimension).
    pub fn code(&self) -> &'static str {
        match self {
            ObjectError::NotAnS3Event(_) => "not_an_s3_event",
            ObjectError::MissingField(_) => "missing_field",
            ObjectError::BadKey(_) => "bad_key",
            ObjectError::Storage(_) => "storage",
            ObjectError::Ingest(IngestError::Read { .. }) => "unreadable_object",
            ObjectError::Ingest(IngestError::Lake(_)) => "lake_write",
            ObjectError::Catalog(_) => "catalog",
            ObjectError::Settle(_) => "settle",
        }
    }
}

/// The tag put on a staged object once its rows are in the lake; the staging
/// lifecycle rule expires only objects that carry it (`terraform/s3.tf`).
pub const WRITTEN_TAG: (&str, &str) = ("eventlake-written", "true");

/// What one invocation did, for its EMF metrics ([`crate::lambda::metrics::writer_documents`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub objects_written: u64,
    /// Failed objects by [`ObjectError::code`].
    pub objects_failed: BTreeMap<&'static str, u64>,
    /// Messages not started for lack of time, handed back to SQS.
    pub objects_deferred: u64,
    pub rows_written: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Report {
    fn add(&mut self, outcome: &Result<Summary, ObjectError>) {
        match outcome {
            Ok(summary) => {
                self.objects_written += 1;
                self.rows_written += summary.written;
                self.rows_duplicate += summary.duplicates;
                self.rows_rejected += summary.rejected_total();
                self.bytes_in += summary.bytes_in;
                self.bytes_out += summary.bytes_out;
            }
            Err(error) => self.count_failure(error),
        }
    }

    fn count_failure(&mut self, error: &ObjectError) {
        *self.objects_failed.entry(error.code()).or_default() += 1;
    }

    pub fn objects_failed_total(&self) -> u64 {
        self.objects_failed.values().sum()
    }
}

/// An invocation's answer and what it did.
#[derive(Debug)]
pub struct Invocation {
    pub response: Result<Value, HandlerError>,
    pub report: Report,
}

/// Settings, read once per container.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bucket of the lake.
    pub lake_bucket: String,
    /// Prefix of the lake in the bucket (`events/` and `_rejected/` go under it).
    pub lake_prefix: String,
    /// Only objects under this prefix are processed; others are logged and skipped.
    pub staging_prefix: String,
    /// Glue database whose table gets the new partitions; none: no registration.
    pub glue_database: Option<String>,
    /// Glue table of the lake.
    pub glue_table: String,
    pub limits: Limits,
    /// The longest one object may take; an SQS batch stops taking objects when
    /// less than this remains before the function's timeout.
    pub seconds_per_object: Duration,
    /// Store what the rows written hold for the typed views (an observation per
    /// partition, [`crate::views::publish`]): on while the compactor runs, which
    /// folds them.
    pub observe_fields: bool,
}

/// Default of [`Config::seconds_per_object`].
pub const DEFAULT_SECONDS_PER_OBJECT: u64 = 30;

/// The writer's limits: staged records are enriched, longer than the events
/// they came from; a retry writes the same names, so nothing stale is deleted.
fn writer_limits() -> Limits {
    Limits {
        max_record_bytes: MAX_ENRICHED_BYTES,
        delete_stale_files: false,
        workers: Limits::all_cores().min(LAMBDA_MAX_VCPUS),
        ..Limits::default()
    }
}

/// The most vCPUs a Lambda function gets (at 10,240 MB): the writer never runs
/// more workers, so the memory floor Terraform enforces covers their blocks.
const LAMBDA_MAX_VCPUS: usize = 6;

impl Config {
    /// `LAKE_BUCKET` (required), `LAKE_PREFIX` (default empty), `STAGING_PREFIX`
    /// (default `staging/`), `GLUE_DATABASE` (default: no registration),
    /// `GLUE_TABLE` (default `events`), `SECONDS_PER_OBJECT` (default 30),
    /// `OBSERVE_FIELDS` (`true` or `false`, default `true`).
    pub fn from_env() -> Result<Self, HandlerError> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let seconds_per_object = match var("SECONDS_PER_OBJECT") {
            None => DEFAULT_SECONDS_PER_OBJECT,
            Some(text) => text.parse().ok().filter(|&s| s > 0).ok_or(HandlerError::BadSetting {
                name: "SECONDS_PER_OBJECT",
                value: text,
                why: "must be a whole number of seconds above 0",
            })?,
        };
        let observe_fields = match var("OBSERVE_FIELDS").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(HandlerError::BadSetting {
                    name: "OBSERVE_FIELDS",
                    value: other.to_owned(),
                    why: "must be true or false",
                })
            }
        };
        Ok(Config {
            observe_fields,
            seconds_per_object: Duration::from_secs(seconds_per_object),
            lake_bucket: var("LAKE_BUCKET").ok_or(HandlerError::MissingSetting("LAKE_BUCKET"))?,
            lake_prefix: var("LAKE_PREFIX").unwrap_or_default(),
            staging_prefix: var("STAGING_PREFIX").unwrap_or_else(|| "staging/".into()),
            glue_database: var("GLUE_DATABASE"),
            glue_table: var("GLUE_TABLE").unwrap_or_else(|| "events".into()),
            limits: writer_limits(),
        })
    }
}

/// The handler state: built once per container, shared by every invocation.
pub struct Handler {
    client: S3Client,
    config: Config,
    catalog: Option<Catalog>,
}

/// A staged object named by a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    pub bucket: String,
    pub key: String,
}

impl Handler {
    /// `catalog`: where new partitions are registered (see [`Config::glue_database`]).
    pub fn new(client: S3Client, config: Config, catalog: Option<Catalog>) -> Self {
        if catalog.is_none() {
            tracing::warn!("GLUE_DATABASE is not set: new partitions will not be registered in Glue");
        }
        Handler { client, config, catalog }
    }

    /// One invocation with no time limit (tests, direct calls); see [`Handler::invoke`].
    pub async fn invoke_without_deadline(&self, payload: Value) -> Result<Value, HandlerError> {
        self.invoke(payload, || Duration::MAX).await.response
    }

    /// Handles one invocation: an SQS batch (partial failures reported; messages
    /// left when `remaining()` drops below [`Config::seconds_per_object`] are
    /// handed back) or a direct S3 event (any failure fails the invocation).
    pub async fn invoke(&self, payload: Value, remaining: impl Fn() -> Duration) -> Invocation {
        let mut report = Report::default();
        let source = payload["Records"][0]["eventSource"].as_str().unwrap_or_default().to_owned();
        let response = match source.as_str() {
            "aws:sqs" => match serde_json::from_value::<SqsEvent>(payload) {
                Ok(event) => {
                    let response = self.write_sqs_batch(event, &remaining, &mut report).await;
                    Ok(serde_json::to_value(response).unwrap_or_default())
                }
                Err(error) => Err(HandlerError::UnknownPayload(error.to_string())),
            },
            "aws:s3" => self.write_s3_event(&payload.to_string(), &mut report).await,
            other => Err(HandlerError::UnknownPayload(format!("eventSource {other:?}"))),
        };
        Invocation { response, report }
    }

    async fn write_s3_event(&self, body: &str, report: &mut Report) -> Result<Value, HandlerError> {
        let outcomes = self
            .write_notified_objects(body)
            .await
            .map_err(|e| HandlerError::UnknownPayload(e.to_string()))?;
        outcomes.iter().for_each(|outcome| report.add(outcome));
        let total = outcomes.len();
        let failures: Vec<String> =
            outcomes.iter().filter_map(|o| o.as_ref().err()).map(|e| telemetry::error_chain(e)).collect();
        match failures.first() {
            None => Ok(Value::Null),
            Some(first) => {
                Err(HandlerError::ObjectsFailed { failed: failures.len(), total, first: first.clone() })
            }
        }
    }

    /// Processes the messages in order; a message whose objects fail, and every
    /// message not started in time, is reported for retry.
    async fn write_sqs_batch(
        &self,
        event: SqsEvent,
        remaining: &impl Fn() -> Duration,
        report: &mut Report,
    ) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        let mut retry = |id: String| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        };
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            if remaining() < self.config.seconds_per_object {
                report.objects_deferred += 1;
                tracing::warn!(messageId = %id, "too little time left for another object; SQS will deliver it again");
                retry(id);
                continue;
            }
            let body = message.body.as_deref().unwrap_or_default();
            let failed = match self.write_notified_objects(body).await {
                Ok(outcomes) => {
                    outcomes.iter().for_each(|outcome| report.add(outcome));
                    outcomes.into_iter().find_map(Result::err)
                }
                Err(error) => {
                    report.count_failure(&error);
                    Some(error)
                }
            };
            if let Some(error) = failed {
                tracing::error!(messageId = %id, code = error.code(), error = %telemetry::error_chain(&error), "message failed; SQS will retry it");
                retry(id);
            }
        }
        response
    }

    /// Processes the objects of one S3 notification body. `s3:TestEvent` (sent when a
    /// notification is configured) holds no object and is ignored.
    pub async fn write_notified_objects(
        &self,
        body: &str,
    ) -> Result<Vec<Result<Summary, ObjectError>>, ObjectError> {
        if is_test_event(body) {
            tracing::info!("ignoring s3:TestEvent");
            return Ok(Vec::new());
        }
        let notification: Notification = serde_json::from_str(body).map_err(ObjectError::NotAnS3Event)?;
        let mut outcomes = Vec::new();
        for record in notification.records {
            let object = staged_object(record)?;
            outcomes.push(self.process(&object).await);
        }
        Ok(outcomes)
    }

    /// Turns one staged object into Parquet files in the lake.
    pub async fn process(&self, object: &StagedObject) -> Result<Summary, ObjectError> {
        if !object.key.starts_with(&self.config.staging_prefix) {
            tracing::warn!(bucket = %object.bucket, key = %object.key, "object is outside the staging prefix; skipped");
            return Ok(Summary::default());
        }
        let source_store = S3Store::new(self.client.clone(), &object.bucket, "");
        // Output names derive from the version read, not the one notified: a
        // notification of a version since replaced (an object repaired under its
        // key, then its DLQ message redriven) rewrites the current version's files
        // instead of adding a second copy of its rows.
        let staged = source_store.read_object(&object.key).await?;
        let lake = S3Store::new(self.client.clone(), &self.config.lake_bucket, &self.config.lake_prefix);
        let identity = format!("s3://{}/{}@{}", object.bucket, object.key, staged.etag);
        // ingested_at: when Firehose delivered the object, so a retry writes the same rows.
        let delivered = staged.last_modified_millis.unwrap_or_else(telemetry::now_millis);
        let source = SourceId::from_identity(identity.as_bytes());
        let limits = Limits { count_fields: self.config.observe_fields, ..self.config.limits };
        let writer = LakeWriter::new(lake.clone(), source, limits).ingested_at(delivered);
        let body = staged.body;
        let source_name = format!("s3://{}/{}", object.bucket, object.key);
        let (summary, _) = ndjson::load(writer, [(source_name.clone(), Ok(body))], || ()).await?;
        // What the typed views need of the rows written (the compactor folds it).
        if self.config.observe_fields {
            crate::views::publish::observe(&lake, &summary).await?;
        }
        let (registration, settled) = match &self.catalog {
            Some(catalog) => {
                let registration = catalog.register(&summary.touched).await?;
                (registration, compaction::settle(&lake, catalog, &summary.touched, &summary.keys).await?)
            }
            None => Default::default(),
        };
        tracing::info!(
            source = %source_name,
            records = summary.records,
            written = summary.written,
            duplicates = summary.duplicates,
            rejected = summary.rejected_total(),
            files = summary.files,
            partitions_created = registration.created,
            files_moved_to_compacted_partitions = settled,
            "staged object written to the lake"
        );
        // Untagged, the object never expires: safe, so a failure is only logged.
        if let Err(error) = source_store.tag_object(&object.key, WRITTEN_TAG).await {
            tracing::warn!(key = %object.key, error = %telemetry::error_chain(&error), "staged object written but not tagged; it will not expire");
        }
        Ok(summary)
    }
}

fn is_test_event(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|value| value["Event"] == "s3:TestEvent")
}

/// The part of an S3 event notification the writer reads: each record's bucket,
/// key and ETag. Only these are required, so a notification with fewer of the
/// other fields (as emulators send) is still read.
#[derive(serde::Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<NotifiedRecord>,
}

#[derive(serde::Deserialize)]
struct NotifiedRecord {
    s3: Option<NotifiedEntity>,
}

#[derive(serde::Deserialize)]
struct NotifiedEntity {
    bucket: Option<NotifiedBucket>,
    object: Option<NotifiedObject>,
}

#[derive(serde::Deserialize)]
struct NotifiedBucket {
    name: Option<String>,
}

#[derive(serde::Deserialize)]
struct NotifiedObject {
    key: Option<String>,
}

fn staged_object(record: NotifiedRecord) -> Result<StagedObject, ObjectError> {
    let entity = record.s3.ok_or(ObjectError::MissingField("s3"))?;
    let bucket = entity.bucket.and_then(|b| b.name).ok_or(ObjectError::MissingField("bucket name"))?;
    let object = entity.object.ok_or(ObjectError::MissingField("object"))?;
    let key = decode_key(object.key.as_deref().ok_or(ObjectError::MissingField("object key"))?)?;
    Ok(StagedObject { bucket, key })
}

/// Object keys in S3 notifications are URL-encoded with `+` for a space.
pub fn decode_key(raw: &str) -> Result<String, ObjectError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| ObjectError::BadKey(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Terraform refuses a writer memory below the staged object plus a floor;
    /// the floor covers what the writer holds besides: rows and dedupe set, parts
    /// being encoded (their rows, and a record batch of them), blocks of lines
    /// being checked by at most `LAMBDA_MAX_VCPUS` workers (bytes and checked text),
    /// and 64 MiB for the process.
    #[test]
    fn the_memory_floor_covers_the_writers_budgets() {
        let terraform = include_str!("../../terraform/lambda.tf");
        let floor_mib: usize = terraform
            .split("var.writer_memory_mb >= var.firehose_buffer_mb + ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .expect("lambda.tf sets a writer memory floor");
        let limits = writer_limits();
        assert!(limits.workers <= LAMBDA_MAX_VCPUS);
        let blocks = LAMBDA_MAX_VCPUS * 2 * (crate::lake::ndjson::BLOCK_BYTES + limits.max_record_bytes);
        let needed = limits.total_bytes + 2 * limits.total_bytes + blocks + (64 << 20);
        assert!(needed <= floor_mib << 20, "the writer needs {} MiB besides the object", needed >> 20);
    }

    #[test]
    fn keys_are_url_decoded_with_plus_as_space() {
        assert_eq!(
            decode_key("staging/event_type%3Dpayment/created_date%3D2024-03-17/a+b%2Bc.gz").unwrap(),
            "staging/event_type=payment/created_date=2024-03-17/a b+c.gz"
        );
        assert!(decode_key("bad%FF").is_err());
    }

    #[test]
    fn notifications_need_only_bucket_and_key() {
        let body = r#"{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"},"object":{"key":"staging/a+b","eTag":"e"}}}]}"#;
        let notification: Notification = serde_json::from_str(body).unwrap();
        let objects: Vec<StagedObject> =
            notification.records.into_iter().map(|r| staged_object(r).unwrap()).collect();
        assert_eq!(objects, [StagedObject { bucket: "b".into(), key: "staging/a b".into() }]);
        let keyless: Notification =
            serde_json::from_str(r#"{"Records":[{"s3":{"bucket":{"name":"b"},"object":{}}}]}"#).unwrap();
        let error = staged_object(keyless.records.into_iter().next().unwrap()).unwrap_err();
        assert_eq!(error.to_string(), "S3 record has no object key");
    }

    #[test]
    fn test_events_are_recognised() {
        assert!(is_test_event(
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-03-17T00:00:00.000Z","Bucket":"b"}"#
        ));
        assert!(!is_test_event(r#"{"Records":[]}"#));
        assert!(!is_test_event("not json"));
    }
}
