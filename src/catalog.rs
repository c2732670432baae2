//! The Glue Data Catalog: the lake's partitions registered in the `events` table as
//! they appear, so Athena sees new data without `MSCK REPAIR TABLE`. Only this
//! module talks to Glue.
//!
//! A partition is created with the table's own storage descriptor (format, SerDe,
//! columns) and the partition's location, in `BatchCreatePartition` calls of at most
//! 100. A partition that already exists is a success; one Glue refuses for another
//! reason is retried with backoff and, if it is still refused, reported as an error
//! so the caller fails and the notification is retried. Nothing is skipped silently.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_glue::error::DisplayErrorContext;
use aws_sdk_glue::types::{PartitionInput, StorageDescriptor};
/// The Glue client type, for callers that build a [`Catalog`] (only this module
/// depends on the SDK crate directly).
pub use aws_sdk_glue::Client as GlueClient;

use crate::core::partition::Partition;

/// `BatchCreatePartition` accepts at most 100 partitions per call.
const BATCH_SIZE: usize = 100;
/// `BatchGetPartition` accepts at most 1,000 partitions per call.
const GET_BATCH_SIZE: usize = 1000;
/// The partition parameters that name the location a compaction switched the
/// partition away from, and when (Unix milliseconds), until that location's files
/// are deleted after the grace period ([`crate::compaction`]).
pub const SUPERSEDED_PARAMETER: &str = "eventlake_superseded_location";
pub const SUPERSEDED_AT_PARAMETER: &str = "eventlake_superseded_at";
/// Attempts for partitions Glue refuses inside a successful call (the SDK already
/// retries whole calls that fail with throttling or server errors).
const ATTEMPTS: u32 = 4;
/// Backoff before the second attempt; doubled for each attempt after it.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const ALREADY_EXISTS: &str = "AlreadyExistsException";

/// A catalog failure: the partitions named were not all registered.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A Glue call failed after the SDK's retries.
    #[error("Glue {operation} on {table}: {message}")]
    Glue { operation: &'static str, table: String, message: String },
    /// The table has no storage location to derive partition locations from.
    #[error("Glue table {table} has no storage location; create it with terraform/ or athena/ddl/")]
    NoLocation { table: String },
    /// The table does not sit on the lake being repaired.
    #[error("Glue table {table} is located at {table_location}, not at the lake's {expected}")]
    WrongLocation { table: String, table_location: String, expected: String },
    /// The partition is not in the table.
    #[error("Glue table {table} has no partition {partition}")]
    NoPartition { table: String, partition: String },
    /// The partition's location changed since it was read: another compaction ran.
    #[error(
        "partition {partition} of {table} is now at {found}, not {expected}: did another compaction run?"
    )]
    Moved { table: String, partition: String, expected: String, found: String },
    /// Glue still refused some partitions after every attempt.
    #[error("Glue refused {count} partition(s) of {table} after {ATTEMPTS} attempts; first: {first}")]
    Refused { table: String, count: usize, first: String },
}

/// A view to create in the catalog ([`Catalog::put_view`]).
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub name: String,
    pub description: String,
    /// Its SELECT, in Athena's SQL.
    pub select_sql: String,
    pub columns: Vec<ViewColumn>,
}

/// A view's column: its name, its type as Athena (Trino) names it in the view
/// definition, and as Glue (Hive) names it in the table's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewColumn {
    pub name: String,
    pub trino_type: String,
    pub hive_type: String,
}

/// The Glue client of `config` (see [`crate::aws::load_config`]).
pub fn glue_client(config: &crate::aws::SdkConfig) -> GlueClient {
    GlueClient::new(config)
}

/// What a registration did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// Partitions created by this call.
    pub created: usize,
    /// Partitions that were already in the table (counted as success).
    pub existing: usize,
}

impl std::ops::AddAssign for Registration {
    fn add_assign(&mut self, other: Self) {
        self.created += other.created;
        self.existing += other.existing;
    }
}

