//! Where the lake's objects live: a local directory or an S3 prefix, behind one
//! small trait, so the CLI, the Lambda and the tests run the same writer.
//!
//! Every write is whole or nothing: a local file is written beside its final name
//! and renamed into place; an S3 object is one PUT, or a multipart upload that is
//! completed only when every part is in (and aborted otherwise). Only this module
//! talks to S3.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::scratch::{self, RunDir};
/// The S3 client type, for callers that build an [`S3Store`] (only this module
/// depends on the SDK crate directly).
pub use aws_sdk_s3::Client as S3Client;

/// Objects at or above this size go up as multipart uploads.
const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each multipart part (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// A storage failure: the write did not happen and may be retried.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A key that could escape the storage root or is not a plain relative path.
    #[error("refusing object key {key:?}: {why}")]
    InvalidKey { key: String, why: &'static str },
    /// A local file operation failed.
    #[error("{path}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An S3 call failed after the SDK's retries.
    #[error("{operation} s3://{bucket}/{key}: {message}")]
    S3 { operation: &'static str, bucket: String, key: String, message: String },
}

/// A place that stores whole objects under relative keys (`events/…/x.parquet`).
pub trait Storage: Send + Sync {
    /// Stores `bytes` at `key`, replacing any object there, whole or not at all.
    fn put(&self, key: &str, bytes: Vec<u8>) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Stores the content of the local file at `path` at `key`, like [`Storage::put`],
    /// without holding it in memory whole. The file may be moved away.
    fn put_file(&self, key: &str, path: &Path) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// This run's private local directory (spill files, oversized records): for a
    /// local lake under its `_tmp/`, else under the system's temporary directory.
    /// Removed when the run ends; a killed run's is removed by the next run.
    fn scratch_dir(&self) -> Result<&Path, StorageError>;

    /// The names of the objects directly in the directory `dir` (no `/` inside a
    /// name); empty when there is none.
    fn list(&self, dir: &str) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Deletes the object at `key`; deleting what is not there is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// For a store whose names may be case-insensitive (a local directory): the
    /// event types under `events/`, as spelled there. `None` for S3.
    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError>;

    /// Where `key` is, for messages: a path or an `s3://` URL.
    fn describe(&self, key: &str) -> String;
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { path, source }
}

/// Checks that `key` is a plain relative path: no empty, `.` or `..` segments, no
/// leading slash, no backslash or NUL. Keys are built from validated values; this
/// is the last line of defence before the file system or S3.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |why| Err(StorageError::InvalidKey { key: key.to_owned(), why });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.contains(['\\', '\0']) {
        return invalid("backslash or NUL");
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return invalid("empty, '.' or '..' path segment (or a leading '/')");
    }
    Ok(())
}

/// The root of a lake: a local directory or `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Reads `DIR` or `s3://bucket[/prefix]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Location::Local(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{text:?} has no bucket name"));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            validate_key(prefix).map_err(|e| e.to_string())?;
        }
        Ok(Location::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

/// A directory on the local file system.
///
/// Files are written in the run's scratch directory (`<root>/_tmp/run-*`, where no
/// lake reader looks) and renamed into place: readers never see half a file, and
/// a killed run leaves nothing inside `events/` or `_rejected/`.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    scratch: Arc<OnceLock<RunDir>>,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into(), scratch: Arc::default() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The final path of `key`, its parent directory created.
    fn destination(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        let path = self.root.join(key);
        let parent = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        Ok(path)
    }

    fn put_sync(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.destination(key)?;
        let scratch = self.scratch_dir()?;
        let mut temporary = scratch::new_file_in(scratch).map_err(io_error(scratch))?;
        std::io::Write::write_all(&mut temporary, bytes).map_err(io_error(temporary.path()))?;
        temporary.persist(&path).map_err(|e| io_error(&path)(e.error))?;
        Ok(())
    }
}

