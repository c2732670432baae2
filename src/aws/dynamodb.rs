//! `eventlake tail`'s checkpoints in a DynamoDB table (`--checkpoint
//! dynamodb://TABLE`; Terraform's `tail_checkpoints`): one item per stream and
//! shard, partition key `stream`, sort key `shard`. Every write is conditional
//! on the version the tail last read or wrote, so two tails that share a table
//! never both advance one shard: the second one's write is refused and it stops.
//! Only this module uses the DynamoDB SDK (the command line's).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use crate::shards::{Checkpoint, Position, StreamStart};

/// The table's partition key: the stream's name or ARN as the tail was given it.
pub const STREAM_KEY: &str = "stream";
/// The table's sort key: a shard id, or [`START_ITEM`].
pub const SHARD_KEY: &str = "shard";
/// The item that holds the stream's start (Kinesis shard ids never begin with `#`).
const START_ITEM: &str = "#start";

/// Why the checkpoint table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointTableError {
    /// Another tail wrote the item since this one read it.
    #[error("another tail advanced the checkpoint of {stream} {item} in DynamoDB table {table} since this one read it; two tails on one checkpoint would both write the same events: stop the other, or give each its own table")]
    Conflict { table: String, stream: String, item: String },
    /// An item does not hold what a checkpoint holds.
    #[error("DynamoDB table {table}: item {stream} {item} is not a tail checkpoint: {reason}")]
    Malformed { table: String, stream: String, item: String, reason: String },
    /// The call failed (missing table, denied access, throttling past the retries).
    #[error("DynamoDB table {table}: {message}")]
    Call { table: String, message: String },
}

/// A stream's checkpoint in one table, with the versions of its items.
pub struct CheckpointTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Each item's version as this tail last read or wrote it.
    versions: HashMap<String, i64>,
    /// This tail's random id, written into every item it writes: a retry that
    /// meets an item tells this tail's write from another's by it.
    writer: String,
}

impl CheckpointTable {
    pub fn new(config: &crate::aws::SdkConfig, table: impl Into<String>) -> Self {
        let mut id = [0u8; 8];
        // Without the system's randomness, the clock and the process: ids need only differ between tails.
        if getrandom::fill(&mut id).is_err() {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            id = (nanos.as_nanos() as u64 ^ u64::from(std::process::id()) << 32).to_le_bytes();
        }
        CheckpointTable {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
            versions: HashMap::new(),
            writer: id.iter().map(|byte| format!("{byte:02x}")).collect(),
        }
    }