/// One partition Glue did not create, with Glue's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub values: Vec<String>,
    pub code: String,
    pub message: String,
}

/// The `events` table of a Glue database.
pub struct Catalog {
    client: GlueClient,
    database: String,
    table: String,
    /// Partitions this process has registered: a warm Lambda container skips them.
    registered: Mutex<HashSet<Partition>>,
}

impl Catalog {
    pub fn new(client: GlueClient, database: impl Into<String>, table: impl Into<String>) -> Self {
        Catalog { client, database: database.into(), table: table.into(), registered: Mutex::default() }
    }

    /// `database.table`, for messages.
    pub fn name(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }

    fn error(&self, operation: &'static str, error: impl std::error::Error) -> CatalogError {
        CatalogError::Glue { operation, table: self.name(), message: DisplayErrorContext(error).to_string() }
    }

    /// Creates the view `view` in the table's database, or replaces it: a Glue
    /// `VIRTUAL_VIEW` as Athena stores a view it creates (its Trino definition,
    /// base64 JSON, in the original text; its columns with Hive types).
    pub async fn put_view(&self, view: &View) -> Result<(), CatalogError> {
        use aws_sdk_glue::types::{Column, SerDeInfo, TableInput};
        let definition = serde_json::json!({
            "originalSql": view.select_sql,
            "catalog": "awsdatacatalog",
            "schema": self.database,
            "columns": view.columns.iter().map(|c| serde_json::json!({"name": c.name, "type": c.trino_type})).collect::<Vec<_>>(),
        });
        let encoded = base64_simd::STANDARD.encode_to_string(definition.to_string());
        let columns = view
            .columns
            .iter()
            .map(|c| Column::builder().name(&c.name).r#type(&c.hive_type).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("CreateTable", e))?;
        let descriptor = StorageDescriptor::builder()
            .set_columns(Some(columns))
            .serde_info(SerDeInfo::builder().name("-").serialization_library("-").build())
            .build();
        let input = TableInput::builder()
            .name(&view.name)
            .description(&view.description)
            .table_type("VIRTUAL_VIEW")
            .view_original_text(format!("/* Presto View: {encoded} */"))
            .view_expanded_text("/* Presto View */")
            .parameters("presto_view", "true")
            .parameters("comment", "Presto View")
            .storage_descriptor(descriptor)
            .build()
            .map_err(|e| self.error("CreateTable", e))?;
        let created =
            self.client.create_table().database_name(&self.database).table_input(input.clone()).send().await;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_already_exists_exception()) => {
                self.client
                    .update_table()
                    .database_name(&self.database)
                    .table_input(input)
                    .send()
                    .await
                    .map_err(|e| self.error("UpdateTable", e))?;
                Ok(())
            }
            Err(error) => Err(self.error("CreateTable", error)),
        }
    }

    /// Registers `partitions` (those this process has not registered before).
    pub async fn register(&self, partitions: &[Partition]) -> Result<Registration, CatalogError> {
        let fresh: Vec<&Partition> = {
            let registered = self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut fresh: Vec<&Partition> = partitions.iter().filter(|p| !registered.contains(p)).collect();
            fresh.sort();
            fresh.dedup();
            fresh
        };
        if fresh.is_empty() {
            return Ok(Registration::default());
        }
        let template = self.table_descriptor().await?;
        let mut total = Registration::default();
        for chunk in fresh.chunks(BATCH_SIZE) {
            total += retry_refused(&self.name(), chunk, FIRST_BACKOFF, |pending| {
                let template = &template;
                async move { self.create_batch(template, &pending).await }
            })
            .await?;
            let mut registered = self.registered.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            registered.extend(chunk.iter().map(|&p| p.clone()));
        }
        Ok(total)
    }

    /// The table's storage descriptor, the template of every partition's.
    async fn table_descriptor(&self) -> Result<StorageDescriptor, CatalogError> {
        let output = self
            .client
            .get_table()
            .database_name(&self.database)
            .name(&self.table)
            .send()
            .await
            .map_err(|e| self.error("GetTable", e))?;
        output
            .table
            .and_then(|table| table.storage_descriptor)
            .filter(|descriptor| descriptor.location.as_deref().is_some_and(|l| !l.is_empty()))
            .ok_or_else(|| CatalogError::NoLocation { table: self.name() })
    }

    /// The table's location (`s3://bucket/prefix/events/`).
    pub async fn table_location(&self) -> Result<String, CatalogError> {
        Ok(self.table_descriptor().await?.location.unwrap_or_default())
    }

    /// One `BatchCreatePartition` call; returns the partitions Glue refused.
    async fn create_batch(
        &self,
        template: &StorageDescriptor,
        partitions: &[&Partition],
    ) -> Result<Vec<Refusal>, CatalogError> {
        let table_location = template.location.as_deref().unwrap_or_default();
        let inputs = partitions
            .iter()
            .map(|partition| {
                let mut descriptor = template.clone();
                descriptor.location = Some(partition_location(table_location, partition));
                PartitionInput::builder()
                    .set_values(Some(partition.values()))
                    .storage_descriptor(descriptor)
                    .build()
            })
            .collect();
        let output = self
            .client
            .batch_create_partition()
            .database_name(&self.database)
            .table_name(&self.table)
            .set_partition_input_list(Some(inputs))
            .send()
            .await
            .map_err(|e| self.error("BatchCreatePartition", e))?;
        Ok(output
            .errors()
            .iter()
            .map(|error| {
                let detail = error.error_detail();
                Refusal {
                    values: error.partition_values().to_vec(),
                    code: detail.and_then(|d| d.error_code()).unwrap_or("UnknownError").to_owned(),
                    message: detail.and_then(|d| d.error_message()).unwrap_or_default().to_owned(),
                }
            })
            .collect())
    }

    /// The partition values (`[event_type, created_date]`) the table has.
    pub async fn existing_partitions(&self) -> Result<HashSet<Vec<String>>, CatalogError> {
        let mut existing = HashSet::new();
        self.each_partition(|p| {
            existing.insert(p.values().to_vec());
        })
        .await?;
        Ok(existing)
    }

    /// Calls `visit` with every partition of the table (`GetPartitions`, paged).
    async fn each_partition(
        &self,
        mut visit: impl FnMut(&aws_sdk_glue::types::Partition),
    ) -> Result<(), CatalogError> {
        let mut pages = self
            .client
            .get_partitions()
            .database_name(&self.database)
            .table_name(&self.table)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("GetPartitions", e))?;
            page.partitions().iter().for_each(&mut visit);
        }
        Ok(())
    }
}

