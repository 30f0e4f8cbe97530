//! Hot rows kept in the gateway, exact by the shards' change feeds: a row is
//! served from here only while every shard of its view is followed, and a
//! change to it drops it before the feed's positions move past the change.
//! A hit answers with the feed's positions, so what it reflects is stated
//! as for any read; `after=` positions the feed has not reached go to the
//! projectors. Entries carry no time to live: exactness comes from the feed.
//!
//! A fetched row is kept only when its answer is at least at the feed's
//! positions (checked under the feed's lock): every change it lacks is then
//! still to come through the feed, and will drop it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::GatewayState;
use super::routing::ViewRoute;
use super::upstream::{ShardChange, follow_shards};

/// A view's feed stops being followed after this long without reads.
const IDLE: Duration = Duration::from_secs(600);
/// How often a feed checks that its revision still serves and is still read.
const CHECK: Duration = Duration::from_secs(1);

/// The row cache of one gateway: entries of every view, one byte budget.
pub struct RowCache {
    /// False with a budget of 0 bytes: nothing is kept or followed.
    enabled: bool,
    rows: moka::sync::Cache<(Arc<str>, String), Cached>,
    feeds: Mutex<HashMap<Arc<str>, Arc<ViewFeed>>>,
    started: Instant,
    /// The last epoch handed out, to any feed: a revision that serves again
    /// (a rollback to a kept revision) gets a feed whose epoch no entry of
    /// its earlier feed carries.
    epochs: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Cached {
    body: Bytes,
    epoch: u64,
}

/// What the feed of one view revision has delivered.
pub struct ViewFeed {
    id: Arc<str>,
    state: Mutex<FeedState>,
    epochs: Arc<AtomicU64>,
    /// Seconds since the cache started, at the last read.
    last_read: AtomicU64,
}

#[derive(Default)]
struct FeedState {
    /// Per shard: followed now (changes after `positions` will arrive).
    live: Vec<bool>,
    /// Every change up to these positions has dropped its rows.
    positions: BTreeMap<i32, i64>,
    /// Bumped when a shard's feed could not resume: older entries are dead.
    epoch: u64,
}

/// A hit: the row's bytes and the positions they reflect.
pub struct Hit {
    pub body: Bytes,
    pub positions: BTreeMap<i32, i64>,
}

/// A feed's state at one moment, for reading many rows as of it.
pub struct FeedView {
    id: Arc<str>,
    /// Every change up to these positions has dropped its rows.
    pub positions: BTreeMap<i32, i64>,
    epoch: u64,
}

/// A fetched answer may be kept: it is at least at the feed's positions
/// (on a partition the feed has not reported yet, it may be behind what the
/// feed will start from, so it is not kept).
pub fn may_keep(answer: &[(i32, i64)], fed: &BTreeMap<i32, i64>) -> bool {
    !answer.is_empty()
        && answer
            .iter()
            .all(|(p, o)| fed.get(p).is_some_and(|fed| o >= fed))
}

/// The feed has applied past every read-your-writes position asked for.
pub fn covers(fed: &BTreeMap<i32, i64>, after: &[(i32, i64)]) -> bool {
    after
        .iter()
        .all(|(p, o)| fed.get(p).is_some_and(|fed| fed > o))
}

impl RowCache {
    pub fn new(max_bytes: u64) -> RowCache {
        let rows = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &(Arc<str>, String), row: &Cached| {
                (key.1.len() + row.body.len() + 64)
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .build();
        RowCache {
            enabled: max_bytes > 0,
            rows,
            feeds: Mutex::new(HashMap::new()),
            started: Instant::now(),
            epochs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A feed of nothing live yet, in an epoch of its own.
    fn new_feed(&self, id: Arc<str>, shards: usize) -> ViewFeed {
        ViewFeed {
            id,
            state: Mutex::new(FeedState {
                live: vec![false; shards],
                epoch: next_epoch(&self.epochs),
                ..FeedState::default()
            }),
            epochs: self.epochs.clone(),
            last_read: AtomicU64::new(0),
        }
    }

    /// Bytes held now (approximate, as the cache's pending work settles).
    pub fn bytes(&self) -> u64 {
        self.rows.weighted_size()
    }

    fn id(route: &ViewRoute) -> Arc<str> {
        format!("{}/{}/{}", route.namespace, route.name, route.revision).into()
    }

    /// The row of `key` if held and the feed covers `after`.
    pub fn get(&self, route: &ViewRoute, key: &str, after: &[(i32, i64)]) -> Option<Hit> {
        let id = Self::id(route);
        let feed = self.feeds.lock().ok()?.get(&id).cloned()?;
        feed.last_read
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
        let state = feed.state.lock().ok()?;
        if !state.live.iter().all(|l| *l) || !covers(&state.positions, after) {
            return None;
        }
        let row = self.rows.get(&(id, key.to_string()))?;
        (row.epoch == state.epoch).then(|| Hit {
            body: row.body,
            positions: state.positions.clone(),
        })
    }

    /// The view's feed now, when every shard of it is followed; starts
    /// following the view on first use.
    pub fn view_feed(&self, st: &Arc<GatewayState>, route: &ViewRoute) -> Option<FeedView> {
        if !self.enabled {
            return None;
        }
        let feed = self.feed(st, route);
        feed.last_read
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
        let state = feed.state.lock().ok()?;
        state.live.iter().all(|l| *l).then(|| FeedView {
            id: feed.id.clone(),
            positions: state.positions.clone(),
            epoch: state.epoch,
        })
    }

    /// The row of `key` if held: current at least as of `view`'s positions.
    pub fn row_at(&self, view: &FeedView, key: &str) -> Option<Bytes> {
        let row = self.rows.get(&(view.id.clone(), key.to_string()))?;
        (row.epoch == view.epoch).then_some(row.body)
    }

    /// Keeps a fetched row when the view's feed is followed and the answer
    /// is at least at its positions; starts following it on first use.
    pub fn offer(
        &self,
        st: &Arc<GatewayState>,
        route: &ViewRoute,
        key: &str,
        body: &Bytes,
        answer: &[(i32, i64)],
    ) {
        if !self.enabled {
            return;
        }
        let feed = self.feed(st, route);
        let Ok(state) = feed.state.lock() else {
            return;
        };
        if state.live.iter().all(|l| *l) && may_keep(answer, &state.positions) {
            let row = Cached {
                body: body.clone(),
                epoch: state.epoch,
            };
            self.rows.insert((feed.id.clone(), key.to_string()), row);
        }
    }

    fn feed(&self, st: &Arc<GatewayState>, route: &ViewRoute) -> Arc<ViewFeed> {
        let id = Self::id(route);
        let Ok(mut feeds) = self.feeds.lock() else {
            // Poisoned: a feed nobody follows, so nothing is kept.
            return Arc::new(self.new_feed(id, 1));
        };
        if let Some(feed) = feeds.get(&id) {
            return feed.clone();
        }
        let feed = Arc::new(self.new_feed(id.clone(), route.shards.len()));
        feed.last_read
            .store(self.started.elapsed().as_secs(), Ordering::Relaxed);
        feeds.insert(id, feed.clone());
        tokio::spawn(follow_view(st.clone(), feed.clone(), route.clone()));
        feed
    }

    fn forget(&self, id: &Arc<str>) {
        if let Ok(mut feeds) = self.feeds.lock() {
            feeds.remove(id);
        }
    }
}

fn next_epoch(epochs: &AtomicU64) -> u64 {
    epochs.fetch_add(1, Ordering::Relaxed) + 1
}

impl ViewFeed {
    /// Applies one shard's feed message to the entries and positions.
    fn apply(
        &self,
        rows: &moka::sync::Cache<(Arc<str>, String), Cached>,
        shard: u32,
        change: ShardChange,
    ) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (keys, positions) = match change {
            ShardChange::Connected { positions } => {
                if let Some(live) = state.live.get_mut(shard as usize) {
                    *live = true;
                }
                (Vec::new(), positions)
            }
            ShardChange::Broke => {
                if let Some(live) = state.live.get_mut(shard as usize) {
                    *live = false;
                }
                return;
            }
            ShardChange::Reset { positions } => {
                state.epoch = next_epoch(&self.epochs);
                (Vec::new(), positions)
            }
            ShardChange::Rows { event, positions } => {
                let keys = event.rows.into_iter().map(|r| r.key);
                (keys.chain(event.removed).collect(), positions)
            }
        };
        // Dropped before the positions move past the change.
        for key in keys {
            rows.invalidate(&(self.id.clone(), key));
        }
        for (p, o) in positions {
            let at = state.positions.entry(p).or_insert(o);
            *at = (*at).max(o);
        }
    }
}

/// Follows every shard of a view revision for the cache until the revision
/// stops serving or nobody reads the view for [`IDLE`].
async fn follow_view(st: Arc<GatewayState>, feed: Arc<ViewFeed>, route: ViewRoute) {
    let (tx, mut changes) = mpsc::channel(1024);
    let followers = follow_shards(&st, &route, |_| BTreeMap::new(), &tx);
    drop(tx);
    let cache = &st.row_cache;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some((shard, change)) => feed.apply(&cache.rows, shard, change),
                None => break,
            },
            _ = tokio::time::sleep(CHECK) => {
                let serving = st.directory.route(&route.namespace, &route.name)
                    .is_some_and(|r| r.revision == route.revision);
                let idle = cache.started.elapsed().as_secs()
                    .saturating_sub(feed.last_read.load(Ordering::Relaxed)) > IDLE.as_secs();
                if !serving || idle || st.shutdown.is_cancelled() {
                    break;
                }
            }
        }
    }
    // Entries of a forgotten feed are never hit again (a new feed starts
    // in an epoch never used before, with nothing live); the byte budget
    // evicts them.
    cache.forget(&feed.id);
    for follower in followers {
        follower.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_behind_the_feed_is_not_kept() {
        let fed = BTreeMap::from([(0, 10), (2, 7)]);
        assert!(may_keep(&[(0, 10), (2, 9)], &fed));
        assert!(!may_keep(&[(0, 9), (2, 9)], &fed), "partition 0 is behind");
        // A partition the feed has not reported, or none at all: not kept.
        assert!(!may_keep(&[(0, 10), (5, 1)], &fed));
        assert!(!may_keep(&[], &fed));
    }

    #[test]
    fn read_your_writes_needs_the_feed_past_the_position() {
        let fed = BTreeMap::from([(0, 10), (1, 3)]);
        assert!(covers(&fed, &[]));
        assert!(covers(&fed, &[(0, 9), (1, 2)]));
        assert!(!covers(&fed, &[(0, 10)]), "offset 10 is not applied yet");
        assert!(!covers(&fed, &[(4, 0)]), "a partition never fed");
    }

    fn cached(body: &str) -> Cached {
        Cached {
            body: Bytes::from(body.to_string()),
            epoch: 0,
        }
    }

    #[test]
    fn a_change_drops_its_row_and_moves_the_positions() {
        let cache = RowCache::new(1 << 20);
        let feed = cache.new_feed("ns/v/r1".into(), 1);
        let key = |k: &str| (feed.id.clone(), k.to_string());
        feed.apply(
            &cache.rows,
            0,
            ShardChange::Connected {
                positions: BTreeMap::from([(0, 5)]),
            },
        );
        cache.rows.insert(key("a"), cached("{}"));
        cache.rows.insert(key("b"), cached("{}"));
        let event = matview_api::projector::WatchEvent {
            seq: 1,
            rows: Vec::new(),
            removed: vec!["a".into()],
            left: BTreeMap::new(),
            positions: "0:9".into(),
        };
        let positions = BTreeMap::from([(0, 9)]);
        feed.apply(&cache.rows, 0, ShardChange::Rows { event, positions });
        assert!(cache.rows.get(&key("a")).is_none(), "changed: dropped");
        assert!(cache.rows.get(&key("b")).is_some(), "unchanged: kept");
        let state = feed.state.lock().expect("lock");
        assert_eq!(state.positions, BTreeMap::from([(0, 9)]));
        assert_eq!(state.live, [true]);
    }

    #[test]
    fn a_broken_feed_is_not_live_and_a_reset_kills_every_entry() {
        let cache = RowCache::new(1 << 20);
        let feed = cache.new_feed("ns/v/r1".into(), 2);
        let connected = || ShardChange::Connected {
            positions: BTreeMap::new(),
        };
        feed.apply(&cache.rows, 0, connected());
        assert_eq!(feed.state.lock().expect("lock").live, [true, false]);
        feed.apply(&cache.rows, 1, connected());
        feed.apply(&cache.rows, 0, ShardChange::Broke);
        assert_eq!(feed.state.lock().expect("lock").live, [false, true]);
        let before = feed.state.lock().expect("lock").epoch;
        feed.apply(
            &cache.rows,
            1,
            ShardChange::Reset {
                positions: BTreeMap::new(),
            },
        );
        assert!(feed.state.lock().expect("lock").epoch > before);
    }

    #[test]
    fn a_revision_followed_again_does_not_serve_what_its_earlier_feed_kept() {
        // A rollback: r1 served, was switched off (its feed forgotten), and
        // serves again; its rows changed meanwhile, unseen by any feed.
        let cache = RowCache::new(1 << 20);
        let first = cache.new_feed("ns/v/r1".into(), 1);
        let epoch = first.state.lock().expect("lock").epoch;
        let key = (first.id.clone(), "a".to_string());
        cache.rows.insert(
            key.clone(),
            Cached {
                body: Bytes::from_static(b"{}"),
                epoch,
            },
        );
        let again = cache.new_feed("ns/v/r1".into(), 1);
        again.apply(
            &cache.rows,
            0,
            ShardChange::Connected {
                positions: BTreeMap::from([(0, 9)]),
            },
        );
        let view = FeedView {
            id: again.id.clone(),
            positions: BTreeMap::new(),
            epoch: again.state.lock().expect("lock").epoch,
        };
        assert!(cache.rows.get(&key).is_some(), "still held, not served");
        assert_eq!(cache.row_at(&view, "a"), None);
    }
}