    /// The stream's checkpoint, if the table holds one.
    pub async fn load(&mut self, stream: &str) -> Result<Option<Checkpoint>, CheckpointTableError> {
        let mut start = None;
        let mut shards = BTreeMap::new();
        let mut next: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#stream = :stream")
                .expression_attribute_names("#stream", STREAM_KEY)
                .expression_attribute_values(":stream", AttributeValue::S(stream.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(next.take())
                .send()
                .await
                .map_err(|error| self.call_error("Query", error))?;
            for item in output.items() {
                let shard = string(item, SHARD_KEY).unwrap_or_default().to_owned();
                let malformed = |reason: &str| CheckpointTableError::Malformed {
                    table: self.table.clone(),
                    stream: stream.to_owned(),
                    item: shard.clone(),
                    reason: reason.to_owned(),
                };
                let version = number(item, "version").ok_or_else(|| malformed("no version"))?;
                if shard == START_ITEM {
                    let text = string(item, "start").ok_or_else(|| malformed("no start"))?;
                    start = Some(
                        serde_json::from_str::<StreamStart>(text)
                            .map_err(|error| malformed(&error.to_string()))?,
                    );
                } else {
                    let after = string(item, "after").map(str::to_owned);
                    let finished = matches!(item.get("finished"), Some(AttributeValue::Bool(true)));
                    shards.insert(shard.clone(), Position { after, finished });
                }
                self.versions.insert(shard, version);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => next = Some(key.clone()),
                _ => break,
            }
        }
        Ok(start.map(|start| Checkpoint { stream: stream.to_owned(), start, shards }))
    }

    /// Writes the stream's start (once) and the positions of `changed` shards,
    /// each only if no other tail wrote it since; deletes those `forgotten`.
    pub async fn save(
        &mut self,
        checkpoint: &Checkpoint,
        changed: &[String],
        forgotten: &[String],
    ) -> Result<(), CheckpointTableError> {
        if !self.versions.contains_key(START_ITEM) {
            let start = serde_json::to_string(&checkpoint.start).unwrap_or_default();
            self.put(&checkpoint.stream, START_ITEM, [("start", AttributeValue::S(start))].into()).await?;
        }
        for shard in changed {
            let Some(position) = checkpoint.shards.get(shard) else { continue };
            let mut attributes = HashMap::new();
            if let Some(after) = &position.after {
                attributes.insert("after", AttributeValue::S(after.clone()));
            }
            if position.finished {
                attributes.insert("finished", AttributeValue::Bool(true));
            }
            self.put(&checkpoint.stream, shard, attributes).await?;
        }
        for shard in forgotten {
            let Some(version) = self.versions.get(shard).copied() else { continue };
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(&checkpoint.stream, shard)))
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", AttributeValue::N(version.to_string()))
                .send()
                .await
                .map_err(|error| self.write_error("DeleteItem", &checkpoint.stream, shard, error))?;
            self.versions.remove(shard);
        }
        Ok(())
    }

    /// Puts one item at the next version, if it is still at the version this tail knows.
    async fn put(
        &mut self,
        stream: &str,
        shard: &str,
        attributes: HashMap<&str, AttributeValue>,
    ) -> Result<(), CheckpointTableError> {
        let known = self.versions.get(shard).copied();
        let version = known.unwrap_or(0) + 1;
        let mut item = key(stream, shard);
        item.insert("version".to_owned(), AttributeValue::N(version.to_string()));
        item.insert("writer".to_owned(), AttributeValue::S(self.writer.clone()));
        item.extend(attributes.into_iter().map(|(name, value)| (name.to_owned(), value)));
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item.clone()));
        let request = match known {
            None => request
                .condition_expression("attribute_not_exists(#shard)")
                .expression_attribute_names("#shard", SHARD_KEY),
            Some(known) => request
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", AttributeValue::N(known.to_string())),
        };
        let sent = request.send().await.map_err(|error| self.write_error("PutItem", stream, shard, error));
        match sent {
            Ok(_) => {}
            // The SDK retries a call whose answer was lost: if the first attempt
            // wrote the item, the retry's condition fails on our own write.
            Err(CheckpointTableError::Conflict { .. }) if self.holds(stream, shard, &item).await? => {}
            Err(error) => return Err(error),
        }
        self.versions.insert(shard.to_owned(), version);
        Ok(())
    }

    /// Whether the table holds exactly `item` (read consistently).
    async fn holds(
        &self,
        stream: &str,
        shard: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<bool, CheckpointTableError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(stream, shard)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| self.call_error("GetItem", error))?;
        Ok(output.item() == Some(item))
    }

    fn write_error<E, R>(
        &self,
        call: &str,
        stream: &str,
        shard: &str,
        error: SdkError<E, R>,
    ) -> CheckpointTableError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match &error {
            SdkError::ServiceError(service)
                if service.err().code() == Some("ConditionalCheckFailedException") =>
            {
                CheckpointTableError::Conflict {
                    table: self.table.clone(),
                    stream: stream.to_owned(),
                    item: shard.to_owned(),
                }
            }
            _ => self.call_error(call, error),
        }
    }

    fn call_error<E, R>(&self, call: &str, error: SdkError<E, R>) -> CheckpointTableError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        CheckpointTableError::Call {
            table: self.table.clone(),
            message: format!("{call}: {}", DisplayErrorContext(&error)),
        }
    }
}

fn key(stream: &str, shard: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (STREAM_KEY.to_owned(), AttributeValue::S(stream.to_owned())),
        (SHARD_KEY.to_owned(), AttributeValue::S(shard.to_owned())),
    ])
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}
