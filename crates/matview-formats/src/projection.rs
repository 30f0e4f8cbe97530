//! Which members of a decoded value are written: a view addresses a few
//! paths of each message, so the decoders write only those (and read past
//! the rest without formatting them — a timestamp nobody reads is never
//! turned into text). Arrays are transparent: a projection of an array
//! applies to each element, as a view's `explode` reads them.

use std::collections::BTreeMap;

/// All of a value, or only these members, each with what of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Projection {
    #[default]
    All,
    Members(BTreeMap<String, Projection>),
}

/// The projection of every member (what [`Projection::member`] answers for `All`).
static ALL: Projection = Projection::All;

impl Projection {
    /// What of member `name` to write; `None`: leave it out.
    pub fn member(&self, name: &str) -> Option<&Projection> {
        match self {
            Projection::All => Some(&ALL),
            Projection::Members(members) => members.get(name),
        }
    }

    /// The members that `paths` (lists of member names, from the root)
    /// reach, each whole at its path's end. A path with a numeric token
    /// (an array index, or a member named by digits) could be either, so
    /// it keeps everything. `needed` paths are kept as containers even
    /// when no path goes into them (an exploded array whose elements are
    /// counted but not read).
    pub fn of_paths<'a>(
        paths: impl IntoIterator<Item = &'a [String]>,
        needed: impl IntoIterator<Item = &'a [String]>,
    ) -> Projection {
        let mut root = Projection::Members(BTreeMap::new());
        let numeric = |t: &String| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        for path in paths {
            if path.iter().any(numeric) {
                return Projection::All;
            }
            root.insert(path, true);
        }
        for path in needed {
            if path.iter().any(numeric) {
                return Projection::All;
            }
            root.insert(path, false);
        }
        root
    }

    /// Adds `path`; `whole`: everything at its end.
    fn insert(&mut self, path: &[String], whole: bool) {
        let Projection::Members(members) = self else {
            return;
        };
        match path.split_first() {
            None if whole => *self = Projection::All,
            None => {}
            Some((first, rest)) => members
                .entry(first.clone())
                .or_insert_with(|| Projection::Members(BTreeMap::new()))
                .insert(rest, whole),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('/').skip(1).map(str::to_string).collect()
    }

    #[test]
    fn paths_keep_their_members_and_a_whole_path_keeps_everything_under_it() {
        let paths = [
            path("/userId"),
            path("/items/price"),
            path("/items/name"),
            path("/shipping"),
        ];
        let needed = [path("/items")];
        let p = Projection::of_paths(
            paths.iter().map(Vec::as_slice),
            needed.iter().map(Vec::as_slice),
        );
        assert_eq!(p.member("userId"), Some(&Projection::All));
        assert_eq!(p.member("country"), None);
        let items = p.member("items").expect("items");
        assert!(items.member("price").is_some() && items.member("quantity").is_none());
        let shipping = p.member("shipping").expect("shipping");
        assert_eq!(shipping.member("city"), Some(&Projection::All));
        // A path through an index keeps everything.
        let indexed = [path("/items/0/price")];
        assert_eq!(
            Projection::of_paths(indexed.iter().map(Vec::as_slice), []),
            Projection::All
        );
        // A container needed but not read keeps its elements, empty.
        let only_counted = Projection::of_paths([], needed.iter().map(Vec::as_slice));
        assert_eq!(
            only_counted.member("items"),
            Some(&Projection::Members(BTreeMap::new()))
        );
    }
}
