//! The DATA body decoder: dot-unstuffing and the end-of-data marker.
//!
//! Only `CRLF . CRLF` ends a message (the opening CRLF may be the one that
//! ended the DATA command). A bare LF or bare CR never ends it and never
//! starts a line, so `LF . LF`, `LF . CRLF` or `CR . CR` cannot smuggle a
//! second message past Ferry. Bare line endings inside the message are
//! normalised to CRLF, so every downstream hop sees the same line
//! structure Ferry saw (Postfix 3.9's `smtpd_forbid_bare_newline =
//! normalize`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after a real CRLF).
    LineStart,
    /// A '.' at the start of a line.
    Dot,
    /// '.' then CR at the start of a line.
    DotCr,
    /// Inside a line.
    Line,
    /// Inside a line, after a CR.
    Cr,
}

pub struct DotReader {
    state: State,
    /// Bytes of message content decoded so far (counted even past the limit).
    pub size: u64,
    limit: u64,
    /// Content, kept up to `limit` bytes (spilled to disk past the spool's
    /// in-memory part).
    pub body: crate::queue::spool::Spool,
}

impl DotReader {
    /// A reader that keeps everything in memory (tests, fuzzing).
    pub fn new(limit: u64) -> Self {
        Self::with_spool(limit, crate::queue::spool::Spool::in_memory())
    }

    pub fn with_spool(limit: u64, body: crate::queue::spool::Spool) -> Self {
        DotReader {
            state: State::LineStart,
            size: 0,
            limit,
            body,
        }
    }

    pub fn over_limit(&self) -> bool {
        self.size > self.limit
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size <= self.limit {
            self.body.extend_from_slice(bytes);
        }
    }

