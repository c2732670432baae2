//! Reading NDJSON into the lake writer: line by line, gzip decompressed on the fly,
//! so memory does not grow with the input.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use xxhash_rust::xxh3::Xxh3;

use crate::lake::{LakeError, LakeWriter, Origin};
use crate::storage::Storage;

/// Read buffer size: large reads keep system calls off the profile.
const READ_BUFFER: usize = 1 << 20;

/// A failure that stops a run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading (or decompressing) an input failed.
    #[error("reading {source_name}: {error}")]
    Read { source_name: String, error: io::Error },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// Wraps `input` in a buffered reader that decompresses gzip (detected by its
/// magic bytes, whatever the file is called) and passes anything else through.
pub fn decompressing_reader<'r>(input: impl Read + 'r) -> io::Result<Box<dyn BufRead + 'r>> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, input);
    let is_gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    })
}

/// What feeding one input did besides the writer's own counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    pub lines: u64,
    /// Lines holding only whitespace: no record, so neither written nor rejected.
    pub blank: u64,
}

/// Feeds every line of `reader` to `writer` as one record.
pub async fn feed<S: Storage>(
    writer: &mut LakeWriter<S>,
    mut reader: impl BufRead,
    source_name: &str,
) -> Result<Fed, IngestError> {
    let mut fed = Fed::default();
    let mut line = Vec::with_capacity(64 * 1024);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|error| IngestError::Read { source_name: source_name.to_owned(), error })?;
        if read == 0 {
            return Ok(fed);
        }
        fed.lines += 1;
        let record = line.strip_suffix(b"\n").unwrap_or(&line);
        if record.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            fed.blank += 1;
            continue;
        }
        writer.push(record, Origin { source: source_name, line: fed.lines }).await?;
    }
}

/// A digest of a run's input content: the same bytes give the same digest, and so
/// the same output names.
#[derive(Default)]
pub struct ContentDigest(Xxh3);

impl ContentDigest {
    /// Adds one input, read to its end.
    pub fn add(&mut self, mut input: impl Read) -> io::Result<u64> {
        let mut buffer = vec![0; READ_BUFFER];
        let mut total = 0_u64;
        loop {
            let read = match input.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            self.0.update(&buffer[..read]);
            total += read as u64;
        }
        // The length separates inputs: ["ab", "c"] and ["a", "bc"] differ.
        self.0.update(&total.to_le_bytes());
        Ok(total)
    }

    pub fn finish(&self) -> u128 {
        self.0.digest128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_detected_by_content() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(b"{\"a\":1}\n").unwrap();
        let compressed = encoder.finish().unwrap();
        let mut text = String::new();
        decompressing_reader(&compressed[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "{\"a\":1}\n");
        text.clear();
        decompressing_reader(&b"plain\n"[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "plain\n");
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let member = |text: &[u8]| {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(text).unwrap();
            encoder.finish().unwrap()
        };
        let both = [member(b"one\n"), member(b"two\n")].concat();
        let mut text = String::new();
        decompressing_reader(&both[..]).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "one\ntwo\n");
    }

    #[test]
    fn digests_separate_inputs() {
        let digest = |parts: &[&[u8]]| {
            let mut digest = ContentDigest::default();
            for part in parts {
                digest.add(*part).unwrap();
            }
            digest.finish()
        };
        assert_eq!(digest(&[b"ab", b"c"]), digest(&[b"ab", b"c"]));
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
    }
}
