//! The body of the `sql_spool` fuzz target (`fuzz/fuzz_targets/sql_spool.rs` is a one-line
//! wrapper), kept here so that `tests/fuzz_corpus.rs` replays every committed corpus file and
//! fixed crash through exactly what libFuzzer ran, on stable and without libFuzzer.

use crate::batch::Batch;
use crate::spool::{decode_entry, encode_frame};
use crate::targets::Summary;

/// Input: the first byte picks the layer. Even: the rest is a whole entry file (its id taken
/// from its own header, so a well-formed frame gets past the id check), checked and decoded
/// as replay and `sql_spool_targets` read it. Odd: the rest is the JSON payload, framed with a
/// valid checksum first so that the fuzzer reaches the decoding of batches behind the CRC.
pub fn sql_spool(data: &[u8]) {
    let Some((&layer, rest)) = data.split_first() else { return };
    let (id, file) = if layer % 2 == 0 {
        let id = rest.get(4..12).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
        (id, rest.to_vec())
    } else {
        (u64::from(layer), encode_frame(u64::from(layer), rest))
    };
    if let Ok(b) = decode_entry::<Batch>(id, &file) {
        // What replay relies on before it writes a batch.
        let _ = (b.rows.len(), b.shape.keys.len(), b.target.as_ref().map(ToString::to_string));
    }
    let _ = decode_entry::<Summary>(id, &file);
}