    /// Consumes input; returns how many bytes were used and whether the end
    /// marker was reached (the rest of the input belongs to the next command).
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            // Inside a line, a run of bytes up to the next CR or LF goes
            // to the body at once; only line ends and line starts are
            // looked at a byte at a time.
            let plain = match self.state {
                State::Line => true,
                State::LineStart => b != b'.',
                _ => false,
            };
            if plain && b != b'\r' && b != b'\n' {
                let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                self.emit(&input[i..i + run]);
                self.state = State::Line;
                i += run;
                continue;
            }
            i += 1;
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::LineStart | State::Line, b'\r') => State::Cr,
                (State::LineStart | State::Line, b'\n') => {
                    self.emit(b"\r\n");
                    State::Line
                }
                (State::LineStart | State::Line, c) => {
                    self.emit(&[c]);
                    State::Line
                }
                (State::Dot, b'\r') => State::DotCr,
                (State::Dot, b'\n') => {
                    // ". LF": not an end; keep the line as written, normalised.
                    self.emit(b".\r\n");
                    State::Line
                }
                (State::Dot, c) => {
                    // A stuffed dot: drop it.
                    self.emit(&[c]);
                    State::Line
                }
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return (i, true);
                }
                (State::DotCr, b'\r') => {
                    self.emit(b".\r\n");
                    State::Cr
                }
                (State::DotCr, c) => {
                    self.emit(b".\r\n");
                    self.emit(&[c]);
                    State::Line
                }
                (State::Cr, b'\n') => {
                    self.emit(b"\r\n");
                    State::LineStart
                }
                (State::Cr, b'\r') => {
                    self.emit(b"\r\n");
                    State::Cr
                }
                (State::Cr, c) => {
                    self.emit(b"\r\n");
                    self.emit(&[c]);
                    State::Line
                }
            };
        }
        (input.len(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut r = DotReader::new(1 << 20);
        let (used, done) = r.feed(input);
        done.then_some((r.body.head().to_vec(), used))
    }

    #[test]
    fn ends_only_on_crlf_dot_crlf() {
        assert_eq!(
            decode(b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL"),
            Some((b"Subject: x\r\n\r\nhi\r\n".to_vec(), 21))
        );
        assert_eq!(decode(b".\r\n"), Some((vec![], 3)), "an empty message");
        for smuggle in [
            &b"hi\n.\nMAIL FROM:<x>\r\n"[..],
            b"hi\n.\r\nMAIL",
            b"hi\r\n.\nMAIL",
            b"hi\r.\rMAIL",
            b"hi\r\n.\rX",
        ] {
            assert_eq!(
                decode(smuggle),
                None,
                "{:?} must not end the message",
                String::from_utf8_lossy(smuggle)
            );
        }
    }

    #[test]
    fn unstuffs_leading_dots_and_normalises_bare_line_ends() {
        let (body, _) = decode(b"..leading\r\nbare\nlf\rcr\r\n.\r\n").unwrap();
        assert_eq!(body, b".leading\r\nbare\r\nlf\r\ncr\r\n");
        let (body, _) = decode(b"a\n.\nb\r\n.\r\n").unwrap();
        assert_eq!(
            body, b"a\r\n.\r\nb\r\n",
            "a bare-LF dot line is kept as content, never an end"
        );
    }

    #[test]
    fn works_across_arbitrary_splits() {
        let input = b"From: a\r\n\r\n..x\nbare\r\nline\r\n.\r\n";
        for split in 0..input.len() {
            let mut r = DotReader::new(1000);
            let (u1, d1) = r.feed(&input[..split]);
            assert!(!d1 && u1 == split);
            let (_, d2) = r.feed(&input[split..]);
            assert!(d2);
            assert_eq!(r.body.head(), b"From: a\r\n\r\n.x\r\nbare\r\nline\r\n");
        }
    }

    /// The state machine a byte at a time, as `feed` was before it took
    /// runs of line content at once: the two must agree on everything.
    fn reference(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let (mut state, mut out) = (State::LineStart, vec![]);
        for (i, &b) in input.iter().enumerate() {
            state = match (state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::LineStart | State::Line, b'\r') => State::Cr,
                (State::LineStart | State::Line, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    State::Line
                }
                (State::LineStart | State::Line, c) => {
                    out.push(c);
                    State::Line
                }
                (State::Dot, b'\r') => State::DotCr,
                (State::Dot, b'\n') => {
                    out.extend_from_slice(b".\r\n");
                    State::Line
                }
                (State::Dot, c) => {
                    out.push(c);
                    State::Line
                }
                (State::DotCr, b'\n') => return (out, Some(i + 1)),
                (State::DotCr, b'\r') => {
                    out.extend_from_slice(b".\r\n");
                    State::Cr
                }
                (State::DotCr, c) => {
                    out.extend_from_slice(b".\r\n");
                    out.push(c);
                    State::Line
                }
                (State::Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    State::LineStart
                }
                (State::Cr, b'\r') => {
                    out.extend_from_slice(b"\r\n");
                    State::Cr
                }
                (State::Cr, c) => {
                    out.extend_from_slice(b"\r\n");
                    out.push(c);
                    State::Line
                }
            };
        }
        (out, None)
    }

    proptest::proptest! {
        #[test]
        fn runs_decode_as_the_byte_machine_does(
            input in proptest::collection::vec(proptest::sample::select(b"..\r\n\nab".to_vec()), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..4),
        ) {
            let (want, end) = reference(&input);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            cuts.push(input.len());
            let mut r = DotReader::new(1 << 20);
            let (mut at, mut ended) = (0, None);
            for cut in cuts {
                if cut < at || ended.is_some() {
                    continue;
                }
                let (used, done) = r.feed(&input[at..cut]);
                if done {
                    ended = Some(at + used);
                } else {
                    proptest::prop_assert_eq!(used, cut - at);
                }
                at = cut;
            }
            proptest::prop_assert_eq!(ended, end);
            proptest::prop_assert_eq!(r.body.head(), &want[..]);
        }
    }

    #[test]
    fn counts_past_the_limit_without_keeping() {
        let mut r = DotReader::new(4);
        let (_, done) = r.feed(b"123456789\r\n.\r\n");
        assert!(done && r.over_limit());
        assert_eq!(r.size, 11);
        assert!(r.body.len() <= 4);
    }
}
