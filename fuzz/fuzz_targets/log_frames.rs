//! Container output as the engine sends it (`GET /containers/{id}/logs`, multiplexed, timestamped) through slip's
//! frame-to-line decoder. It never panics, never holds more than `MAX_LOG_LINE` bytes of a stream between frames,
//! and for text that is valid UTF-8 without `\r` the lines put back together are exactly what was written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slip_core::log_lines::{LogLines, MAX_LOG_LINE, OutputStream, split_timestamp};

fuzz_target!(|data: &[u8]| {
    // Docker's framing: [stream, 0, 0, 0, size as u32 big-endian] then `size` bytes. The first padding byte is
    // used here as a repeat count (the payload is sent that many times, 1 to 32), so short inputs reach the cap.
    let mut frames = Vec::new();
    let mut rest = data;
    while rest.len() >= 8 {
        let stream = if rest[0] == 2 { OutputStream::Stderr } else { OutputStream::Stdout };
        let repeat = usize::from(rest[1] % 32) + 1;
        let size = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let payload = &rest[8..(8 + size).min(rest.len())];
        rest = &rest[8 + payload.len()..];
        for _ in 0..repeat {
            frames.push((stream, payload));
        }
    }
    if frames.is_empty() {
        frames.push((OutputStream::Stdout, data));
    }

    let mut decoder = LogLines::default();
    let mut lines = Vec::new();
    let mut written = [Vec::new(), Vec::new()];
    for (stream, frame) in frames {
        lines.extend(decoder.push(stream, frame));
        for s in [OutputStream::Stdout, OutputStream::Stderr] {
            assert!(decoder.buffered(s) <= MAX_LOG_LINE, "{} bytes held between frames", decoder.buffered(s));
        }
        written[usize::from(stream == OutputStream::Stderr)].extend_from_slice(split_timestamp(frame).1);
    }
    lines.extend(decoder.finish());

    for (slot, stream) in [OutputStream::Stdout, OutputStream::Stderr].into_iter().enumerate() {
        let Ok(text) = std::str::from_utf8(&written[slot]) else { continue };
        if text.contains('\r') {
            continue;
        }
        let mut joined = String::new();
        for line in lines.iter().filter(|l| l.stream == stream) {
            assert!(line.text.len() <= MAX_LOG_LINE, "a {}-byte line", line.text.len());
            joined.push_str(&line.text);
            if !line.cut {
                joined.push('\n');
            }
        }
        let mut expected = text.to_owned();
        if !expected.is_empty() && !expected.ends_with('\n') {
            expected.push('\n');
        }
        assert!(joined == expected, "{stream:?}: the lines do not add up to what was written");
    }
});
