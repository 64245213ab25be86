//! The classic pcap savefile container (not pcapng): a 24-byte file header, then records of a
//! 16-byte header and the captured bytes. Either byte order; microsecond or nanosecond stamps.
//!
//! xacct reads savefiles itself (in large reads, copying only the headers it accounts) because
//! libpcap's per-record `fread` was the bottleneck of file replays; pcapng still goes through
//! libpcap. The layout is the published tcpdump.org format.

/// Magic of a microsecond-resolution file, in the writer's byte order.
const MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// Magic of a nanosecond-resolution file.
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PcapFileError {
    #[error("not a classic pcap file (magic {0:#010x})")]
    NotPcap(u32),
    #[error("file header truncated")]
    TruncatedHeader,
}

/// What the file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Fields are big-endian (written on a big-endian host).
    pub swapped: bool,
    pub nanos: bool,
    pub snaplen: u32,
    /// LINKTYPE_ value (the low 16 bits; the upper bits carry FCS information).
    pub linktype: u16,
}

/// One record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub ts_sec: u32,
    /// Microseconds, or nanoseconds when the file header says so.
    pub ts_frac: u32,
    /// Bytes stored in the file.
    pub caplen: u32,
    /// Length of the frame on the wire.
    pub len: u32,
}

/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Size of the file header.
pub const FILE_HEADER_LEN: usize = 24;

