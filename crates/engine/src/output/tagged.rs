//! The reader for every format whose markup sits inside free text: reasoning between two tags,
//! and calls that open with a marker ([`Syntax`]) and are then read by a format's [`Reader`].
//! Text around them passes through; whitespace between calls (or before the first one) is
//! dropped, any other text is kept.

use super::scan::{self, Hit, Read, Stop};
use super::Ctx;

/// A format's tool-call markup: where a call starts, and how to read it once started.
pub(super) trait Syntax: Send {
    /// The markers that open a call (or a block of calls) in the text.
    fn markers(&self) -> &'static [&'static str];

    /// Reads the head of a call that follows marker number `marker`, far enough to know the
    /// tool's name, and checks that the request declared it. `rest` is the text after the marker.
    /// Must not emit events: it is asked again with more text after [`Stop::More`]. On success,
    /// returns the reader for the rest of the call and the bytes of `rest` it read.
    fn open(&self, marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened>;

    /// Characters that may separate calls besides whitespace (`;` for Llama 3).
    fn separators(&self) -> &'static str {
        ""
    }

    /// Whether a marker that turns out not to open a call is unremarkable (Llama 3's `{` in
    /// ordinary text) rather than worth a warning.
    fn quiet(&self, _marker: usize) -> bool {
        false
    }
}

/// A started call's reader, and how many bytes after the marker its opening took.
pub(super) type Opened = (Box<dyn Reader>, usize);

/// Reads the rest of a call (or a block of calls) once it opened.
pub(super) trait Reader: Send {
    /// Reads from the start of `buf`, emitting events into `ctx` (the first read emits the
    /// call's start). With `fin` it must not answer [`Step::More`].
    fn read(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Step;
}

/// What a [`Reader`] did with the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing could be read yet.
    More,
    /// Read this many bytes; the block goes on.
    Ate(usize),
    /// Read this many bytes and the block is over (every call in it ended); what follows is text.
    Done(usize),
}

impl Step {
    /// [`Step::Ate`] after reading `pos` bytes and then needing more.
    pub(super) fn wait(pos: usize) -> Step {
        if pos == 0 {
            Step::More
        } else {
            Step::Ate(pos)
        }
    }

    /// How a reader ends when the rest of a call cannot be read: `No`: the call ends and the rest
    /// is text; `Cut` (generation ended inside it): the call ends and the rest belonged to it;
    /// `More`: wait.
    pub(super) fn stopped(stop: Stop, pos: usize, len: usize, ctx: &mut Ctx) -> Step {
        match stop {
            Stop::More => Step::wait(pos),
            Stop::Cut => {
                ctx.end_call();
                Step::Done(len)
            }
            Stop::No => {
                ctx.end_call();
                Step::Done(pos)
            }
        }
    }
}

/// What a marker in the text means.
#[derive(Debug, Clone, Copy)]
enum Kind {
    ThinkStart,
    ThinkEnd,
    Call(usize),
}

/// Where the reader is.
enum State {
    /// In answer text. `boundary`: at the start, or after reasoning or a call, where whitespace
    /// is dropped if a call (or nothing) follows.
    Content {
        boundary: bool,
    },
    Reasoning,
    Call(Box<dyn Reader>),
}

/// Reasoning tags plus one format's calls, in free text.
pub(super) struct Tagged {
    /// The call syntax; `None` when the request declared no tools or the model has none.
    syntax: Option<Box<dyn Syntax>>,
    /// Every marker looked for in answer text, and what each means.
    markers: Vec<String>,
    kinds: Vec<Kind>,
    /// The reasoning end tag.
    think_end: Option<String>,
    state: State,
    /// Nothing but answer text so far (no reasoning, no call): whitespace that ends the output
    /// is then the whole answer, and is kept.
    fresh: bool,
}

