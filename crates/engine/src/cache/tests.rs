//! A batch of new prompts must leave each sliding window exactly as a prompt run alone the way
//! mlx-lm runs it (all but its last token, then the last by itself), and give each prompt's
//! last position the same numbers: a single query over the ring in slot order. In float16 the
//! batch's own row (temporal order) differs from that in a few elements per ten thousand, so
//! these shapes and seeds catch a batch that keeps its own row.

use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{Array, Dtype};

use super::{AttentionSpec, CacheKind, LayerCache, LayerCaches};

const WINDOW: i32 = 8;
/// Prompts longer than the window (wrapped once the last token is written alone) and not.
const LENS: [i32; 3] = [13, 6, 20];
/// Query heads, key/value heads, head width.
const HEADS: (i32, i32, i32) = (32, 8, 64);

fn random(shape: &[i32], seed: u64) -> Array {
    let key = mlx_rs::random::key(seed).unwrap();
    mlx_rs::random::normal::<f32>(shape, None, None, &key).unwrap().as_dtype(Dtype::Float16).unwrap()
}

fn spec() -> AttentionSpec {
    AttentionSpec { scale: 0.125, softcap: None, window: Some(WINDOW), sinks: None }
}

fn windows() -> Vec<LayerCache> {
    LENS.iter().map(|_| LayerCache::new(CacheKind::Window(WINDOW))).collect()
}

/// Positions `from..to` of batch row `row`.
fn rows(a: &Array, row: usize, from: i32, to: i32) -> Array {
    a.try_index((row as i32..row as i32 + 1, .., from..to, ..)).unwrap()
}

fn same(a: &Array, b: &Array) -> bool {
    a.eq_values(b).unwrap()
}

/// A padded batch of `LENS` prompts' queries, keys and values, and one more token's each.
struct Batch {
    q: Array,
    k: Array,
    v: Array,
    next: [Array; 3],
}

impl Batch {
    fn new(seed: u64) -> Batch {
        let (b, l, (h, kv, d)) = (LENS.len() as i32, *LENS.iter().max().unwrap(), HEADS);
        Batch {
            q: random(&[b, h, l, d], seed),
            k: random(&[b, kv, l, d], seed + 1),
            v: random(&[b, kv, l, d], seed + 2),
            next: [random(&[b, h, 1, d], seed + 3), random(&[b, kv, 1, d], seed + 4), random(&[b, kv, 1, d], seed + 5)],
        }
    }

    /// Prompt `i` alone as mlx-lm runs it: its cache and its last position's output.
    fn prompt_alone(&self, i: usize) -> (LayerCache, Array) {
        let (len, mut cache) = (LENS[i], LayerCache::new(CacheKind::Window(WINDOW)));
        let mut one = LayerCaches::One(&mut cache);
        let (q, k, v) = (&self.q, &self.k, &self.v);
        one.attend(&rows(q, i, 0, len - 1), rows(k, i, 0, len - 1), rows(v, i, 0, len - 1), &spec()).unwrap();
        let last = one.attend(&rows(q, i, len - 1, len), rows(k, i, len - 1, len), rows(v, i, len - 1, len), &spec());
        (cache, last.unwrap())
    }
}

#[test]
fn a_fresh_batch_gives_each_prompt_what_it_gets_alone_as_mlx_lm_runs_it() {
    for seed in 0..8 {
        let batch = Batch::new(10 * seed);
        let (q, k, v) = (&batch.q, &batch.k, &batch.v);
        let mut caches = windows();
        let mut fresh = LayerCaches::Fresh { caches: caches.iter_mut().collect(), lens: &LENS, last_only: false };
        let out = fresh.attend(q, k.clone(), v.clone(), &spec()).unwrap();
        let mut last_caches = windows();
        let mut fresh_last =
            LayerCaches::Fresh { caches: last_caches.iter_mut().collect(), lens: &LENS, last_only: true };
        let out_last = fresh_last.attend(q, k.clone(), v.clone(), &spec()).unwrap();
        let [q1, k1, v1] = &batch.next;
        let mut decode = LayerCaches::Decode { caches: caches.iter_mut().collect() };
        let next = decode.attend(q1, k1.clone(), v1.clone(), &spec()).unwrap();
        for (i, &len) in LENS.iter().enumerate() {
            let (mut cache, last) = batch.prompt_alone(i);
            let next_alone = LayerCaches::One(&mut cache)
                .attend(&rows(q1, i, 0, 1), rows(k1, i, 0, 1), rows(v1, i, 0, 1), &spec())
                .unwrap();
            assert!(same(&rows(&out, i, len - 1, len), &last), "seed {seed}, prompt {i}: last position");
            assert!(same(&rows(&out_last, i, 0, 1), &last), "seed {seed}, prompt {i}: in the last layer");
            assert!(same(&rows(&next, i, 0, 1), &next_alone), "seed {seed}, prompt {i}: the next token");
        }
    }
}

#[test]
fn a_kv_shared_layer_reads_each_prompts_window_as_alone() {
    for seed in 0..8 {
        let batch = Batch::new(10 * seed + 7);
        let (q, k, v) = (&batch.q, &batch.k, &batch.v);
        let mut caches = windows();
        let mut fresh = LayerCaches::Fresh { caches: caches.iter_mut().collect(), lens: &LENS, last_only: false };
        fresh.attend(q, k.clone(), v.clone(), &spec()).unwrap();
        // Another layer's queries over what this one stored.
        let q2 = random(q.shape(), 10 * seed + 9);
        let pass_kv = (k.clone(), v.clone());
        let shared = fresh.attend_stored(&q2, &pass_kv, &spec()).unwrap();
        for (i, &len) in LENS.iter().enumerate() {
            let (mut cache, _) = batch.prompt_alone(i);
            let alone = LayerCaches::One(&mut cache).attend_stored(&rows(&q2, i, len - 1, len), &pass_kv, &spec());
            assert!(same(&rows(&shared, i, len - 1, len), &alone.unwrap()), "seed {seed}, prompt {i}");
        }
    }
}

/// Keys `[1, 1, n, 1]` whose values are their positions `from..from + n` (for the window caches'
/// own tests).
pub(super) fn positions(from: i32, n: i32) -> Array {
    let p: Vec<f32> = (from..from + n).map(|p| p as f32).collect();
    Array::from_slice(&p, &[1, 1, n, 1])
}
