//! Two revisions of a view compared from their stores: each revision's
//! shards read page by page (`GET /v1/records`) in key order and merged (a
//! row's parts on several shards become one row), the two joined by key and
//! folded into a comparison. Memory stays at a page per shard. The gateway
//! and the operator differ only in how they reach a shard ([`ShardPages`]).

use std::collections::BTreeMap;

use matview_engine::compare::{Comparison, RowSummary};
use matview_engine::keyed_merge::KeyedMerge;

use crate::gateway::{ComparedRevision, RevisionComparison};
use crate::records::RecordsPage;

/// Rows per shard page.
pub const PAGE: usize = 500;

/// Reaches one revision's shards.
pub trait ShardPages {
    type Error: From<PageError>;
    /// The shard's records page after `after` (in key order).
    fn page(
        &self,
        shard: usize,
        after: Option<String>,
    ) -> impl Future<Output = Result<RecordsPage, Self::Error>> + Send;
}

/// A page that cannot be folded: a projector answered out of contract.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    BadSum(#[from] crate::records::BadSum),
    #[error(transparent)]
    OutOfOrder(#[from] matview_engine::keyed_merge::OutOfOrder),
}

/// One revision's rows in key order, its shards' parts merged.
pub struct RevisionRows<S> {
    revision: String,
    shards: S,
    merge: KeyedMerge<RowSummary>,
    /// Per shard, the key its next page starts after.
    after: Vec<Option<String>>,
    /// Positions of the first and the latest page (all shards together).
    first: BTreeMap<i32, i64>,
    last: BTreeMap<i32, i64>,
}

impl<S: ShardPages> RevisionRows<S> {
    pub fn new(revision: &str, shard_count: usize, shards: S) -> RevisionRows<S> {
        RevisionRows {
            revision: revision.to_string(),
            shards,
            merge: KeyedMerge::new(shard_count),
            after: vec![None; shard_count],
            first: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// The next row (all its shards' parts), or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<(String, RowSummary)>, S::Error> {
        loop {
            if let Some((key, parts)) = self.merge.next_key() {
                let mut row = RowSummary::default();
                for part in parts.into_iter().flatten() {
                    row.merge(part);
                }
                return Ok(Some((key, row)));
            }
            let Some(shard) = self.merge.wants() else {
                return Ok(None);
            };
            self.fetch(shard).await?;
        }
    }

    async fn fetch(&mut self, shard: usize) -> Result<(), S::Error> {
        let page = self.shards.page(shard, self.after[shard].clone()).await?;
        for (partition, offset) in &page.positions {
            self.first.entry(*partition).or_insert(*offset);
            self.last.insert(*partition, *offset);
        }
        let done = page.next.is_none();
        self.after[shard] = page.next;
        let rows = page
            .rows
            .into_iter()
            .map(|row| row.summary())
            .collect::<Result<Vec<_>, _>>()
            .map_err(PageError::from)?;
        self.merge
            .push(shard, rows, done)
            .map_err(|e| S::Error::from(PageError::from(e)))
    }

    /// Nothing moved between the first page and the last.
    fn steady(&self) -> bool {
        self.first == self.last
    }

    fn side(&self) -> ComparedRevision {
        ComparedRevision {
            revision: self.revision.clone(),
            positions: self.last.clone(),
        }
    }
}

/// Every row of both revisions, joined by key.
pub async fn compare<A, B, E>(
    mut serving: RevisionRows<A>,
    mut candidate: RevisionRows<B>,
) -> Result<RevisionComparison, E>
where
    A: ShardPages<Error = E>,
    B: ShardPages<Error = E>,
    E: From<PageError>,
{
    let mut comparison = Comparison::default();
    let (mut x, mut y) = (serving.next().await?, candidate.next().await?);
    loop {
        match (&x, &y) {
            (None, None) => break,
            (Some((ka, ra)), Some((kb, rb))) if ka == kb => {
                comparison.add(Some(ra), Some(rb));
                (x, y) = (serving.next().await?, candidate.next().await?);
            }
            (Some((ka, ra)), Some((kb, _))) if ka < kb => {
                comparison.add(Some(ra), None);
                x = serving.next().await?;
            }
            (Some((_, ra)), None) => {
                comparison.add(Some(ra), None);
                x = serving.next().await?;
            }
            (_, Some((_, rb))) => {
                comparison.add(None, Some(rb));
                y = candidate.next().await?;
            }
        }
    }
    let consistent = serving.steady() && candidate.steady() && serving.last == candidate.last;
    Ok(RevisionComparison::of(
        comparison,
        serving.side(),
        candidate.side(),
        consistent,
    ))
}
