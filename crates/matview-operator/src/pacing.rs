//! Pacing reconciles: skip work a view's last reconcile already did (the
//! same objects applied, the same other revisions cleaned up), and spread
//! periodic requeues by the number of views, with jitter.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requeue of a view that is not Ready yet, and of one that is, plus a
/// share per view: progress arrives by watches (StatefulSets, pods), so the
/// periodic refresh of figures spreads out as views multiply.
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(5);
const REQUEUE_READY: Duration = Duration::from_secs(30);
const PER_VIEW_PROGRESSING: Duration = Duration::from_millis(50);
const PER_VIEW_READY: Duration = Duration::from_millis(60);
/// How long a switched-off revision keeps its pods after the switch.
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);
/// Apply the desired objects again at least this often, even when unchanged.
pub const REAPPLY_EVERY: Duration = Duration::from_secs(600);
/// A view refused for paths its schema lacks is checked again this often
/// (a newer schema version may have them).
pub const SCHEMA_RECHECK: Duration = Duration::from_secs(30);
/// An applied object the watch cache still lacks after this long went
/// missing; sooner, the cache may just not have seen it yet.
pub const CACHE_LAG: Duration = Duration::from_secs(30);

/// Pure: the periodic requeue for `views` views, ±10 % by the view's UID so
/// that views created together do not refresh together.
pub fn requeue_after(settled: bool, views: usize, uid: &str) -> Duration {
    let (base, per_view) = if settled {
        (REQUEUE_READY, PER_VIEW_READY)
    } else {
        (REQUEUE_PROGRESSING, PER_VIEW_PROGRESSING)
    };
    let interval = base + per_view * u32::try_from(views).unwrap_or(u32::MAX);
    interval.mul_f64(0.9 + 0.2 * view_fraction(uid, 0))
}

/// A number in [0, 1), fixed for a view (its UID) and a `salt`, spread
/// evenly across views, so that views created together, or failing
/// together, do not act together. std's SipHash with its fixed keys:
/// deterministic, and every input bit moves every output bit.
pub fn view_fraction(uid: &str, salt: u32) -> f64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    uid.hash(&mut hasher);
    salt.hash(&mut hasher);
    // The top 53 bits: exactly what an f64 in [0, 1) can hold.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The retry delay of a view whose reconcile failed `attempts` times in a
/// row: 4 s, 8 s, … up to 5 min, each ±25 % by the view and the attempt,
/// so that views failing together (a broker down) retry spread out.
pub fn error_backoff(attempts: u32, uid: &str) -> Duration {
    let base = Duration::from_secs(2)
        .saturating_mul(1 << attempts.clamp(1, 8))
        .min(Duration::from_secs(300));
    base.mul_f64(0.75 + 0.5 * view_fraction(uid, attempts))
}

/// Requeue of a view whose source needs a person's fix (a refused password,
/// a missing Secret): half the time it has been failing, from 10 s up to
/// 2 min, so a broken view does not knock on the brokers every few seconds
/// while a fixed one is seen soon.
pub fn refused_source_requeue(failing_for: Duration) -> Duration {
    (failing_for / 2).clamp(Duration::from_secs(10), Duration::from_secs(120))
}

