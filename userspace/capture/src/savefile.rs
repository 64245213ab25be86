//! Classic pcap savefiles read in large blocks: one `read` per few thousand frames instead of
//! libpcap's `fread` per record, and only the frames' headers are copied on into batches.
//! `pcap_filter` still runs libpcap's own BPF (compiled for the file's link type) on each whole
//! frame, so a filter means exactly what it means to libpcap.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use xacct_wire::pcapfile::{self, FileHeader, Frame, FrameError, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};

/// Read block size; also bounds the largest record we accept.
const BLOCK: usize = 4 << 20;

/// Why reading stopped early (the frames before it were all delivered).
#[derive(Debug, thiserror::Error)]
pub enum SavefileError {
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    #[error("truncated dump file: the last record is cut short")]
    Truncated,
    #[error("bogus record length {0} (a corrupt file?)")]
    BogusLength(u32),
}

/// A classic pcap file open for block reads.
pub struct SavefileReader {
    file: File,
    header: FileHeader,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl SavefileReader {
    /// Opens `path`; `Ok(None)` when it is not a classic pcap file (pcapng, …), so the caller
    /// can hand it to libpcap instead.
    pub fn open(path: &Path) -> std::io::Result<Option<SavefileReader>> {
        let mut file = File::open(path)?;
        let mut head = [0u8; FILE_HEADER_LEN];
        if file.read_exact(&mut head).is_err() {
            return Ok(None);
        }
        match pcapfile::parse_file_header(&head) {
            Ok(header) => Ok(Some(SavefileReader { file, header, buf: vec![0; BLOCK], start: 0, end: 0, eof: false })),
            Err(_) => Ok(None),
        }
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Makes at least `need` bytes available at `start` (fewer only at end of file).
    fn fill(&mut self, need: usize) -> std::io::Result<()> {
        if self.end - self.start >= need || self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        while self.end < need && !self.eof {
            let n = self.file.read(&mut self.buf[self.end..])?;
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
        Ok(())
    }

    /// The next record: its header and captured bytes. `Ok(None)` at a clean end of file.
    pub fn next_frame(&mut self) -> Result<Option<(RecordHeader, &[u8])>, SavefileError> {
        self.fill(RECORD_HEADER_LEN)?;
        if self.start == self.end {
            return Ok(None);
        }
        // The framing itself is pcapfile::frame (pure, fuzzed); this only refills the block.
        let rh = loop {
            match pcapfile::frame(&self.header, &self.buf[self.start..self.end], BLOCK - RECORD_HEADER_LEN) {
                Ok(Frame::Whole(rh)) => break rh,
                Ok(Frame::Short { need }) => {
                    if self.eof {
                        return Err(SavefileError::Truncated);
                    }
                    self.fill(need)?;
                    if self.end - self.start < need {
                        return Err(SavefileError::Truncated);
                    }
                }
                Err(FrameError::BogusLength(n)) => return Err(SavefileError::BogusLength(n)),
                Err(FrameError::Truncated) => return Err(SavefileError::Truncated),
            }
        };
        let caplen = rh.caplen as usize;
        let data_at = self.start + RECORD_HEADER_LEN;
        self.start = data_at + caplen;
        Ok(Some((rh, &self.buf[data_at..data_at + caplen])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(records: &[&[u8]], cut: usize) -> tempfile::NamedTempFile {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, r) in records.iter().enumerate() {
            for x in [i as u32, 0, r.len() as u32, r.len() as u32 + 4] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(r);
        }
        v.truncate(v.len() - cut);
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &v).unwrap();
        f
    }

    #[test]
    fn reads_every_record_then_ends_cleanly() {
        let big = vec![7u8; BLOCK / 3];
        let recs: Vec<&[u8]> = vec![&[1, 2, 3], &big, &big, &big, &[9; 60]];
        let f = file_with(&recs, 0);
        let mut r = SavefileReader::open(f.path()).unwrap().unwrap();
        for (i, want) in recs.iter().enumerate() {
            let (h, data) = r.next_frame().unwrap().unwrap();
            assert_eq!((h.ts_sec as usize, h.len as usize, data), (i, want.len() + 4, *want));
        }
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn a_cut_last_record_is_reported_after_the_whole_ones() {
        let f = file_with(&[&[1; 60], &[2; 60]], 10);
        let mut r = SavefileReader::open(f.path()).unwrap().unwrap();
        assert!(r.next_frame().unwrap().is_some());
        assert!(matches!(r.next_frame(), Err(SavefileError::Truncated)));
    }

    #[test]
    fn pcapng_is_left_to_libpcap() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut v = vec![0x0a, 0x0d, 0x0d, 0x0a];
        v.resize(64, 0);
        std::fs::write(f.path(), &v).unwrap();
        assert!(SavefileReader::open(f.path()).unwrap().is_none());
    }
}