/// A Glue partition of the lake: where its files are, and the location a
/// compaction switched it away from (and when), until that location's files are
/// deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLocation {
    pub partition: Partition,
    pub location: String,
    pub superseded: Option<Superseded>,
}

/// A location a compaction switched a partition away from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superseded {
    pub location: String,
    /// When the switch happened, Unix milliseconds (0 if the record is unreadable:
    /// its grace period is over).
    pub at_millis: i64,
}

impl Catalog {
    /// The locations of those of `partitions` the table has (`BatchGetPartition`,
    /// 1,000 a call; the keys Glue leaves unprocessed are asked again).
    pub async fn locations(
        &self,
        partitions: &[Partition],
    ) -> Result<HashMap<Partition, String>, CatalogError> {
        let found =
            get_in_batches(&self.name(), partitions, FIRST_BACKOFF, |batch| self.get_batch(batch)).await?;
        Ok(found.into_iter().map(|found| (found.partition, found.location)).collect())
    }

    /// One `BatchGetPartition` call: the partitions found, and the keys Glue left
    /// unprocessed.
    async fn get_batch(
        &self,
        batch: Vec<Vec<String>>,
    ) -> Result<(Vec<PartitionLocation>, Vec<Vec<String>>), CatalogError> {
        let keys = batch
            .into_iter()
            .map(|values| aws_sdk_glue::types::PartitionValueList::builder().set_values(Some(values)).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("BatchGetPartition", e))?;
        let output = self
            .client
            .batch_get_partition()
            .database_name(&self.database)
            .table_name(&self.table)
            .set_partitions_to_get(Some(keys))
            .send()
            .await
            .map_err(|e| self.error("BatchGetPartition", e))?;
        let found = output.partitions().iter().filter_map(|p| self.read_partition(p)).collect();
        let unprocessed = output.unprocessed_keys().iter().map(|key| key.values().to_vec()).collect();
        Ok((found, unprocessed))
    }