/// How long `SourceReady` has been False in `status`, as of `now`.
pub fn source_failing_for(
    status: Option<&matview_crd::MaterializedViewStatus>,
    now: k8s_openapi::jiff::Timestamp,
) -> Duration {
    use matview_crd::{ConditionStatus, ConditionType};
    status
        .and_then(|s| {
            s.conditions.iter().find(|c| {
                c.type_ == ConditionType::SourceReady && c.status == ConditionStatus::False
            })
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .and_then(|since| Duration::try_from(now.duration_since(since.0)).ok())
        .unwrap_or_default()
}

/// What a view's last reconciles did, so unchanged work is skipped: applying
/// the same objects again, listing other revisions' objects again.
#[derive(Default)]
pub struct ReconcileMemo {
    /// (generation, revision) applied, and when.
    applied: Mutex<HashMap<String, (Applied, Instant)>>,
    /// A revision switched off, and when: it keeps its pods for a grace
    /// period, however soon the next reconcile comes (watches trigger them
    /// at once), so readers see the switch in status before its pods go.
    retiring: Mutex<HashMap<String, (String, Instant)>>,
    /// Revisions kept by the last cleanup of other revisions' objects.
    cleaned: Mutex<HashMap<String, BTreeSet<String>>>,
    /// The generation whose paths fit the schema, and whether they did
    /// (else a warning that they could not be checked was given).
    schema: Mutex<HashMap<String, (Option<i64>, bool)>>,
}

type Applied = (Option<i64>, String);

impl ReconcileMemo {
    pub fn needs_apply(&self, uid: &str, what: &Applied, every: Duration) -> bool {
        self.applied.lock().map_or(true, |a| {
            a.get(uid)
                .is_none_or(|(done, at)| done != what || at.elapsed() > every)
        })
    }

    pub fn applied(&self, uid: &str, what: Applied) {
        if let Ok(mut a) = self.applied.lock() {
            a.insert(uid.to_string(), (what, Instant::now()));
        }
    }

    /// Whether the last apply was longer ago than `age`.
    pub fn applied_before(&self, uid: &str, age: Duration) -> bool {
        self.applied
            .lock()
            .is_ok_and(|a| a.get(uid).is_some_and(|(_, at)| at.elapsed() > age))
    }

    pub fn needs_cleanup(&self, uid: &str, keep: &BTreeSet<String>) -> bool {
        self.cleaned
            .lock()
            .map_or(true, |c| c.get(uid) != Some(keep))
    }

    pub fn cleaned(&self, uid: &str, keep: BTreeSet<String>) {
        if let Ok(mut c) = self.cleaned.lock() {
            c.insert(uid.to_string(), keep);
        }
    }

    /// The revision still retiring: `switched_off` when one was switched off
    /// just now, else one switched off less than `grace` ago.
    pub fn retiring(
        &self,
        uid: &str,
        switched_off: Option<String>,
        grace: Duration,
    ) -> Option<String> {
        let Ok(mut retiring) = self.retiring.lock() else {
            return switched_off;
        };
        if let Some(revision) = switched_off {
            retiring.insert(uid.to_string(), (revision.clone(), Instant::now()));
            return Some(revision);
        }
        match retiring.get(uid) {
            Some((revision, at)) if at.elapsed() < grace => Some(revision.clone()),
            Some(_) => {
                retiring.remove(uid);
                None
            }
            None => None,
        }
    }

    /// What was applied: apply again next time (an object went missing).
    pub fn forget_applied(&self, uid: &str) {
        if let Ok(mut a) = self.applied.lock() {
            a.remove(uid);
        }
        if let Ok(mut c) = self.cleaned.lock() {
            c.remove(uid);
        }
    }

    /// Whether this generation's paths were found to fit the schema.
    pub fn schema_fitted(&self, uid: &str, generation: Option<i64>) -> bool {
        self.schema
            .lock()
            .is_ok_and(|s| s.get(uid) == Some(&(generation, true)))
    }

    pub fn schema_fits(&self, uid: &str, generation: Option<i64>) {
        if let Ok(mut s) = self.schema.lock() {
            s.insert(uid.to_string(), (generation, true));
        }
    }

    /// Whether to warn that this generation could not be checked (once).
    pub fn schema_warn(&self, uid: &str, generation: Option<i64>) -> bool {
        self.schema.lock().is_ok_and(|mut s| {
            let warned = s.get(uid).is_some_and(|(g, _)| *g == generation);
            s.insert(uid.to_string(), (generation, false));
            !warned
        })
    }

    /// Everything about a view (deleted).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut r) = self.retiring.lock() {
            r.remove(uid);
        }
        if let Ok(mut s) = self.schema.lock() {
            s.remove(uid);
        }
        self.forget_applied(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_needs_a_fix_is_retried_less_and_less_often() {
        assert_eq!(
            refused_source_requeue(Duration::ZERO),
            Duration::from_secs(10)
        );
        assert_eq!(
            refused_source_requeue(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refused_source_requeue(Duration::from_secs(3600)),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn error_backoff_grows_and_is_capped() {
        for uid in ["a", "b", "0d7c-11"] {
            let first = error_backoff(1, uid);
            assert!(first >= Duration::from_secs(3) && first <= Duration::from_secs(5));
            assert!(error_backoff(2, uid) >= Duration::from_secs(6));
            assert!(error_backoff(30, uid) <= Duration::from_secs(375));
            assert!(error_backoff(30, uid) >= Duration::from_secs(225));
        }
    }

    /// 1,000 views failing together must not retry together: their delays
    /// at the same attempt spread over the whole jitter window, evenly.
    #[test]
    fn a_thousand_failing_views_retry_spread_out() {
        for attempts in [1, 3, 8] {
            let delays: Vec<Duration> = (0..1000)
                .map(|i| {
                    error_backoff(
                        attempts,
                        &format!("5f0c2a8e-{i:04}-4b7e-9d1a-0000000{i:05}"),
                    )
                })
                .collect();
            let distinct: BTreeSet<Duration> = delays.iter().copied().collect();
            assert!(
                distinct.len() >= 990,
                "attempt {attempts}: {} distinct",
                distinct.len()
            );
            let (min, max) = (distinct.first().copied(), distinct.last().copied());
            let (Some(min), Some(max)) = (min, max) else {
                panic!("no delays");
            };
            // Ten equal slices of the window [min, max]: none holds more
            // than twice its share.
            let width = (max - min).as_secs_f64();
            let mut slices = [0usize; 10];
            for d in &delays {
                let at = ((d.as_secs_f64() - min.as_secs_f64()) / width * 10.0) as usize;
                slices[at.min(9)] += 1;
            }
            assert!(
                slices.iter().all(|&n| n <= 200),
                "attempt {attempts}: {slices:?}"
            );
            assert!(
                width > max.as_secs_f64() * 0.3,
                "attempt {attempts}: spread {width} s of {max:?}"
            );
        }
    }

    #[test]
    fn requeues_spread_with_the_number_of_views_and_between_views() {
        let one = requeue_after(false, 1, "a");
        let thousand = requeue_after(false, 1000, "a");
        assert!(one < Duration::from_secs(6), "{one:?}");
        assert!(
            thousand > Duration::from_secs(45) && thousand < Duration::from_secs(61),
            "{thousand:?}"
        );
        assert!(requeue_after(true, 1000, "a") > thousand);
        let spread: BTreeSet<Duration> = (0..50)
            .map(|i| requeue_after(true, 10, &format!("uid-{i}")))
            .collect();
        assert!(spread.len() > 20, "views refresh at different moments");
    }
}