impl Storage for LocalDir {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_sync(key, &bytes)
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let destination = self.destination(key)?;
        // Same file system when `path` is in the scratch directory: one rename.
        if std::fs::rename(path, &destination).is_ok() {
            return Ok(());
        }
        let scratch = self.scratch_dir()?;
        let temporary = scratch::new_file_in(scratch).map_err(io_error(scratch))?;
        std::fs::copy(path, temporary.path()).map_err(io_error(path))?;
        temporary.persist(&destination).map_err(|e| io_error(&destination)(e.error))?;
        Ok(())
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        validate_key(dir)?;
        let path = self.root.join(dir);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&path)(error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&path))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.extend(entry.file_name().to_str().map(str::to_owned));
            }
        }
        names.sort();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let path = self.root.join(key);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path)(error)),
            _ => Ok(()),
        }
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        let events = self.root.join("events");
        let entries = match std::fs::read_dir(&events) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
            Err(error) => return Err(io_error(&events)(error)),
        };
        let mut types = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_error(&events))?.file_name();
            types.extend(name.to_str().and_then(|n| n.strip_prefix("event_type=")).map(str::to_owned));
        }
        Ok(Some(types))
    }

    fn scratch_dir(&self) -> Result<&Path, StorageError> {
        if self.scratch.get().is_none() {
            let parent = scratch::lake_scratch_parent(&self.root);
            let created = RunDir::create(&parent, scratch::LAKE_RUN_PREFIX).map_err(io_error(&parent))?;
            let _ = self.scratch.set(created);
        }
        Ok(self.scratch.get().map(RunDir::path).unwrap_or(&self.root))
    }

    fn describe(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

/// What one level of an S3 "directory" holds.
#[derive(Debug, Default)]
struct Level {
    files: Vec<String>,
    directories: Vec<String>,
}

/// A prefix in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// Builds the S3 client once per process: region, credentials and endpoint from the
/// environment, the SDK's standard retries with backoff (5 attempts). Path-style
/// addressing when an endpoint is set (an emulator or a private endpoint).
pub async fn s3_client() -> aws_sdk_s3::Client {
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(5);
    let config =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).retry_config(retries).load().await;
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL_S3").or_else(|| std::env::var_os("AWS_ENDPOINT_URL"));
    let s3_config =
        aws_sdk_s3::config::Builder::from(&config).force_path_style(custom_endpoint.is_some()).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_end_matches('/').to_owned();
        S3Store { client, bucket: bucket.into(), prefix }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn error(&self, operation: &'static str, key: &str, error: impl std::error::Error) -> StorageError {
        StorageError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            message: DisplayErrorContext(error).to_string(),
        }
    }

    /// Reads a whole object (`key` relative to the bucket, not the prefix) into
    /// memory once, as the chunks it arrived in: its ETag (without quotes) and a
    /// reader over its bytes.
    pub async fn read_object(&self, key: &str) -> Result<(String, impl std::io::Read + Send), StorageError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        let etag = object.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let body = object.body.collect().await.map_err(|e| self.error("GetObject", key, e))?;
        Ok((etag, bytes::Buf::reader(body)))
    }

    /// Sets the tag `name=value` on an object (`key` relative to the bucket),
    /// replacing its tag set.
    pub async fn tag_object(&self, key: &str, (name, value): (&str, &str)) -> Result<(), StorageError> {
        let tag = aws_sdk_s3::types::Tag::builder()
            .key(name)
            .value(value)
            .build()
            .map_err(|e| self.error("PutObjectTagging", key, e))?;
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| self.error("PutObjectTagging", key, e))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("PutObjectTagging", key, e))?;
        Ok(())
    }

    /// The names of the "directories" (common prefixes) directly under `dir`, a path
    /// relative to the store's prefix: `list_directories("events")` gives
    /// `["event_type=a", …]`. Pages through any number of entries.
    pub async fn list_directories(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.list_level(dir.trim_end_matches('/')).await?.directories)
    }

    /// The objects and "directories" directly under `dir` (relative to the
    /// store's prefix), by name; pages through any number of entries.
    async fn list_level(&self, dir: &str) -> Result<Level, StorageError> {
        let parent = format!("{}/", self.full_key(dir));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&parent)
            .delimiter("/")
            .into_paginator()
            .send();
        let mut level = Level::default();
        fn name<'k>(parent: &str, key: Option<&'k str>) -> Option<&'k str> {
            key.and_then(|k| k.strip_prefix(parent)).map(|n| n.trim_end_matches('/'))
        }
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", &parent, e))?;
            for object in page.contents() {
                level.files.extend(name(&parent, object.key()).map(str::to_owned));
            }
            for common in page.common_prefixes() {
                level
                    .directories
                    .extend(name(&parent, common.prefix()).filter(|n| !n.is_empty()).map(str::to_owned));
            }
        }
        Ok(level)
    }

    /// `s3://bucket/prefix/` followed by `key`: the URL of a directory in the store.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    async fn put_multipart(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_chunks(key, bytes.chunks(PART_SIZE).map(|chunk| Ok(chunk.to_vec()))).await
    }

    /// A multipart upload of `chunks` (each at least 5 MiB but the last), aborted
    /// if any part fails.
    async fn put_chunks(
        &self,
        key: &str,
        chunks: impl Iterator<Item = Result<Vec<u8>, StorageError>>,
    ) -> Result<(), StorageError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_chunks(key, &upload_id, chunks).await;
        if result.is_err() {
            // Without the abort, S3 would keep (and bill) the parts already sent.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    /// Uploads each chunk as the next part, then completes the upload.
    async fn upload_chunks(
        &self,
        key: &str,
        upload_id: &str,
        chunks: impl Iterator<Item = Result<Vec<u8>, StorageError>>,
    ) -> Result<(), StorageError> {
        let mut parts = Vec::new();
        for (index, chunk) in chunks.enumerate() {
            let chunk = chunk?;
            let number = index as i32 + 1;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| self.error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }
}

impl Storage for S3Store {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        validate_key(key)?;
        let key = self.full_key(key);
        if bytes.len() >= MULTIPART_THRESHOLD {
            return self.put_multipart(&key, bytes).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("PutObject", &key, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let length = std::fs::metadata(path).map_err(io_error(path))?.len();
        if length < MULTIPART_THRESHOLD as u64 {
            let bytes = std::fs::read(path).map_err(io_error(path))?;
            return self.put(key, bytes).await;
        }
        validate_key(key)?;
        let mut file = std::fs::File::open(path).map_err(io_error(path))?;
        let chunks = std::iter::from_fn(move || {
            let mut chunk = Vec::with_capacity(PART_SIZE);
            match (&mut file).take(PART_SIZE as u64).read_to_end(&mut chunk) {
                Ok(0) => None,
                Ok(_) => Some(Ok(chunk)),
                Err(error) => Some(Err(io_error(path)(error))),
            }
        });
        self.put_chunks(&self.full_key(key), chunks).await
    }

    async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        validate_key(dir)?;
        Ok(self.list_level(dir).await?.files)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        validate_key(key)?;
        let key = self.full_key(key);
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", &key, e))?;
        Ok(())
    }

    fn event_type_spellings(&self) -> Result<Option<Vec<String>>, StorageError> {
        Ok(None)
    }

    fn scratch_dir(&self) -> Result<&Path, StorageError> {
        let parent = std::env::temp_dir();
        scratch::process_run_dir().map_err(io_error(&parent))
    }

    fn describe(&self, key: &str) -> String {
        self.url(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_the_root_are_refused() {
        for key in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\0b", "a/"] {
            assert!(validate_key(key).is_err(), "{key:?}");
        }
        for key in
            ["events/event_type=a.b/created_date=2024-03-17/x.parquet", "_rejected/x.ndjson", "a/..b/c"]
        {
            assert!(validate_key(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("./lake").unwrap(), Location::Local("./lake".into()));
        assert_eq!(
            Location::parse("s3://bucket/some/prefix/").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "some/prefix".into() }
        );
        assert_eq!(
            Location::parse("s3://bucket").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "".into() }
        );
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("s3://b/../x").is_err());
    }

    #[tokio::test]
    async fn local_writes_are_atomic_and_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path());
        store.put("a/b/c.txt", b"one".to_vec()).await.unwrap();
        store.put("a/b/c.txt", b"two".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b/c.txt")).unwrap(), b"two");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("a/b")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["c.txt"], "no temporary file left behind");
        assert!(store.put("../escape", b"x".to_vec()).await.is_err());
    }
}