    /// Every partition of the table with its location (`GetPartitions`, paged).
    /// Partitions whose values the writer would not have made are skipped.
    pub async fn partition_locations(&self) -> Result<Vec<PartitionLocation>, CatalogError> {
        let mut found = Vec::new();
        self.each_partition(|p| found.extend(self.read_partition(p))).await?;
        found.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(found)
    }

    fn read_partition(&self, glue_partition: &aws_sdk_glue::types::Partition) -> Option<PartitionLocation> {
        let [event_type, created_date] = glue_partition.values() else { return None };
        let [event_type_key, created_date_key] = crate::core::partition::KEYS;
        let partition = Partition::from_directories(
            &format!("{event_type_key}={event_type}"),
            &format!("{created_date_key}={created_date}"),
        )?;
        let location = glue_partition.storage_descriptor()?.location()?.to_owned();
        let parameters = glue_partition.parameters();
        let superseded = parameters.and_then(|p| p.get(SUPERSEDED_PARAMETER)).map(|location| Superseded {
            location: location.clone(),
            at_millis: parameters
                .and_then(|p| p.get(SUPERSEDED_AT_PARAMETER))
                .and_then(|at| at.parse().ok())
                .unwrap_or(0),
        });
        Some(PartitionLocation { partition, location, superseded })
    }

    /// Points `partition` at `to` in one `UpdatePartition`, provided it is still
    /// at `from`, and records `from` as superseded at `at_millis`
    /// ([`SUPERSEDED_PARAMETER`], [`SUPERSEDED_AT_PARAMETER`]). Athena plans each
    /// query from one read of the partition: it reads the files of `from` or those
    /// of `to`, never both.
    pub async fn switch_location(
        &self,
        partition: &Partition,
        from: &str,
        to: &str,
        at_millis: i64,
    ) -> Result<(), CatalogError> {
        self.update_partition(partition, from, |descriptor, parameters| {
            descriptor.location = Some(to.to_owned());
            parameters.insert(SUPERSEDED_PARAMETER.to_owned(), from.to_owned());
            parameters.insert(SUPERSEDED_AT_PARAMETER.to_owned(), at_millis.to_string());
        })
        .await
    }

    /// Removes the superseded location recorded on `partition` (at `location`),
    /// once its files are deleted.
    pub async fn forget_superseded(&self, partition: &Partition, location: &str) -> Result<(), CatalogError> {
        self.update_partition(partition, location, |_, parameters| {
            parameters.remove(SUPERSEDED_PARAMETER);
            parameters.remove(SUPERSEDED_AT_PARAMETER);
        })
        .await
    }

