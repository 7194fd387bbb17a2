//! Values built by appends: which appended strings a value contains, and whether some order of
//! appends could have built it. Shared by the refutation before search ([`super::Kv`]'s
//! `refute`), the explanation and the shrinker's rule (`explain.rs`).
//!
//! The key's distinct appended strings are searched all at once (Aho-Corasick), so a value is
//! scanned once whatever the number of appends.

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use rustc_hash::FxHashMap;

/// The distinct non-empty strings appended to one key.
pub(super) struct Pieces {
    /// `None` when there is no non-empty piece.
    finder: Option<AhoCorasick>,
    lens: Vec<usize>,
    ids: FxHashMap<String, u32>,
}

impl Pieces {
    /// The pieces of `texts` (duplicates and empty strings are ignored).
    pub(super) fn new(texts: impl IntoIterator<Item = impl AsRef<str>>) -> Pieces {
        let mut ids: FxHashMap<String, u32> = FxHashMap::default();
        let mut patterns: Vec<String> = Vec::new();
        for t in texts {
            let t = t.as_ref();
            if !t.is_empty() && !ids.contains_key(t) {
                ids.insert(t.to_owned(), patterns.len() as u32);
                patterns.push(t.to_owned());
            }
        }
        let lens = patterns.iter().map(|p| p.len()).collect();
        // The plainest automaton, without a prefilter: the shrinker builds one per candidate,
        // and building a DFA or a prefilter costs more than scanning the few short values
        // each key has (measured on Porcupine's c50 samples).
        let finder = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::NoncontiguousNFA))
                .prefilter(false)
                .build(&patterns)
                .expect("plain string patterns always build")
        });
        Pieces { finder, lens, ids }
    }

    /// The id of piece `text`; `None` for the empty string or a string not given to [`Pieces::new`].
    pub(super) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Number of distinct pieces (ids are `0..len`).
    pub(super) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Every occurrence of a piece in `value`, overlapping ones included: `(start, piece id)`.
    fn occurrences<'v>(&'v self, value: &'v str) -> impl Iterator<Item = (usize, u32)> + 'v {
        self.finder.iter().flat_map(move |f| {
            f.find_overlapping_iter(value)
                .map(|m| (m.start(), m.pattern().as_u32()))
        })
    }

    /// Counts in `found` (indexed by piece id, `len()` long) the occurrences of each piece in
    /// `value`, overlapping ones included.
    pub(super) fn count(&self, value: &str, found: &mut [u32]) {
        found.fill(0);
        for (_, id) in self.occurrences(value) {
            found[id as usize] += 1;
        }
    }

    /// Whether `value[from..]` is a concatenation of pieces (any piece any number of times: a
    /// necessary condition for appends to have built it, not a sufficient one).
    pub(super) fn build(&self, value: &str, from: usize) -> bool {
        if from > value.len() {
            return false;
        }
        let mut reach = vec![false; value.len() + 1];
        reach[from] = true;
        let mut starts: Vec<(usize, u32)> = self
            .occurrences(value)
            .filter(|&(s, _)| s >= from)
            .collect();
        starts.sort_unstable();
        for (start, id) in starts {
            if reach[start] {
                reach[start + self.lens[id as usize]] = true;
            }
        }
        reach[value.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_piece_a_value_contains_overlapping_ones_included() {
        let p = Pieces::new(["ab", "ba", "ab", "", "c"]);
        assert_eq!(p.len(), 3);
        let mut counts = vec![0; p.len()];
        let found = |counts: &[u32]| counts.iter().map(|&n| n > 0).collect::<Vec<_>>();
        p.count("aba", &mut counts);
        assert_eq!(found(&counts), [true, true, false]);
        p.count("", &mut counts);
        assert_eq!(found(&counts), [false, false, false]);
        p.count("ababc", &mut counts);
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(p.id("c"), Some(2));
        assert_eq!(p.id(""), None);
    }

    #[test]
    fn builds_a_value_only_from_whole_pieces_end_to_end() {
        let p = Pieces::new(["x1y", "x2y", "x12y"]);
        assert!(p.build("x1yx2y", 0));
        assert!(p.build("x12yx1y", 0));
        assert!(p.build("", 0));
        assert!(p.build("basex2y", 4));
        assert!(!p.build("x1yx2", 0), "a piece cut short");
        assert!(!p.build("x1yzx2y", 0), "something between pieces");
        assert!(!p.build("basex2y", 0), "the base is not a piece");
        assert!(!Pieces::new([""; 0]).build("a", 0));
    }
}
