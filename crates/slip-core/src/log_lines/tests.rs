use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// One frame of the engine's output.
type Frame = (OutputStream, Vec<u8>);

fn out(s: &str) -> Frame {
    out_bytes(s.as_bytes())
}

fn err(s: &str) -> Frame {
    err_bytes(s.as_bytes())
}

fn out_bytes(bytes: &[u8]) -> Frame {
    (OutputStream::Stdout, bytes.to_vec())
}

fn err_bytes(bytes: &[u8]) -> Frame {
    (OutputStream::Stderr, bytes.to_vec())
}

/// Every line the frames give, the unfinished ones included, checking the cap after each frame.
fn split(frames: impl IntoIterator<Item = Frame>) -> Vec<LogLine> {
    let mut lines = LogLines::default();
    let mut all = Vec::new();
    for frame in frames {
        all.extend(lines.push(frame.0, &frame.1));
        let buffered = lines.buffered(OutputStream::Stdout).max(lines.buffered(OutputStream::Stderr));
        assert!(buffered <= MAX_LOG_LINE, "{buffered} bytes buffered between frames");
    }
    all.extend(lines.finish());
    all
}

fn texts(lines: &[LogLine]) -> Vec<(&str, &str)> {
    lines.iter().map(|l| (l.stream.as_str(), l.text.as_str())).collect()
}

#[test]
fn lines_are_split_per_stream() {
    let mut lines = LogLines::default();
    let mut all = Vec::new();
    for frame in [out("hel"), err("oops\n"), out("lo\nwor"), out("ld\r\nlast")] {
        all.extend(lines.push(frame.0, &frame.1));
    }
    all.extend(lines.finish());
    assert_eq!(texts(&all), vec![("stderr", "oops"), ("stdout", "hello"), ("stdout", "world"), ("stdout", "last")]);
    assert!(all.iter().all(|l| l.at.is_none()), "frames without a timestamp give lines without one");
}

#[test]
fn a_line_keeps_the_time_of_the_frame_that_began_it() {
    let t = |nanos: u32| UNIX_EPOCH + Duration::new(1_700_000_000, nanos);
    let mut lines = LogLines::default();
    let mut all = Vec::new();
    for frame in [
        out("2023-11-14T22:13:20.000000001Z first\n"),
        out("2023-11-14T22:13:20.000000002Z a long line in "),
        out("2023-11-14T22:13:20.000000003Z two parts\nand more\n"),
        err("2023-11-14T22:13:20.000000004Z 2023-11-14T22:13:20Z is text here\n"),
    ] {
        all.extend(lines.push(frame.0, &frame.1));
    }
    let got: Vec<(Option<SystemTime>, &str)> = all.iter().map(|l| (l.at, l.text.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(t(1)), "first"),
            (Some(t(2)), "a long line in two parts"),
            (Some(t(3)), "and more"),
            (Some(t(4)), "2023-11-14T22:13:20Z is text here"),
        ]
    );
}

#[test]
fn a_line_longer_than_the_cap_comes_in_marked_pieces_of_the_cap() {
    // Docker's 16 KiB frames of a progress bar that never ends a line, then its end.
    let bar = "=\r".repeat(8 * 1024);
    let mut frames: Vec<Frame> = (0..5).map(|_| out(&bar)).collect();
    frames.push(out("done\n"));
    let all = split(frames);
    let sizes: Vec<(usize, bool)> = all.iter().map(|l| (l.text.len(), l.cut)).collect();
    assert_eq!(sizes, vec![(MAX_LOG_LINE, true), (5 * bar.len() - MAX_LOG_LINE + 4, false)]);
    assert_eq!(all.iter().map(|l| l.text.as_str()).collect::<String>(), format!("{}done", bar.repeat(5)));

    // One frame holding several caps' worth, and a finished line before it that stays whole.
    let all = split([out("short\n"), out(&"x".repeat(3 * MAX_LOG_LINE + 10))]);
    let sizes: Vec<(usize, bool)> = all.iter().map(|l| (l.text.len(), l.cut)).collect();
    assert_eq!(sizes, vec![(5, false), (MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (MAX_LOG_LINE, true), (10, false)]);
}

#[test]
fn a_cut_never_splits_a_character() {
    let before = "a".repeat(MAX_LOG_LINE - 1);
    let all = split([out(&format!("{before}\u{e9}\u{1f600} and more\n"))]);
    assert_eq!(
        (all[0].text.as_str(), all[0].cut),
        (before.as_str(), true),
        "the cut moves back to the character's start"
    );
    assert_eq!(all[1].text, "\u{e9}\u{1f600} and more");
    assert!(all.iter().all(|l| !l.text.contains('\u{fffd}')));
}

#[test]
fn a_character_split_between_frames_stays_whole_and_streams_stay_apart() {
    // "é" is C3 A9 and "😀" is F0 9F 98 80; the engine cuts its frames anywhere, timestamps on each.
    let frames = [
        out_bytes(b"2023-11-14T22:13:20.000000001Z caf\xc3"),
        err_bytes(b"2023-11-14T22:13:20.000000002Z x\xf0\x9f"),
        out_bytes(b"2023-11-14T22:13:20.000000003Z \xa9 ok\n"),
        err_bytes(b"2023-11-14T22:13:20.000000004Z \x98"),
        err_bytes(b"2023-11-14T22:13:20.000000005Z \x80\n"),
    ];
    let all = split(frames);
    assert_eq!(texts(&all), vec![("stdout", "caf\u{e9} ok"), ("stderr", "x\u{1f600}")]);
    let first = UNIX_EPOCH + Duration::new(1_700_000_000, 1);
    assert_eq!(all[0].at, Some(first), "a line keeps the time of its first frame");
    // Bytes that are not UTF-8 at all are still replaced, once the line is complete.
    assert_eq!(split([out_bytes(b"bin \xff\xfe end")])[0].text, "bin \u{fffd}\u{fffd} end");
}
