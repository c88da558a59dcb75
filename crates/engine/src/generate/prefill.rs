//! Where a prompt's prefill pieces are cut, so that a prompt cut by our pacing leaves its
//! sliding windows exactly as mlx-lm's own 2048-token chunks leave them.
//!
//! mlx-lm's `generate_step` runs the prompt (the part after its cache) in pieces of
//! `prefill_step_size` while more than one token remains, then the last token alone as the first
//! decode step. So its pieces from `start` to `last` (the prompt's last position) are 2048 tokens
//! each and a remainder; the remainder is a single token exactly when `last - start` is one past
//! a multiple of 2048.
//!
//! A sliding-window layer (`cache/rotating.rs`) treats a pass by its size. A pass of several
//! tokens puts the ring back in temporal order and keeps the last `window − 1` positions before
//! its own: what it attends over and what it leaves depend only on where it starts and ends,
//! never on how the positions before it were cut. A pass of one token is written in place,
//! at the ring's next slot, and attends over the ring in slot order. The ring's slot layout for
//! every later single token (the rest of the prompt, then every decode step) is therefore fixed
//! by where the last multi-token pass ended: position `p` sits in slot `(p − end) mod window`
//! (slot `p` while the pass ended within the first window). Hence the condition: **a cut runs
//! mlx-lm's single-token passes over mlx-lm's ring in mlx-lm's slot order iff its one-token
//! pieces are exactly mlx-lm's** — none, or only `[last − 1, last)` where mlx-lm has it — so its
//! last multi-token pass ends where mlx-lm's does. A stray one-token piece shifts every later
//! slot against mlx-lm's (a single query then sums its window in another order: a 16-bit
//! model's greedy tokens part from mlx-lm's now and then), and so does running past mlx-lm's
//! own one-token piece. Where the multi-token passes are cut does not move the ring; it only
//! changes which masked keys those passes carry (docs/ARCHITECTURE.md's limits). Outside
//! windows a one-token piece is a 1-row pass where mlx-lm computes that position among other
//! rows (products that may round differently), so the rule applies to every model: it moves a
//! cut by at most one position.

use super::PREFILL_CHUNK;

/// Where mlx-lm's multi-token passes over `start..last` end: `last`, or `last - 1` when its
/// last piece is the one token `[last - 1, last)` (`start` itself when that is all there is).
fn multi_token_end(start: usize, last: usize) -> usize {
    if (last - start) % PREFILL_CHUNK == 1 {
        last - 1
    } else {
        last
    }
}