    async fn update_partition(
        &self,
        partition: &Partition,
        expected_location: &str,
        change: impl FnOnce(&mut StorageDescriptor, &mut HashMap<String, String>),
    ) -> Result<(), CatalogError> {
        let output = self
            .client
            .get_partition()
            .database_name(&self.database)
            .table_name(&self.table)
            .set_partition_values(Some(partition.values()))
            .send()
            .await
            .map_err(|e| self.error("GetPartition", e))?;
        let no_partition =
            || CatalogError::NoPartition { table: self.name(), partition: partition.to_string() };
        let current = output.partition.ok_or_else(no_partition)?;
        let mut descriptor = current.storage_descriptor.clone().ok_or_else(no_partition)?;
        let found = descriptor.location.clone().unwrap_or_default();
        if found != expected_location {
            return Err(CatalogError::Moved {
                table: self.name(),
                partition: partition.to_string(),
                expected: expected_location.to_owned(),
                found,
            });
        }
        let mut parameters = current.parameters.clone().unwrap_or_default();
        change(&mut descriptor, &mut parameters);
        let input = PartitionInput::builder()
            .set_values(Some(partition.values()))
            .storage_descriptor(descriptor)
            .set_parameters(Some(parameters))
            .build();
        self.client
            .update_partition()
            .database_name(&self.database)
            .table_name(&self.table)
            .set_partition_value_list(Some(partition.values()))
            .partition_input(input)
            .send()
            .await
            .map_err(|e| self.error("UpdatePartition", e))?;
        Ok(())
    }
}

/// The partition's location under the table's location (the lake's `events/`).
pub fn partition_location(table_location: &str, partition: &Partition) -> String {
    format!("{}/{partition}/", table_location.trim_end_matches('/'))
}

