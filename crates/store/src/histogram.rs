//! Latency histograms kept in the rollups: log-linear buckets (exact below 128 ms, then 64 buckets
//! per power of two), so a percentile read from merged rollups is within 1/128 of the exact
//! nearest-rank value (exact below 128 ms) whatever the number of rows behind it.

/// Values below this are their own bucket.
const EXACT: u64 = 128;
/// Buckets per power of two above `EXACT`.
const SUB: u64 = 64;
/// Buckets needed for any u64.
const BUCKETS: usize = (EXACT + (63 - 7 + 1) * SUB) as usize;

/// The bucket holding `v`.
pub(crate) fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let p = 63 - u64::from(v.leading_zeros()); // 7.. for v >= 128
    let mantissa = v >> (p - 6); // 64..128
    (EXACT + (p - 7) * SUB + (mantissa - SUB)) as usize
}

/// The smallest value and the width of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < EXACT {
        return (i, 1);
    }
    let p = (i - EXACT) / SUB + 7;
    let mantissa = (i - EXACT) % SUB + SUB;
    (mantissa << (p - 6), 1 << (p - 6))
}

/// Appends bucket `i` holding `n` rows as (u16 index, u32 count) little-endian pairs (several
/// when `n` exceeds u32::MAX).
fn push_pair(out: &mut Vec<u8>, i: usize, mut n: u64) {
    while n > 0 {
        let part = n.min(u64::from(u32::MAX));
        out.extend_from_slice(&(i as u16).to_le_bytes());
        out.extend_from_slice(&(part as u32).to_le_bytes());
        n -= part;
    }
}

/// The (bucket, count) pairs of an encoded histogram (a damaged tail is ignored).
fn pairs(blob: &[u8]) -> impl Iterator<Item = (usize, u64)> + '_ {
    blob.chunks_exact(6)
        .map(|p| (u16::from_le_bytes([p[0], p[1]]) as usize, u64::from(u32::from_le_bytes([p[2], p[3], p[4], p[5]]))))
}

/// Adds `values` to a histogram stored by [`Histogram::encode`] and returns the new encoding
/// (sparse both ways: no dense buffer, cost in the number of pairs and values).
pub(crate) fn add_to_blob(old: &[u8], values: &[u64]) -> Vec<u8> {
    let mut new: Vec<usize> = values.iter().map(|v| index(*v)).collect();
    new.sort_unstable();
    let mut out = Vec::with_capacity(old.len() + 6 * new.len().min(64));
    let mut old = pairs(old).peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let i = match (old.peek(), new.peek()) {
            (Some(&(a, _)), Some(&b)) => a.min(b),
            (Some(&(a, _)), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        let mut n = 0;
        while let Some(&(_, c)) = old.peek().filter(|(a, _)| *a == i) {
            n += c;
            old.next();
        }
        while new.next_if_eq(&i).is_some() {
            n += 1;
        }
        push_pair(&mut out, i, n);
    }
    out
}

/// A dense histogram being built or merged.
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

impl Histogram {
    pub(crate) fn add(&mut self, v: u64) {
        self.add_n(index(v), 1);
    }

    fn add_n(&mut self, i: usize, n: u64) {
        self.counts[i] += n;
        self.total += n;
    }

    /// Adds a histogram stored by [`Histogram::encode`] (ignores a damaged tail).
    pub(crate) fn merge_blob(&mut self, blob: &[u8]) {
        for (i, n) in pairs(blob).filter(|(i, _)| *i < BUCKETS) {
            self.add_n(i, n);
        }
    }

    /// The non-empty buckets as (u16 index, u32 count) little-endian pairs (the writer builds
    /// the same encoding incrementally with [`add_to_blob`]). A bucket holding more than
    /// u32::MAX rows is split into several pairs.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &n) in self.counts.iter().enumerate() {
            push_pair(&mut out, i, n);
        }
        out
    }

    /// Nearest-rank percentile (`p` in 0..=1): the middle of the bucket holding the value of rank
    /// round((n − 1)·p).
    pub(crate) fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((self.total - 1) as f64 * p).round() as u64;
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen > rank {
                let (low, width) = bounds(i);
                return Some(low + (width - 1) / 2);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range_and_are_narrow() {
        let mut next = 0;
        for i in 0..BUCKETS {
            let (low, width) = bounds(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + (width - 1)), i);
            assert!(low < EXACT || width * 64 <= low, "bucket {i} too wide");
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn percentiles_are_exact_below_128_and_within_a_128th_above() {
        let values: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 100_000).collect();
        let mut h = Histogram::default();
        values.iter().for_each(|v| h.add(*v));
        let mut merged = Histogram::default();
        merged.merge_blob(&h.encode());
        let mut sorted = values.clone();
        sorted.sort();
        for p in [0.0, 0.01, 0.5, 0.95, 0.99, 1.0] {
            let exact = sorted[((sorted.len() - 1) as f64 * p).round() as usize];
            let got = merged.percentile(p).unwrap();
            assert!(got.abs_diff(exact) * 128 <= exact.max(1), "p{p}: {got} vs {exact}");
        }
        // Built up blob by blob, as the writer does, it encodes the same as built at once.
        let mut blob = Vec::new();
        for chunk in values.chunks(777) {
            blob = add_to_blob(&blob, chunk);
        }
        assert_eq!(blob, h.encode());
        let mut small = Histogram::default();
        [5, 1, 127, 3].iter().for_each(|v| small.add(*v));
        assert_eq!(small.percentile(0.5), Some(5));
        assert_eq!(small.percentile(1.0), Some(127));
        assert_eq!(Histogram::default().percentile(0.5), None);
    }
}
