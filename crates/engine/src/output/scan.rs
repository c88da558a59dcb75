//! Reading markup from text that is still arriving: finding the first marker (or the tail that
//! may become one), and reading fixed syntax that may be incomplete. Every format uses these, so
//! "hold back only what could still be markup" is decided in one place.

/// Why a read stopped before it got what it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The text so far fits; more is needed to decide.
    More,
    /// The text fits but generation ended before it was complete.
    Cut,
    /// The text does not fit.
    No,
}

/// A read that may stop short.
pub(super) type Read<T> = Result<T, Stop>;

/// Where the first marker is in a piece of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    /// Marker number `which` starts at byte `at`.
    Whole { at: usize, which: usize },
    /// From byte `at` on the text is the beginning of a marker, and no whole marker starts
    /// earlier: hold it back.
    Partial { at: usize },
    /// No marker and no beginning of one.
    Nothing,
}

/// The first of `markers` in `s` (the longest where two start at the same byte). Unless `fin`,
/// a tail of `s` that a marker starts with counts too.
pub(super) fn find<M: AsRef<str>>(s: &str, markers: &[M], fin: bool) -> Hit {
    let whole = markers
        .iter()
        .enumerate()
        .filter_map(|(i, m)| s.find(m.as_ref()).map(|at| (at, i)))
        .min_by_key(|&(at, i)| (at, usize::MAX - markers[i].as_ref().len()));
    let partial = if fin { None } else { partial_start(s, markers) };
    match (whole, partial) {
        (Some((at, _)), Some(p)) if p < at => Hit::Partial { at: p },
        (Some((at, which)), _) => Hit::Whole { at, which },
        (None, Some(at)) => Hit::Partial { at },
        (None, None) => Hit::Nothing,
    }
}

/// The earliest byte from which the rest of `s` is a proper beginning of some marker.
fn partial_start<M: AsRef<str>>(s: &str, markers: &[M]) -> Option<usize> {
    let longest = markers.iter().map(|m| m.as_ref().len()).max()?;
    let from = s.len().saturating_sub(longest.saturating_sub(1));
    (from..s.len()).filter(|&i| s.is_char_boundary(i)).find(|&i| {
        let tail = &s[i..];
        markers.iter().any(|m| m.as_ref().len() > tail.len() && m.as_ref().starts_with(tail))
    })
}

/// Reads fixed syntax from the start of a text that may still grow (unless `fin`). Reads that
/// run out of text stop with [`Stop::More`], or [`Stop::Cut`] once generation has ended.
pub(super) struct Cursor<'a> {
    s: &'a str,
    /// Bytes read so far.
    pub(super) pos: usize,
    fin: bool,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(s: &'a str, fin: bool) -> Cursor<'a> {
        Cursor { s, pos: 0, fin }
    }

    /// The text not read yet.
    pub(super) fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// The next character, if there is one yet.
    pub(super) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// The stop for "the text ended here": more may come, or it was cut.
    pub(super) fn short<T>(&self) -> Read<T> {
        Err(if self.fin { Stop::Cut } else { Stop::More })
    }

    /// Skips whitespace.
    pub(super) fn ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Reads `lit` exactly.
    pub(super) fn lit(&mut self, lit: &str) -> Read<()> {
        let rest = self.rest();
        if rest.starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else if lit.starts_with(rest) {
            self.short()
        } else {
            Err(Stop::No)
        }
    }

    /// Reads `lit` if it is there.
    pub(super) fn opt(&mut self, lit: &str) -> Read<bool> {
        match self.lit(lit) {
            Ok(()) => Ok(true),
            Err(Stop::No) => Ok(false),
            Err(stop) => Err(stop),
        }
    }

    /// Reads the characters for which `f` holds; something else must follow them (or the text
    /// must be finished), so that the word is known to be whole.
    pub(super) fn word(&mut self, f: impl Fn(char) -> bool) -> Read<&'a str> {
        let rest = self.rest();
        match rest.find(|c: char| !f(c)) {
            Some(n) => {
                self.pos += n;
                Ok(&rest[..n])
            }
            None if self.fin => {
                self.pos += rest.len();
                Ok(rest)
            }
            None => self.short(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_and_partial_markers() {
        let m = ["<tool_call>", "<think>"];
        assert_eq!(find("a<think>b", &m, false), Hit::Whole { at: 1, which: 1 });
        assert_eq!(find("ab<tool_c", &m, false), Hit::Partial { at: 2 });
        assert_eq!(find("ab<tool_c", &m, true), Hit::Nothing);
        assert_eq!(find("ab<x", &m, false), Hit::Nothing);
        assert_eq!(find("é<", &m, false), Hit::Partial { at: 2 });
    }

    #[test]
    fn cursor_tells_more_from_no() {
        let mut c = Cursor::new("<func", false);
        assert_eq!(c.lit("<function="), Err(Stop::More));
        assert_eq!(Cursor::new("<func", true).lit("<function="), Err(Stop::Cut));
        assert_eq!(c.lit("<param"), Err(Stop::No));
        let mut c = Cursor::new("name[ARGS]", false);
        assert_eq!(c.word(char::is_alphanumeric), Ok("name"));
        assert_eq!(c.opt("[CALL_ID]"), Ok(false));
        assert_eq!(c.opt("[ARGS]"), Ok(true));
        assert_eq!(c.peek(), None);
    }
}
