//! The events of a replay that pass today's rules, in a spool file on local disk
//! between the passes, each with the input and line it came from.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// The events that pass, with where each came from: source index, line, length, bytes.
pub struct Spool {
    pub(super) out: BufWriter<File>,
}

impl Spool {
    pub fn new(file: File) -> Self {
        Spool { out: BufWriter::new(file) }
    }

    pub fn write(&mut self, source: u32, line: u64, event: &[u8]) -> io::Result<()> {
        self.out.write_all(&source.to_le_bytes())?;
        self.out.write_all(&line.to_le_bytes())?;
        self.out.write_all(&(event.len() as u32).to_le_bytes())?;
        self.out.write_all(event)
    }
}

/// The spooled events, in order.
pub struct SpoolReader {
    reader: BufReader<File>,
    event: Vec<u8>,
}

impl SpoolReader {
    pub fn open(spool: &tempfile::NamedTempFile) -> io::Result<Self> {
        let mut file = spool.reopen()?;
        file.rewind()?;
        Ok(SpoolReader { reader: BufReader::with_capacity(1 << 20, file), event: Vec::new() })
    }

    /// The next event: its source index, line and bytes.
    pub fn next_event(&mut self) -> io::Result<Option<(u32, u64, &[u8])>> {
        let mut head = [0_u8; 16];
        match self.reader.read_exact(&mut head) {
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            result => result?,
        }
        let [s0, s1, s2, s3, l0, l1, l2, l3, l4, l5, l6, l7, n0, n1, n2, n3] = head;
        self.event.resize(u32::from_le_bytes([n0, n1, n2, n3]) as usize, 0);
        self.reader.read_exact(&mut self.event)?;
        let line = u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
        Ok(Some((u32::from_le_bytes([s0, s1, s2, s3]), line, &self.event)))
    }
}