/// Runs `attempt` on `partitions`, then again on the ones refused for a reason
/// other than "already exists", up to [`ATTEMPTS`] times, waiting `first_backoff`
/// before the first retry and twice as long before each next one.
async fn retry_refused<'p, F, Fut>(
    table: &str,
    partitions: &[&'p Partition],
    first_backoff: Duration,
    mut attempt: F,
) -> Result<Registration, CatalogError>
where
    F: FnMut(Vec<&'p Partition>) -> Fut,
    Fut: Future<Output = Result<Vec<Refusal>, CatalogError>>,
{
    let mut registration = Registration::default();
    let mut pending: Vec<&Partition> = partitions.to_vec();
    let mut backoff = first_backoff;
    for number in 1..=ATTEMPTS {
        let refusals = attempt(pending.clone()).await?;
        let (existing, refused): (Vec<Refusal>, Vec<Refusal>) =
            refusals.into_iter().partition(|r| r.code == ALREADY_EXISTS);
        registration.existing += existing.len();
        let is_refused = |p: &&Partition| refused.iter().any(|r| r.values == p.values());
        registration.created += pending.iter().filter(|p| !is_refused(p)).count() - existing.len();
        pending.retain(is_refused);
        let Some(last) = refused.last() else { return Ok(registration) };
        let first = format!("{:?}: {} {}", last.values, last.code, last.message);
        if number == ATTEMPTS {
            return Err(CatalogError::Refused { table: table.to_owned(), count: pending.len(), first });
        }
        tracing::warn!(attempt = number, refused = pending.len(), first = %first, "Glue refused partitions; retrying");
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    Ok(registration)
}

/// Runs `get` on the values of `partitions` in batches of at most
/// [`GET_BATCH_SIZE`] (`BatchGetPartition`'s limit), then again on the keys Glue
/// left unprocessed, up to [`ATTEMPTS`] rounds, waiting `first_backoff` before
/// the second and twice as long before each next one.
async fn get_in_batches<F, Fut>(
    table: &str,
    partitions: &[Partition],
    first_backoff: Duration,
    mut get: F,
) -> Result<Vec<PartitionLocation>, CatalogError>
where
    F: FnMut(Vec<Vec<String>>) -> Fut,
    Fut: Future<Output = Result<(Vec<PartitionLocation>, Vec<Vec<String>>), CatalogError>>,
{
    let mut pending: Vec<Vec<String>> = partitions.iter().map(Partition::values).collect();
    pending.sort();
    pending.dedup();
    let mut found = Vec::new();
    let mut backoff = first_backoff;
    for round in 1..=ATTEMPTS {
        let mut unprocessed = Vec::new();
        for batch in pending.chunks(GET_BATCH_SIZE) {
            let (got, left) = get(batch.to_vec()).await?;
            found.extend(got);
            unprocessed.extend(left);
        }
        if unprocessed.is_empty() {
            return Ok(found);
        }
        if round == ATTEMPTS {
            let first = format!("{:?}: left unprocessed by BatchGetPartition", unprocessed[0]);
            return Err(CatalogError::Refused { table: table.to_owned(), count: unprocessed.len(), first });
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        pending = unprocessed;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(event_type: &str) -> Partition {
        Partition::from_directories(&format!("event_type={event_type}"), "created_date=2024-03-17").unwrap()
    }

    fn refusal(p: &Partition, code: &str) -> Refusal {
        Refusal { values: p.values(), code: code.into(), message: "no".into() }
    }

    #[test]
    fn locations_sit_under_the_table_location() {
        let p = partition("payment");
        for table in ["s3://b/lake/events/", "s3://b/lake/events"] {
            assert_eq!(
                partition_location(table, &p),
                "s3://b/lake/events/event_type=payment/created_date=2024-03-17/"
            );
        }
    }

    #[tokio::test]
    async fn already_existing_counts_as_success_and_refusals_are_retried() {
        let (a, b, c) = (partition("a"), partition("b"), partition("c"));
        let mut calls = Vec::new();
        let result = retry_refused("db.t", &[&a, &b, &c], Duration::ZERO, |pending| {
            calls.push(pending.iter().map(|p| p.event_type.clone()).collect::<Vec<_>>());
            let refusals = match calls.len() {
                1 => vec![refusal(&a, ALREADY_EXISTS), refusal(&b, "InternalServiceException")],
                _ => vec![],
            };
            async move { Ok(refusals) }
        })
        .await;
        assert_eq!(result.unwrap(), Registration { created: 2, existing: 1 });
        assert_eq!(calls, [vec!["a", "b", "c"], vec!["b"]]);
    }

    #[tokio::test]
    async fn partitions_are_read_a_thousand_at_most_and_unprocessed_keys_again() {
        let partitions: Vec<Partition> = (0..2500).map(|n| partition(&format!("t{n}"))).collect();
        let mut calls: Vec<usize> = Vec::new();
        let found = get_in_batches("db.t", &partitions, Duration::ZERO, |batch| {
            calls.push(batch.len());
            // The first call leaves its last 10 keys unprocessed.
            let left = if calls.len() == 1 { batch[batch.len() - 10..].to_vec() } else { Vec::new() };
            let got = batch[..batch.len() - left.len()]
                .iter()
                .map(|values| PartitionLocation {
                    partition: partition(&values[0]),
                    location: format!("s3://b/{}", values[0]),
                    superseded: None,
                })
                .collect();
            async move { Ok((got, left)) }
        })
        .await
        .unwrap();
        assert_eq!(calls, [1000, 1000, 500, 10]);
        assert_eq!(found.len(), 2500);

        let mut rounds = 0;
        let error = get_in_batches("db.t", &partitions[..3], Duration::ZERO, |batch| {
            rounds += 1;
            async move { Ok((Vec::new(), batch)) }
        })
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(rounds, ATTEMPTS);
        assert!(error.starts_with("Glue refused 3 partition(s) of db.t"), "{error}");
    }

    #[tokio::test]
    async fn partitions_refused_every_time_are_reported() {
        let (a, b) = (partition("a"), partition("b"));
        let mut calls = 0;
        let result = retry_refused("db.t", &[&a, &b], Duration::ZERO, |_| {
            calls += 1;
            let refusals = vec![refusal(&b, "ResourceNumberLimitExceededException")];
            async move { Ok(refusals) }
        })
        .await;
        let error = result.unwrap_err().to_string();
        assert_eq!(calls, ATTEMPTS);
        assert!(error.starts_with("Glue refused 1 partition(s) of db.t after 4 attempts"), "{error}");
        assert!(error.contains("ResourceNumberLimitExceededException"), "{error}");
    }
}
