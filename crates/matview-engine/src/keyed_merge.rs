//! A merge of several key-ordered, paged streams (a view's shards, or two
//! revisions of a view) in bounded memory: each source's pages are queued,
//! and a key is given out only once every source still running has shown a
//! key at or past it, so nothing of that key can come later. Pure: the
//! caller fetches the page [`KeyedMerge::wants`] names and pushes it.

use std::collections::VecDeque;

/// Sources' items merged by key; every source must give its keys in
/// strictly increasing order (byte order of the UTF-8 strings).
#[derive(Debug)]
pub struct KeyedMerge<T> {
    sources: Vec<Source<T>>,
}

#[derive(Debug)]
struct Source<T> {
    queue: VecDeque<(String, T)>,
    done: bool,
    /// The last key pushed, to refuse a source that goes back.
    last: Option<String>,
}

/// A source gave a key that is not after its previous one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {source_index} gave key {key:?} after {previous:?}: its keys must increase")]
pub struct OutOfOrder {
    pub source_index: usize,
    pub key: String,
    pub previous: String,
}

impl<T> KeyedMerge<T> {
    pub fn new(sources: usize) -> KeyedMerge<T> {
        KeyedMerge {
            sources: (0..sources)
                .map(|_| Source {
                    queue: VecDeque::new(),
                    done: false,
                    last: None,
                })
                .collect(),
        }
    }

    /// Queues a page of source `index`; `last` when the source has no more.
    pub fn push(
        &mut self,
        index: usize,
        page: impl IntoIterator<Item = (String, T)>,
        last: bool,
    ) -> Result<(), OutOfOrder> {
        let Some(source) = self.sources.get_mut(index) else {
            return Ok(());
        };
        for (key, item) in page {
            if let Some(previous) = source.last.as_ref().filter(|p| key.as_str() <= p.as_str()) {
                return Err(OutOfOrder {
                    source_index: index,
                    key,
                    previous: previous.clone(),
                });
            }
            source.last = Some(key.clone());
            source.queue.push_back((key, item));
        }
        source.done |= last;
        Ok(())
    }

    /// The source whose next page is needed before anything more can be
    /// given out; `None` when something is ready or every source is done.
    pub fn wants(&self) -> Option<usize> {
        self.sources
            .iter()
            .position(|s| s.queue.is_empty() && !s.done)
    }

    /// The smallest key every running source is known to be at or past,
    /// with each source's item of that key; `None` until then (see
    /// [`KeyedMerge::wants`]) or once all is given out.
    pub fn next_key(&mut self) -> Option<(String, Vec<Option<T>>)> {
        if self.wants().is_some() {
            return None;
        }
        let smallest = self
            .sources
            .iter()
            .filter_map(|s| s.queue.front().map(|(k, _)| k.clone()))
            .min()?;
        let items = self
            .sources
            .iter_mut()
            .map(|s| match s.queue.front() {
                Some((k, _)) if *k == smallest => s.queue.pop_front().map(|(_, item)| item),
                _ => None,
            })
            .collect();
        Some((smallest, items))
    }

    /// Whether every source is done and everything was given out.
    pub fn finished(&self) -> bool {
        self.sources.iter().all(|s| s.done && s.queue.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn page(keys: &[&str]) -> Vec<(String, u32)> {
        keys.iter()
            .map(|k| (k.to_string(), k.len() as u32))
            .collect()
    }

    #[test]
    fn a_key_waits_until_every_running_source_is_past_it() {
        let mut merge = KeyedMerge::new(2);
        merge.push(0, page(&["a", "c"]), false).expect("ordered");
        // Source 1 has shown nothing: "a" may still come from it.
        assert_eq!(merge.wants(), Some(1));
        assert_eq!(merge.next_key(), None);
        merge.push(1, page(&["b"]), false).expect("ordered");
        assert_eq!(merge.next_key(), Some(("a".into(), vec![Some(1), None])));
        assert_eq!(merge.next_key(), Some(("b".into(), vec![None, Some(1)])));
        // Source 1 is empty again and not done: "c" waits.
        assert_eq!(merge.next_key(), None);
        merge.push(1, page(&["c"]), true).expect("ordered");
        assert_eq!(merge.next_key(), Some(("c".into(), vec![Some(1), Some(1)])));
        assert_eq!(merge.wants(), Some(0));
        merge.push(0, Vec::new(), true).expect("ordered");
        assert_eq!(merge.next_key(), None);
        assert!(merge.finished());
    }

    #[test]
    fn a_source_going_back_is_refused() {
        let mut merge: KeyedMerge<u32> = KeyedMerge::new(1);
        merge.push(0, page(&["b"]), false).expect("ordered");
        let err = merge
            .push(0, page(&["a"]), false)
            .expect_err("out of order");
        assert_eq!(err.key, "a");
        assert!(merge.push(0, page(&["b"]), false).is_err(), "a repeat too");
    }

    proptest! {
        /// Whatever the pages' sizes, every key comes out once, in order,
        /// with the items of exactly the sources that hold it.
        #[test]
        fn merged_keys_are_the_union_in_order(
            sources in proptest::collection::vec(
                proptest::collection::btree_set("[a-e]{1,3}", 0..12), 1..4),
            page_size in 1usize..4,
        ) {
            let mut expected: BTreeMap<String, Vec<Option<usize>>> = BTreeMap::new();
            for (i, keys) in sources.iter().enumerate() {
                for key in keys {
                    expected.entry(key.clone()).or_insert_with(|| vec![None; sources.len()])[i] = Some(i);
                }
            }
            let mut pages: Vec<Vec<Vec<(String, usize)>>> = sources
                .iter()
                .enumerate()
                .map(|(i, keys)| {
                    let items: Vec<_> = keys.iter().map(|k| (k.clone(), i)).collect();
                    items.chunks(page_size).map(<[_]>::to_vec).rev().collect()
                })
                .collect();
            let mut merge = KeyedMerge::new(sources.len());
            let mut got = BTreeMap::new();
            let mut order = Vec::new();
            loop {
                while let Some((key, items)) = merge.next_key() {
                    order.push(key.clone());
                    got.insert(key, items);
                }
                let Some(wanted) = merge.wants() else { break };
                let next = pages[wanted].pop().unwrap_or_default();
                let last = pages[wanted].is_empty();
                merge.push(wanted, next, last).expect("ordered");
            }
            prop_assert!(merge.finished());
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(got, expected);
        }
    }
}