fn u32_at(b: &[u8], at: usize, swapped: bool) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    if swapped {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Parses the 24-byte file header.
pub fn parse_file_header(b: &[u8]) -> Result<FileHeader, PcapFileError> {
    if b.len() < FILE_HEADER_LEN {
        return Err(PcapFileError::TruncatedHeader);
    }
    let le = u32_at(b, 0, false);
    let (swapped, nanos) = match le {
        MAGIC_USEC => (false, false),
        MAGIC_NSEC => (false, true),
        m if m.swap_bytes() == MAGIC_USEC => (true, false),
        m if m.swap_bytes() == MAGIC_NSEC => (true, true),
        m => return Err(PcapFileError::NotPcap(m)),
    };
    Ok(FileHeader {
        swapped,
        nanos,
        snaplen: u32_at(b, 16, swapped),
        linktype: (u32_at(b, 20, swapped) & 0xffff) as u16,
    })
}

/// Parses a 16-byte record header (`None` when fewer bytes are given).
pub fn parse_record_header(h: &FileHeader, b: &[u8]) -> Option<RecordHeader> {
    if b.len() < RECORD_HEADER_LEN {
        return None;
    }
    let s = h.swapped;
    Some(RecordHeader {
        ts_sec: u32_at(b, 0, s),
        ts_frac: u32_at(b, 4, s),
        caplen: u32_at(b, 8, s),
        len: u32_at(b, 12, s),
    })
}

/// What the front of a savefile's record area holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole record: its header and then `caplen` captured bytes, all present.
    Whole(RecordHeader),
    /// The record is not all there yet: `need` bytes from the front are required.
    Short { need: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bogus record length {0} (a corrupt file?)")]
    BogusLength(u32),
    #[error("truncated dump file: the last record is cut short")]
    Truncated,
}

/// Frames the record at the front of `buf` (the bytes after the file header, or after the
/// records already taken). A caplen above `max_caplen` is refused before anything is read for
/// it, so a corrupt length never sizes a buffer.
pub fn frame(h: &FileHeader, buf: &[u8], max_caplen: usize) -> Result<Frame, FrameError> {
    let Some(rh) = parse_record_header(h, buf) else {
        return Ok(Frame::Short { need: RECORD_HEADER_LEN });
    };
    if rh.caplen as usize > max_caplen {
        return Err(FrameError::BogusLength(rh.caplen));
    }
    let need = RECORD_HEADER_LEN + rh.caplen as usize;
    Ok(if buf.len() < need { Frame::Short { need } } else { Frame::Whole(rh) })
}

/// Every record of a savefile held whole in memory, `body` being the bytes after the file
/// header. A cut last record or a bogus length ends the walk with its error.
pub fn records<'a>(
    h: &'a FileHeader,
    mut body: &'a [u8],
    max_caplen: usize,
) -> impl Iterator<Item = Result<(RecordHeader, &'a [u8]), FrameError>> + 'a {
    let mut done = false;
    std::iter::from_fn(move || {
        if done || body.is_empty() {
            return None;
        }
        let item = match frame(h, body, max_caplen) {
            Ok(Frame::Whole(rh)) => {
                let (rec, rest) = body.split_at(RECORD_HEADER_LEN + rh.caplen as usize);
                body = rest;
                return Some(Ok((rh, &rec[RECORD_HEADER_LEN..])));
            }
            Ok(Frame::Short { .. }) => Err(FrameError::Truncated),
            Err(e) => Err(e),
        };
        done = true;
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: [u8; 4], be: bool) -> Vec<u8> {
        let mut v = magic.to_vec();
        let f = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        v.extend_from_slice(&(if be { 2u16.to_be_bytes() } else { 2u16.to_le_bytes() }));
        v.extend_from_slice(&(if be { 4u16.to_be_bytes() } else { 4u16.to_le_bytes() }));
        v.extend_from_slice(&f(0));
        v.extend_from_slice(&f(0));
        v.extend_from_slice(&f(65535));
        v.extend_from_slice(&f(0x1000_0001)); // FCS bits above the linktype
        v
    }

    #[test]
    fn both_byte_orders_and_resolutions() {
        let le = parse_file_header(&header([0xd4, 0xc3, 0xb2, 0xa1], false)).unwrap();
        assert_eq!(le, FileHeader { swapped: false, nanos: false, snaplen: 65535, linktype: 1 });
        let be = parse_file_header(&header([0xa1, 0xb2, 0xc3, 0xd4], true)).unwrap();
        assert_eq!(be, FileHeader { swapped: true, nanos: false, snaplen: 65535, linktype: 1 });
        let ns = parse_file_header(&header([0x4d, 0x3c, 0xb2, 0xa1], false)).unwrap();
        assert!(ns.nanos);
        let mut rec = Vec::new();
        for x in [7u32, 8, 60, 64] {
            rec.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(parse_record_header(&be, &rec), Some(RecordHeader { ts_sec: 7, ts_frac: 8, caplen: 60, len: 64 }));
        assert_eq!(parse_record_header(&be, &rec[..15]), None);
    }

    #[test]
    fn framing_takes_whole_records_and_reports_cut_or_bogus_ones() {
        let h = parse_file_header(&header([0xd4, 0xc3, 0xb2, 0xa1], false)).unwrap();
        let mut body = Vec::new();
        for (i, len) in [3u32, 0, 5].into_iter().enumerate() {
            for x in [i as u32, 0, len, len + 1] {
                body.extend_from_slice(&x.to_le_bytes());
            }
            body.extend(std::iter::repeat_n(i as u8, len as usize));
        }
        let got: Vec<_> = records(&h, &body, 64).map(|r| r.map(|(rh, d)| (rh.len, d.to_vec()))).collect();
        assert_eq!(got, vec![Ok((4, vec![0; 3])), Ok((1, vec![])), Ok((6, vec![2; 5]))]);
        assert_eq!(frame(&h, &body[..10], 64), Ok(Frame::Short { need: RECORD_HEADER_LEN }));
        assert_eq!(frame(&h, &body[..17], 64), Ok(Frame::Short { need: RECORD_HEADER_LEN + 3 }));
        let cut: Vec<_> = records(&h, &body[..body.len() - 1], 64).collect();
        assert_eq!(cut.last(), Some(&Err(FrameError::Truncated)));
        assert_eq!(cut.len(), 3);
        assert_eq!(frame(&h, &body, 2), Err(FrameError::BogusLength(3)));
        assert_eq!(records(&h, &body, 2).count(), 1);
    }

    #[test]
    fn pcapng_and_garbage_are_refused() {
        let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a];
        ng.resize(24, 0);
        assert_eq!(parse_file_header(&ng), Err(PcapFileError::NotPcap(0x0a0d_0d0a)));
        assert_eq!(parse_file_header(&[0xd4, 0xc3]), Err(PcapFileError::TruncatedHeader));
    }
}