impl Tagged {
    pub(super) fn new(syntax: Option<Box<dyn Syntax>>, think: Option<(String, String)>, in_reasoning: bool) -> Tagged {
        let mut markers = Vec::new();
        let mut kinds = Vec::new();
        if let Some((start, end)) = &think {
            markers.extend([start.clone(), end.clone()]);
            kinds.extend([Kind::ThinkStart, Kind::ThinkEnd]);
        }
        for (i, m) in syntax.iter().flat_map(|s| s.markers()).enumerate() {
            markers.push(m.to_string());
            kinds.push(Kind::Call(i));
        }
        let state = if in_reasoning && think.is_some() { State::Reasoning } else { State::Content { boundary: true } };
        let fresh = matches!(state, State::Content { .. });
        Tagged { syntax, markers, kinds, think_end: think.map(|(_, end)| end), state, fresh }
    }

    /// Reads from the start of `buf`: `Some(bytes read)`, or `None` to wait for more text.
    pub(super) fn step(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Option<usize> {
        match &mut self.state {
            State::Content { boundary } => {
                let boundary = *boundary;
                self.content(buf, fin, boundary, ctx)
            }
            State::Reasoning => self.reasoning(buf, fin, ctx),
            State::Call(reader) => match reader.read(buf, fin, ctx) {
                Step::More => None,
                Step::Ate(n) => Some(n),
                Step::Done(n) => {
                    self.state = State::Content { boundary: true };
                    Some(n)
                }
            },
        }
    }

    fn reasoning(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Option<usize> {
        let end = self.think_end.as_deref().unwrap_or_default();
        match scan::find(buf, &[end], fin) {
            Hit::Whole { at, .. } => {
                ctx.reasoning(&buf[..at]);
                self.state = State::Content { boundary: true };
                Some(at + end.len())
            }
            Hit::Partial { at: 0 } => None,
            Hit::Partial { at } => {
                ctx.reasoning(&buf[..at]);
                Some(at)
            }
            Hit::Nothing => {
                ctx.reasoning(buf);
                Some(buf.len())
            }
        }
    }

    fn content(&mut self, buf: &str, fin: bool, boundary: bool, ctx: &mut Ctx) -> Option<usize> {
        let separators = self.syntax.as_ref().map_or("", |s| s.separators());
        // Whitespace at a boundary is held until we know whether a call follows.
        let spacing = |s: &str| boundary && s.chars().all(|c| c.is_whitespace() || separators.contains(c));
        let (at, which) = match scan::find(buf, &self.markers, fin) {
            Hit::Nothing if spacing(buf) && !(fin && self.fresh) => return fin.then_some(buf.len()),
            Hit::Nothing => return Some(self.text(buf, buf.len(), ctx)),
            Hit::Partial { at } if at == 0 || spacing(&buf[..at]) => return None,
            Hit::Partial { at } => return Some(self.text(buf, at, ctx)),
            Hit::Whole { at, which } => (at, which),
        };
        let before = if spacing(&buf[..at]) { "" } else { &buf[..at] };
        let after = at + self.markers[which].len();
        match self.kinds[which] {
            Kind::ThinkStart => {
                ctx.text(before);
                self.fresh = false;
                self.state = State::Reasoning;
                Some(after)
            }
            Kind::ThinkEnd => {
                // An end tag outside reasoning: the text before it stays text.
                ctx.text(before);
                self.state = State::Content { boundary: true };
                Some(after)
            }
            Kind::Call(marker) => {
                let syntax = self.syntax.as_ref()?;
                match syntax.open(marker, &buf[after..], fin, ctx) {
                    Ok((reader, n)) => {
                        ctx.text(before);
                        self.fresh = false;
                        self.state = State::Call(reader);
                        Some(after + n)
                    }
                    Err(Stop::More) if before.is_empty() => None,
                    Err(Stop::More) => Some(self.text(buf, at, ctx)),
                    Err(Stop::No | Stop::Cut) => {
                        if !syntax.quiet(marker) {
                            let call: String = buf[at..].chars().take(200).collect();
                            tracing::warn!(call, "tool call not readable or not declared; passing it on as text");
                        }
                        Some(self.text(buf, after, ctx))
                    }
                }
            }
        }
    }

    /// Emits `buf[..n]` as text, leaving the boundary.
    fn text(&mut self, buf: &str, n: usize, ctx: &mut Ctx) -> usize {
        ctx.text(&buf[..n]);
        self.state = State::Content { boundary: false };
        n
    }
}
