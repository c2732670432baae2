//! The lake's storage in an S3 prefix, and the S3 client.
//!
//! Every write is whole or nothing: an object is one PUT, or a multipart upload
//! that is completed only when every part is in (and aborted otherwise). Only this
//! module talks to S3.

use std::io::Read;
use std::path::Path;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::lake::scratch;
use crate::lake::storage::{io_error, validate_key, Storage, StorageError};
/// An object read whole.
pub struct StoredObject {
    /// Its ETag, without quotes.
    pub etag: String,
    /// When it was written (S3's Last-Modified), Unix milliseconds.
    pub last_modified_millis: Option<i64>,
    /// Its bytes.
    pub body: bytes::buf::Reader<aws_sdk_s3::primitives::AggregatedBytes>,
}

/// The S3 client type, for callers that build an [`S3Store`] (only this module
/// depends on the SDK crate directly).
pub use aws_sdk_s3::Client as S3Client;

/// Objects at or above this size go up as multipart uploads.
const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each multipart part (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct Level {
    files: Vec<ListedObject>,
    directories: Vec<String>,
}

/// An object found by [`S3Store::list_objects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub name: String,
    pub size: u64,
    pub last_modified_millis: Option<i64>,
}

/// What `CopyObject`'s copy source leaves unencoded: RFC 3986's unreserved
/// characters and the `/` between a key's segments.
const COPY_SOURCE_KEEPS: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// A prefix in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// The S3 client of `config`, with path-style addressing when an endpoint is set
/// (an emulator or a private endpoint).
pub fn s3_client(config: &crate::aws::SdkConfig) -> S3Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(custom_endpoint).build();
    S3Client::from_conf(s3_config)
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
    /// memory once, as the chunks it arrived in.
    pub async fn read_object(&self, key: &str) -> Result<StoredObject, StorageError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GetObject", key, e))?;
        let etag = object.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let last_modified_millis = object.last_modified().and_then(|time| time.to_millis().ok());
        let body = object.body.collect().await.map_err(|e| self.error("GetObject", key, e))?;
        Ok(StoredObject { etag, last_modified_millis, body: bytes::Buf::reader(body) })
    }

    /// Every object key (relative to the bucket) that starts with `prefix`
    /// (relative to the bucket too), at any depth, in key order.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let objects = self.list_prefix(prefix).await?;
        Ok(objects.iter().filter_map(|object| object.key().map(str::to_owned)).collect())
    }

    /// Every object whose key (relative to the bucket) starts with `prefix`, at
    /// any depth, in key order: one listing, however many pages.
    async fn list_prefix(&self, prefix: &str) -> Result<Vec<aws_sdk_s3::types::Object>, StorageError> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            objects.extend(page.contents.unwrap_or_default());
        }
        Ok(objects)
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

    /// The key of `key` (relative to the store's prefix) in the bucket, for the
    /// calls that take one ([`S3Store::tag_object`]).
    pub fn key_in_bucket(&self, key: &str) -> String {
        self.full_key(key)
    }

    /// The objects directly in the directory `dir` (relative to the store's
    /// prefix), by name, each with its size and last-modified time.
    pub async fn list_objects(&self, dir: &str) -> Result<Vec<ListedObject>, StorageError> {
        validate_key(dir)?;
        Ok(self.list_level(dir, "").await?.files)
    }

    /// Writes the object at `key` (relative to the store's prefix) to the local
    /// file `path`, a chunk at a time.
    pub async fn download(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        use std::io::Write as _;
        validate_key(key)?;
        let full = self.full_key(key);
        let mut object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| self.error("GetObject", &full, e))?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_error(path))?);
        while let Some(chunk) = object.body.try_next().await.map_err(|e| self.error("GetObject", &full, e))? {
            file.write_all(&chunk).map_err(io_error(path))?;
        }
        file.into_inner().map_err(|e| io_error(path)(e.into_error()))?.sync_all().map_err(io_error(path))?;
        Ok(())
    }

    /// Copies the object at `from` to `to` (both relative to the store's prefix)
    /// inside S3 (`CopyObject`, objects up to 5 GB). The copy has no tags: a tag
    /// may hand an object to a lifecycle rule, and a copy is a new, live object
    /// (it also needs no `s3:GetObjectTagging` on the source). `false`: there is
    /// no object at `from` (deleted since it was listed).
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, StorageError> {
        validate_key(from)?;
        validate_key(to)?;
        let (from, to) = (self.full_key(from), self.full_key(to));
        let result = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(&to)
            .copy_source(format!(
                "{}/{}",
                self.bucket,
                percent_encoding::utf8_percent_encode(&from, COPY_SOURCE_KEEPS)
            ))
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if no_such_key(&error) => Ok(false),
            Err(error) => Err(self.error("CopyObject", &to, error)),
        }
    }

    /// The names of the "directories" (common prefixes) directly under `dir`, a path
    /// relative to the store's prefix: `list_directories("events")` gives
    /// `["event_type=a", …]`. Pages through any number of entries.
    pub async fn list_directories(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        Ok(self.list_level(dir.trim_end_matches('/'), "").await?.directories)
    }

    /// The objects and "directories" directly under `dir` (relative to the
    /// store's prefix) whose names begin with `name_prefix`, by name; pages
    /// through any number of entries.
    async fn list_level(&self, dir: &str, name_prefix: &str) -> Result<Level, StorageError> {
        let parent = format!("{}/", self.full_key(dir));
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{parent}{name_prefix}"))
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
                level.files.extend(name(&parent, object.key()).map(|name| listed(name, object)));
            }
            for common in page.common_prefixes() {
                level
                    .directories
                    .extend(name(&parent, common.prefix()).filter(|n| !n.is_empty()).map(str::to_owned));
            }
        }
        Ok(level)
    }

    /// Every object under the directory `dir` (relative to the store's prefix), at
    /// any depth, named by its path relative to `dir` (`a/b.parquet`), in key order.
    /// One listing, however many directories: a sweep of a whole tree.
    pub async fn list_tree(&self, dir: &str) -> Result<Vec<ListedObject>, StorageError> {
        validate_key(dir)?;
        let parent = format!("{}/", self.full_key(dir));
        let objects = self.list_prefix(&parent).await?;
        Ok(objects
            .iter()
            .filter_map(|object| Some(listed(object.key()?.strip_prefix(&parent)?, object)))
            .collect())
    }

    /// Writes `bytes` at `key` (relative to the store's prefix) only if the object
    /// is absent (`If-None-Match: *`), or only if its ETag is still `etag`
    /// (`If-Match`): the new ETag, or `None` when the condition failed (another
    /// writer got there first).
    pub async fn put_conditionally(
        &self,
        key: &str,
        bytes: Vec<u8>,
        etag: Option<&str>,
    ) -> Result<Option<String>, StorageError> {
        validate_key(key)?;
        let key = self.full_key(key);
        let request = self.client.put_object().bucket(&self.bucket).key(&key).body(ByteStream::from(bytes));
        let request = match etag {
            None => request.if_none_match("*"),
            Some(etag) => request.if_match(format!("\"{etag}\"")),
        };
        match request.send().await {
            Ok(output) => Ok(Some(output.e_tag().unwrap_or_default().trim_matches('"').to_owned())),
            Err(error) if condition_failed(&error) => Ok(None),
            Err(error) => Err(self.error("PutObject", &key, error)),
        }
    }

    /// Deletes the object at `key` (relative to the store's prefix) only if its
    /// ETag is still `etag`: `false` when it is not (or the object is gone).
    pub async fn delete_if_match(&self, key: &str, etag: &str) -> Result<bool, StorageError> {
        validate_key(key)?;
        let key = self.full_key(key);
        let result = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_match(format!("\"{etag}\""))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if condition_failed(&error) => Ok(false),
            Err(error) => Err(self.error("DeleteObject", &key, error)),
        }
    }

    /// The object at `key` (relative to the store's prefix) with its ETag, or
    /// `None` when there is none.
    pub async fn get_if_present(&self, key: &str) -> Result<Option<(String, Vec<u8>)>, StorageError> {
        validate_key(key)?;
        let full = self.full_key(key);
        let result = self.client.get_object().bucket(&self.bucket).key(&full).send().await;
        let object = match result {
            Ok(object) => object,
            Err(error) if no_such_key(&error) => return Ok(None),
            Err(error) => return Err(self.error("GetObject", &full, error)),
        };
        let etag = object.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let body = object.body.collect().await.map_err(|e| self.error("GetObject", &full, e))?;
        Ok(Some((etag, body.to_vec())))
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

/// `object` of a listing, named `name`.
fn listed(name: &str, object: &aws_sdk_s3::types::Object) -> ListedObject {
    ListedObject {
        name: name.to_owned(),
        size: object.size().unwrap_or(0).max(0) as u64,
        last_modified_millis: object.last_modified().and_then(|t| t.to_millis().ok()),
    }
}

/// Whether S3 answered that there is no object at the key.
fn no_such_key(error: &impl aws_sdk_s3::error::ProvideErrorMetadata) -> bool {
    aws_sdk_s3::error::ProvideErrorMetadata::code(error) == Some("NoSuchKey")
}

/// Whether S3 refused a conditional request because its condition did not hold
/// (412 Precondition Failed; 409 ConditionalRequestConflict when two conditional
/// writes race; NoSuchKey for an `If-Match` on an object that is gone).
fn condition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let status = error.raw_response().map(|response| response.status().as_u16());
    matches!(status, Some(412 | 409))
        || no_such_key(error)
        || matches!(
            aws_sdk_s3::error::ProvideErrorMetadata::code(error),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
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

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        validate_key(key)?;
        let mut bytes = Vec::new();
        let mut body = self.read_object(&self.full_key(key)).await?.body;
        std::io::Read::read_to_end(&mut body, &mut bytes).map_err(|e| self.error("GetObject", key, e))?;
        Ok(bytes)
    }

    async fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_key(dir)?;
        Ok(self.list_level(dir, name_prefix).await?.files.into_iter().map(|object| object.name).collect())
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

    fn claim_event_type(&self, _spelling: &str) -> Result<Option<String>, StorageError> {
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