/// The end of the prefill piece that starts at `next`, for a prompt whose positions from
/// `start` (its cache's end) to `last` (its last position, run alone afterwards) are being
/// prefilled in pieces of about `chunk` tokens. A piece never has one token except mlx-lm's own
/// one-token piece, and the multi-token pieces end where mlx-lm's do (module docs): a piece
/// that would leave a single position before that end is one shorter (two are left), or, when
/// it has only two, one longer. Pieces stay at most [`PREFILL_CHUNK`] long, and with
/// `chunk == PREFILL_CHUNK` from `start` they are mlx-lm's own.
pub(super) fn piece_end(start: usize, next: usize, last: usize, chunk: usize) -> usize {
    let multi = multi_token_end(start, last);
    if next >= multi {
        return last;
    }
    let end = (next + chunk.clamp(2, PREFILL_CHUNK)).min(multi);
    match multi - end {
        1 if end - next > 2 => end - 1,
        1 => multi,
        _ => end,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::config::ModelConfig;
    use crate::generate::{GenerationEvent, GenerationParams, Sequence, Step};
    use crate::model::Model;
    use crate::tiny::{write_family_model_with, TinyDtype, TinyFamily, TinySpec};
    use crate::tokenizer::Tokenizer;

    /// The pieces `start..last` is cut into with `chunk(piece index)` tokens asked each time.
    fn pieces(start: usize, last: usize, chunk: impl Fn(usize) -> usize) -> Vec<usize> {
        let (mut next, mut out) = (start, Vec::new());
        while next < last {
            let end = piece_end(start, next, last, chunk(out.len()));
            assert!(end > next && end <= last);
            out.push(end - next);
            next = end;
        }
        out
    }

    /// mlx-lm's `generate_step`: pieces of 2048 while more than one token remains.
    fn mlx_lm(start: usize, last: usize) -> Vec<usize> {
        let (mut done, mut out) = (start, Vec::new());
        while last + 1 - done > 1 {
            let n = PREFILL_CHUNK.min(last - done);
            out.push(n);
            done += n;
        }
        out
    }

    /// Whether `cut` leaves the ring as `reference` does: the same one-token pieces, at the
    /// same positions (the module's condition).
    fn same_single_positions(start: usize, cut: &[usize], reference: &[usize]) -> bool {
        let singles = |p: &[usize]| {
            let mut at = start;
            p.iter()
                .filter_map(|&n| {
                    at += n;
                    (n == 1).then_some(at - 1)
                })
                .collect::<Vec<_>>()
        };
        singles(cut) == singles(reference)
    }

    #[test]
    fn whole_chunks_are_mlx_lms_own_pieces() {
        for start in [0, 5, 300] {
            for rest in (0..5000).chain([2 * PREFILL_CHUNK + 1, 3 * PREFILL_CHUNK + 1]) {
                let last = start + rest;
                assert_eq!(pieces(start, last, |_| PREFILL_CHUNK), mlx_lm(start, last), "{start}..{last}");
            }
        }
    }

    #[test]
    fn any_slices_keep_mlx_lms_one_token_pieces_and_no_other() {
        // Slices of any size, and pacing's changing ones, over prompts that end every way.
        let sizes: [&dyn Fn(usize) -> usize; 5] =
            [&|_| 16, &|_| 2, &|_| 1, &|i| [16, 17, 300, 31, 2048, 5][i % 6], &|i| 2047 + i % 3];
        for start in [0, 7] {
            for rest in (0..300).chain(PREFILL_CHUNK - 3..PREFILL_CHUNK + 40).chain([2 * PREFILL_CHUNK + 1]) {
                let last = start + rest;
                let reference = mlx_lm(start, last);
                for size in sizes {
                    let cut = pieces(start, last, size);
                    assert!(cut.iter().all(|&n| n <= PREFILL_CHUNK));
                    assert!(same_single_positions(start, &cut, &reference), "{start}..{last}: {cut:?}");
                }
            }
        }
        // The case this rule is for: slices of 16 over 33 positions once left [32, 33) alone.
        assert_eq!(pieces(0, 33, |_| 16), [16, 15, 2]);
        // mlx-lm's own one-token piece (2049 positions) survives pacing's slices.
        assert_eq!(pieces(0, 2049, |_| 1000), [1000, 1000, 48, 1]);
    }

    /// mlx-lm's `RotatingKVCache` (keep 0) over positions instead of keys: which position each
    /// slot holds, to compare layouts without a model.
    #[derive(Default)]
    struct Ring {
        slots: Vec<Option<usize>>,
        offset: usize,
        idx: usize,
    }

    impl Ring {
        fn temporal(&self) -> Vec<Option<usize>> {
            let s = &self.slots;
            if self.idx == s.len() {
                s.clone()
            } else if self.idx < self.offset {
                [&s[self.idx..], &s[..self.idx]].concat()
            } else {
                s[..self.idx].to_vec()
            }
        }

        /// `update_and_fetch` of `n` new positions: what their queries attend over, in order.
        fn update(&mut self, n: usize, window: usize) -> Vec<Option<usize>> {
            let new = (self.offset..self.offset + n).map(Some);
            if n > 1 {
                let mut s = self.temporal();
                s.drain(..(s.len() + 1).saturating_sub(window));
                s.extend(new);
                self.slots = s;
                self.offset += n;
                self.idx = self.slots.len();
                return self.slots.clone();
            }
            if self.offset >= self.slots.len() && self.slots.len() < window {
                let grow = 256.min(window - self.offset);
                self.slots.extend(std::iter::repeat_n(None, grow));
                self.idx = self.offset;
            }
            if self.slots.len() > window {
                self.slots.drain(..self.slots.len() - window);
                self.idx = window;
            }
            if self.idx == window {
                self.idx = 0;
            }
            self.slots[self.idx] = Some(self.offset);
            self.offset += 1;
            self.idx += 1;
            self.slots[..self.offset.min(self.slots.len())].to_vec()
        }
    }

    /// What every single query attends over (in slot order) when a prompt whose positions
    /// `start..last` follow a cached `start` is prefilled in `pieces`, then its last token and
    /// `decode` more run one at a time.
    fn single_queries(start: usize, pieces: &[usize], decode: usize, window: usize) -> Vec<Vec<Option<usize>>> {
        let mut ring = Ring::default();
        if start > 0 {
            ring.update(start, window);
        }
        let steps = pieces.iter().copied().chain(std::iter::repeat_n(1, decode + 1));
        steps.filter_map(|n| Some(ring.update(n, window)).filter(|_| n == 1)).collect()
    }

    #[test]
    fn cut_pieces_leave_the_ring_in_mlx_lms_slot_order() {
        // As cache/rotating.rs's own tests have it: 9 positions, then single ones, window 4.
        let ring = single_queries(0, &[9], 1, 4);
        assert_eq!(ring, [[9, 6, 7, 8].map(Some), [9, 10, 7, 8].map(Some)]);
        for window in [8, 300] {
            for (start, rest) in [(0, 33), (0, 49), (7, 40), (0, 2049), (300, 2049), (0, 2100), (0, 1)] {
                let last = start + rest;
                let theirs = single_queries(start, &mlx_lm(start, last), 40, window);
                for chunk in [16, 2, 100, 1000, PREFILL_CHUNK] {
                    let cut = pieces(start, last, |_| chunk);
                    let ours = single_queries(start, &cut, 40, window);
                    assert_eq!(ours, theirs, "window {window}, {start}..{last} in {cut:?}");
                }
            }
        }
        // The cut this rule replaces: slices of 16 over 33 positions left [32, 33) alone, and
        // every later single query saw its window rotated by a slot.
        let (old, theirs) = (single_queries(0, &[16, 16, 1], 3, 8), single_queries(0, &[33], 3, 8));
        assert_eq!(theirs[0], [33, 26, 27, 28, 29, 30, 31, 32].map(Some));
        assert_eq!(old[1], [32, 33, 26, 27, 28, 29, 30, 31].map(Some));
        // And slices of 1000 ran past mlx-lm's own one-token piece of a 2050-token prompt.
        assert_ne!(single_queries(0, &[1000, 1000, 49], 3, 8), single_queries(0, &[2048, 1], 3, 8));
    }

    /// A tiny Gemma 3 of four layers, every other one a window of 8.
    fn gemma3(dir: &Path, dtype: TinyDtype, seed: u64) -> (Model, Tokenizer) {
        let spec =
            TinySpec { layers: 4, dtype, seed, max_position_embeddings: 4096, ..TinySpec::new(TinyFamily::Llama) };
        let window = json!({"sliding_window": 8, "sliding_window_pattern": 2});
        write_family_model_with(dir, "gemma3_text", &spec, &window).unwrap();
        let config = ModelConfig::load(dir).unwrap();
        let tokenizer = Tokenizer::load(dir, &config.eos_token_ids).unwrap();
        (Model::load(dir, config).unwrap(), tokenizer)
    }

    /// Greedy tokens after `prompt`, its prefill asked for `chunk` tokens a step.
    fn greedy(model: &Model, tok: &Tokenizer, prompt: &[u32], chunk: usize, n: usize) -> Vec<u32> {
        let params = GenerationParams { max_tokens: n, ..GenerationParams::default() };
        let mut seq = Sequence::new(model, tok, prompt.to_vec(), params, None).unwrap();
        while !seq.decoding() {
            seq.prefill_step(model, chunk).unwrap();
        }
        let (eos, mut out) = (BTreeSet::new(), Vec::new());
        loop {
            let step = Sequence::decode_together(model, tok, &eos, &mut [&mut seq]).unwrap().pop().unwrap().unwrap();
            let events = match step {
                Step::Continue => continue,
                Step::Token(event) => vec![event],
                Step::Tokens(events) => events,
                Step::Finished(events) => {
                    out.extend(events.into_iter().filter_map(|e| match e {
                        GenerationEvent::Token { id, .. } => Some(id),
                        _ => None,
                    }));
                    return out;
                }
            };
            out.extend(events.into_iter().filter_map(|e| match e {
                GenerationEvent::Token { id, .. } => Some(id),
                _ => None,
            }));
        }
    }

    /// 16-bit window models whose prompts are prefilled in slices (as pacing cuts them while
    /// another stream decodes) decode the tokens of their whole-chunk prefill, which is mlx-lm's
    /// (tests/families.rs holds those equal to mlx-lm's). Sliced at 16 and 32 (and 48), a
    /// prompt's position 32 (48) was once a one-token piece, its ring a slot off mlx-lm's, and
    /// these tokens parted from mlx-lm's at the 15th and the 161st; a 2050-token prompt, which
    /// mlx-lm ends with its own one-token piece, was sliced past it (parted at the 309th).
    #[test]
    fn prompts_sliced_by_pacing_decode_as_mlx_lms_chunks_do() {
        let cases = [
            (TinyDtype::Bf16, 4, 50, 16, 100),
            (TinyDtype::F16, 3, 34, 16, 200),
            (TinyDtype::Bf16, 6, 2050, 1000, 320),
        ];
        for (dtype, seed, len, chunk, n) in cases {
            let dir = tempfile::tempdir().unwrap();
            let (model, tok) = gemma3(dir.path(), dtype, seed);
            let prompt: Vec<u32> = (0..len).map(|i| (i * 37 + 3) % 400 + 5).collect();
            let whole = greedy(&model, &tok, &prompt, PREFILL_CHUNK, n);
            let sliced = greedy(&model, &tok, &prompt, chunk, n);
            assert_eq!(whole.len(), n);
            let first = whole.iter().zip(&sliced).position(|(a, b)| a != b);
            assert_eq!(first, None, "{dtype:?} {len} tokens in slices of {chunk}: parted at token {first:?}");
        }
    }
}
