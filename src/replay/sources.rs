//! What a replay reads: the inputs a source names (a file, the files under a
//! directory, the objects under an `s3://` prefix) and, in its first pass, each
//! input's lines decoded and their events validated again.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::decode::{self, Held};
use super::spool::Spool;
use super::{Found, ReplayError};
use crate::aws::{self, s3::S3Store};
use crate::core::event::{Event, TimeWindow, MAX_RECORD_BYTES};
use crate::lake::ndjson::{self, LineEnd};

/// Longest source line read: a rejection entry holds a record of up to 1,000 KiB,
/// escaped (up to 6 bytes per byte for control characters) in JSON.
const MAX_SOURCE_LINE: usize = 8 << 20;

/// One input a source names, opened only when its turn comes.
pub enum Input {
    File(PathBuf),
    Object { bucket: String, key: String },
}

impl Input {
    pub fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Object { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// The input's bytes (an object is read whole, one at a time).
    pub async fn open(&self, config: Option<&aws::SdkConfig>) -> Result<Box<dyn Read + Send>, ReplayError> {
        Ok(match self {
            Input::File(path) => {
                Box::new(File::open(path).map_err(|source| ReplayError::Open { path: path.clone(), source })?)
            }
            Input::Object { bucket, key } => {
                let config = config.ok_or(ReplayError::NoAwsConfig)?;
                let store = S3Store::new(aws::s3::s3_client(config), bucket, "");
                Box::new(store.read_object(key).await?.body)
            }
        })
    }
}

/// The inputs a source names: a file, every file under a directory, or every
/// object under an `s3://bucket/prefix`.
pub async fn inputs_of(source: &str, config: Option<&aws::SdkConfig>) -> Result<Vec<Input>, ReplayError> {
    if let Some(rest) = source.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let config = config.ok_or(ReplayError::NoAwsConfig)?;
        let store = S3Store::new(aws::s3::s3_client(config), bucket, "");
        let keys = store.list_keys(prefix).await?;
        let inputs: Vec<Input> = keys
            .into_iter()
            .filter(|key| replayable_name(key))
            .map(|key| Input::Object { bucket: bucket.to_owned(), key })
            .collect();
        if inputs.is_empty() {
            return Err(ReplayError::NoObjects(source.to_owned()));
        }
        return Ok(inputs);
    }
    let path = Path::new(source);
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, &mut files)
            .map_err(|error| ReplayError::List { what: source.to_owned(), source: error })?;
    } else {
        files.push(path.to_owned());
    }
    Ok(files.into_iter().map(Input::File).collect())
}

/// Names replay reads in a directory or prefix: not the lake's Parquet files,
/// the large records that rejection entries point to, or run work files.
fn replayable_name(key: &str) -> bool {
    let skipped = key.ends_with(".parquet") || key.ends_with(".record") || key.ends_with('/');
    !skipped && !key.split('/').any(|part| part == "_tmp")
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "_tmp" {
                walk(&path, files)?;
            }
        } else if replayable_name(&path.to_string_lossy()) {
            files.push(path);
        }
    }
    Ok(())
}

/// Pass one over one input: each line decoded, each event in it validated; the
/// passing ones spooled, the others counted with their reason.
pub fn read_source(
    input: Box<dyn Read + Send>,
    index: u32,
    names: &[String],
    window: TimeWindow,
    spool: &mut Spool,
    found: &mut Found,
) -> io::Result<()> {
    let name = &names[index as usize];
    let mut reader = ndjson::decompressing_reader(input)?;
    let mut line = Vec::new();
    let mut number = 0_u64;
    loop {
        line.clear();
        let end = ndjson::next_line(&mut reader, &mut line, MAX_SOURCE_LINE)?;
        if end == LineEnd::Eof {
            return Ok(());
        }
        number += 1;
        found.lines += 1;
        if end == LineEnd::TooLong {
            ndjson::copy_rest_of_line(&mut reader, &mut io::sink())?;
            found.unreadable.push(format!("{name}:{number}: longer than {MAX_SOURCE_LINE} bytes"));
            continue;
        }
        if ndjson::is_blank(&line) {
            continue;
        }
        let decoded = match decode::decode_line(&line) {
            Ok(decoded) => decoded,
            Err(error) => {
                found.unreadable.push(format!("{name}:{number}: {error}"));
                continue;
            }
        };
        let record = match decoded.record {
            Held::Bytes(bytes) => bytes,
            Held::Stored(key) => {
                let why = format!("the record is stored at {key}: over the contract's 1,000 KiB");
                found.reject("too_large", format!("{name}:{number}: {why}"));
                continue;
            }
        };
        for event in crate::producer::pack::unpack(&record) {
            let checked = Event::parse_limited(event, MAX_RECORD_BYTES)
                .and_then(|parsed| window.check(parsed.time()).map(|()| parsed.partition().to_owned()));
            match checked {
                Ok(partition) => {
                    spool.write(index, number, event)?;
                    found.passing += 1;
                    found.partitions.insert(partition);
                }
                Err(rejection) => found.reject(rejection.code(), format!("{name}:{number}: {rejection}")),
            }
        }
    }
}
