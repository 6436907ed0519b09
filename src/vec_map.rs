//! [`VecMap`]: an ordered map kept as a sorted `Vec`, for the client's small maps (a
//! connection's documents, a document's peers, outstanding requests, early events).
//!
//! It behaves like `BTreeMap` (keys in order, the same methods), with far less code per key and
//! value type: every `BTreeMap<K, V>` compiles its own node handling (insert, remove, rebalancing),
//! about 9 KB of WebAssembly each, where a sorted `Vec` needs a binary search and a `Vec` insert.
//! Inserts and removals move the entries after the key (the maps here hold a handful to a few
//! thousand entries).

use std::borrow::Borrow;

/// An ordered map on a sorted `Vec` of entries (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `entries` in any order; of a key given more than once, the last value stays
    /// (as inserting them one by one would leave it).
    pub fn from_entries(mut entries: Vec<(K, V)>) -> Self {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable: equal keys stay in the order given, and the last of each run is kept.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<(K, V)> = Vec::with_capacity(entries.len());
            for entry in entries {
                match kept.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => kept.push(entry),
                }
            }
            entries = kept;
        }
        VecMap { entries }
    }

    /// Where `key` is (`Ok`) or would go (`Err`).
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value of `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets the value of `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`, inserted from `value` when it has none.
    pub fn get_or_insert_with(&mut self, key: K, value: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, value()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Takes the value of `key` out.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Keeps the entries whose key is at least `key` (what `BTreeMap::split_off` returns).
    pub fn retain_from(&mut self, key: &K) {
        let start = self.find(key).unwrap_or_else(|i| i);
        self.entries.drain(..start);
    }

    /// Takes out the leading entries, in key order, for as long as `take` accepts their keys, in
    /// one move of the entries after them. (Removing the first entry again and again moves all
    /// the others each time: quadratic in the length.)
    pub fn drain_front_while(
        &mut self,
        mut take: impl FnMut(&K) -> bool,
    ) -> impl Iterator<Item = (K, V)> + '_ {
        let end = self
            .entries
            .iter()
            .position(|(k, _)| !take(k))
            .unwrap_or(self.entries.len());
        self.entries.drain(..end)
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The entries, in key order, their values to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values, in key order, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }
}

/// Sorts `items` stably by `less`, by insertion: for the client's short lists (saved records, a
/// submission's edits), which it sorts in linear time when they are in order already, with a
/// fraction of the code of the standard library's sorts (compiled again for every type sorted).
pub fn sort_small<T>(items: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_a_btree_map() {
        let mut map = VecMap::new();
        let mut model = BTreeMap::new();
        // A fixed pseudo-random sequence of inserts and removals.
        let mut x: u64 = 7;
        for step in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = (x >> 33) % 64;
            if step % 3 == 0 {
                assert_eq!(map.remove(&key), model.remove(&key));
            } else {
                assert_eq!(map.insert(key, step), model.insert(key, step));
            }
            assert_eq!(map.len(), model.len());
            assert_eq!(map.get(&key), model.get(&key));
            assert_eq!(map.contains_key(&key), model.contains_key(&key));
        }
        assert!(map.iter().eq(model.iter()));
        let kept = model.split_off(&40);
        map.retain_from(&40);
        assert!(map.iter().eq(kept.iter()));
        let first = *kept.keys().next().unwrap();
        let run: Vec<_> = map.drain_front_while(|k| *k < first + 5).collect();
        let model_run: Vec<_> = kept.range(..first + 5).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(run, model_run);
        assert!(map.iter().eq(kept.range(first + 5..)));
        *map.get_or_insert_with(1, || 0) += 5;
        assert_eq!(map.get(&1), Some(&5));
        map.clear();
        assert!(map.is_empty());
    }

    #[test]
    fn from_entries_keeps_the_last_value_of_a_key() {
        let map = VecMap::from_entries(vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')]);
        let mut model = BTreeMap::new();
        for (k, v) in [(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')] {
            model.insert(k, v);
        }
        assert!(map.iter().eq(model.iter()));
        let sorted = VecMap::from_entries(vec![(1, 'x'), (2, 'y')]);
        assert!(sorted.iter().eq([(&1, &'x'), (&2, &'y')]));
    }

    #[test]
    fn sort_small_is_a_stable_sort() {
        let mut x: u64 = 3;
        let mut items: Vec<(u64, usize)> = (0..300)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 33) % 20, i)
            })
            .collect();
        let mut expected = items.clone();
        expected.sort_by_key(|item| item.0);
        super::sort_small(&mut items, |a, b| a.0 < b.0);
        assert_eq!(items, expected);
    }
}
