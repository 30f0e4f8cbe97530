//! The authorization answers the gateway keeps (from `moka`): bounded by
//! entry count with frequency-aware eviction, so a flood of new tokens
//! cannot flush the answers of the callers who keep coming; a "yes" kept
//! for the TTL and a "no" only briefly; one review for concurrent misses of
//! the same key; and every answer kept longer as a fallback for while the
//! API server does not answer.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

/// Entries kept per cache.
pub const MAX_CACHED: u64 = 10_000;
/// How long a refusal (an invalid token, a denied review) is kept: long
/// enough to absorb a burst, short enough that a fix is seen at once.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// An answer that says yes or no.
pub trait Verdict {
    fn allows(&self) -> bool;
}

impl Verdict for bool {
    fn allows(&self) -> bool {
        *self
    }
}

impl<T> Verdict for Option<T> {
    fn allows(&self) -> bool {
        self.is_some()
    }
}

/// Expiry by answer: yes for `positive`, no for `negative`.
struct ByVerdict {
    positive: Duration,
    negative: Duration,
}

impl<K, V: Verdict> Expiry<K, V> for ByVerdict {
    fn expire_after_create(&self, _key: &K, value: &V, _created_at: Instant) -> Option<Duration> {
        Some(if value.allows() {
            self.positive
        } else {
            self.negative
        })
    }
}

/// Fresh answers, and the same answers kept longer for when the source of
/// answers fails.
pub struct Answers<K, V> {
    fresh: Cache<K, V>,
    fallback: Cache<K, V>,
}

impl<K, V> Answers<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Verdict + Clone + Send + Sync + 'static,
{
    /// Yes kept for `ttl`, no for `negative_ttl`; every answer usable as a
    /// fallback for `fallback_ttl`.
    pub fn new(ttl: Duration, negative_ttl: Duration, fallback_ttl: Duration) -> Self {
        Answers {
            fresh: Cache::builder()
                .max_capacity(MAX_CACHED)
                .expire_after(ByVerdict {
                    positive: ttl,
                    negative: negative_ttl.min(ttl),
                })
                .build(),
            fallback: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(fallback_ttl)
                .build(),
        }
    }

    /// The fresh answer for `key`, asking `review` when there is none (once
    /// for all concurrent askers of the same key). When the review fails,
    /// the fallback answer if there is one (and the error, to log), else
    /// the error.
    pub async fn get_or_review<F, E>(
        &self,
        key: K,
        review: F,
    ) -> Result<(V, Option<Arc<E>>), Arc<E>>
    where
        F: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let fallback = &self.fallback;
        let reviewed = self
            .fresh
            .try_get_with(key.clone(), async {
                let answer = review.await?;
                fallback.insert(key.clone(), answer.clone()).await;
                Ok(answer)
            })
            .await;
        match reviewed {
            Ok(answer) => Ok((answer, None)),
            Err(e) => match self.fallback.get(&key).await {
                Some(answer) => Ok((answer, Some(e))),
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A review that counts its calls and answers `answer` after a pause.
    async fn review(
        calls: &AtomicUsize,
        answer: Result<bool, &'static str>,
    ) -> Result<bool, &'static str> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        answer
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_make_one_review() {
        let answers = Answers::new(
            Duration::from_secs(60),
            NEGATIVE_TTL,
            Duration::from_secs(300),
        );
        let calls = AtomicUsize::new(0);
        let asks = (0..16).map(|_| answers.get_or_review(7u32, review(&calls, Ok(true))));
        let got = futures::future::join_all(asks).await;
        assert!(got.iter().all(|a| matches!(a, Ok((true, None)))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Cached: no second review.
        answers
            .get_or_review(7, review(&calls, Ok(true)))
            .await
            .expect("answer");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refusal_is_kept_briefly_and_a_failure_falls_back_to_the_last_answer() {
        // Refusals are kept (long enough for this test's two asks).
        let calls = AtomicUsize::new(0);
        let kept = Answers::new(
            Duration::from_secs(60),
            Duration::from_secs(30),
            Duration::from_secs(300),
        );
        for _ in 0..2 {
            let (refused, _) = kept
                .get_or_review(1u32, review(&calls, Ok(false)))
                .await
                .expect("answer");
            assert!(!refused);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a refusal is kept for a moment"
        );

        // …but only briefly: past the negative TTL it is asked again.
        let calls = AtomicUsize::new(0);
        let brief = Answers::new(
            Duration::from_secs(60),
            Duration::from_millis(50),
            Duration::from_secs(300),
        );
        brief
            .get_or_review(1u32, review(&calls, Ok(false)))
            .await
            .expect("answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (allowed, _) = brief
            .get_or_review(1, review(&calls, Ok(true)))
            .await
            .expect("answer");
        assert!(
            allowed && calls.load(Ordering::SeqCst) == 2,
            "asked again after the negative TTL"
        );

        // Past the TTL the review fails: the last answer stands, said with the error.
        let calls = AtomicUsize::new(0);
        let short = Answers::new(
            Duration::from_millis(50),
            Duration::from_millis(50),
            Duration::from_secs(300),
        );
        short
            .get_or_review(1u32, review(&calls, Ok(true)))
            .await
            .expect("answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (answer, error) = short
            .get_or_review(1, review(&calls, Err("API server away")))
            .await
            .expect("the fallback");
        assert_eq!(
            (answer, error.as_deref().copied()),
            (true, Some("API server away"))
        );
        // A key never answered has no fallback.
        let none = short
            .get_or_review(2, review(&calls, Err("API server away")))
            .await;
        assert_eq!(none.err().as_deref().copied(), Some("API server away"));
    }
}
