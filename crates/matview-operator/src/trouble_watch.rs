//! Waiting on each serving projector's troubles (`GET /v1/troubles`, a
//! long poll): when one starts, ends or changes, the view is reconciled at
//! once, so status says a broker is away or replicas are out of sync within
//! moments of it instead of at the next periodic reconcile (30 s or more).
//! One pending request per serving projector; a follower whose projector
//! does not answer retries every few seconds until reconcile drops it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::context::view_key;
use matview_api::ProjectorClient;
use matview_crd::MaterializedView;

/// Longer than the projector's own wait (25 s), so a quiet wait ends on its side.
const LONG_POLL: Duration = Duration::from_secs(35);
/// Between attempts at a projector that did not answer.
const RETRY: Duration = Duration::from_secs(3);

/// The followers of every view's serving projectors (one per term of
/// leadership); dropping it stops them all.
pub struct TroubleWatch {
    client: ProjectorClient,
    trigger: mpsc::UnboundedSender<ObjectRef<MaterializedView>>,
    /// Per view (namespace/name): per projector URL, its follower.
    followed: Mutex<HashMap<String, HashMap<String, AbortHandle>>>,
}

/// Pure: which followed URLs to stop and which wanted ones to start.
pub fn plan<'a, T>(
    followed: impl IntoIterator<Item = &'a String>,
    wanted: &BTreeMap<String, T>,
) -> (Vec<String>, Vec<String>) {
    let followed: Vec<&String> = followed.into_iter().collect();
    let stop = followed
        .iter()
        .filter(|url| !wanted.contains_key(**url))
        .map(|url| (*url).clone())
        .collect();
    let start = wanted
        .keys()
        .filter(|url| !followed.contains(url))
        .cloned()
        .collect();
    (stop, start)
}

impl TroubleWatch {
    /// The watch, and the views it asks to reconcile (for the controller).
    pub fn new(
        client: &ProjectorClient,
    ) -> (
        TroubleWatch,
        impl Stream<Item = ObjectRef<MaterializedView>> + Send + 'static,
    ) {
        let (trigger, changes) = mpsc::unbounded_channel();
        let watch = TroubleWatch {
            client: client.with_timeout(LONG_POLL),
            trigger,
            followed: Mutex::new(HashMap::new()),
        };
        let changes = futures::stream::unfold(changes, |mut changes| async move {
            changes.recv().await.map(|view| (view, changes))
        });
        (watch, changes)
    }

    /// Follows exactly the projectors in `wanted` (URL → the troubles'
    /// version its stats gave) for `view`: starts the new, stops the gone.
    pub fn follow(&self, view: &MaterializedView, wanted: &BTreeMap<String, u64>) {
        let Ok(mut followed) = self.followed.lock() else {
            return;
        };
        let of_view = followed.entry(view_key(view)).or_default();
        let (stop, start) = plan(of_view.keys(), wanted);
        for url in stop {
            if let Some(follower) = of_view.remove(&url) {
                follower.abort();
            }
        }
        for url in start {
            let seen = wanted.get(&url).copied().unwrap_or_default();
            let follower = self.spawn(ObjectRef::from_obj(view), url.clone(), seen);
            of_view.insert(url, follower);
        }
    }

    /// Stops following a deleted view's projectors.
    pub fn forget(&self, view: &MaterializedView) {
        if let Ok(mut followed) = self.followed.lock()
            && let Some(of_view) = followed.remove(&view_key(view))
        {
            of_view.values().for_each(AbortHandle::abort);
        }
    }

    fn spawn(&self, view: ObjectRef<MaterializedView>, url: String, seen: u64) -> AbortHandle {
        let (client, trigger) = (self.client.clone(), self.trigger.clone());
        let follower = tokio::spawn(async move {
            let mut seen = seen;
            loop {
                match client.troubles_after(&url, seen).await {
                    Ok(version) if version != seen => {
                        seen = version;
                        if trigger.send(view.clone()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(RETRY).await,
                }
            }
        });
        follower.abort_handle()
    }
}

impl Drop for TroubleWatch {
    fn drop(&mut self) {
        if let Ok(followed) = self.followed.lock() {
            followed
                .values()
                .flat_map(HashMap::values)
                .for_each(AbortHandle::abort);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_of_gone_projectors_stop_and_new_ones_start() {
        let followed = ["http://a".to_string(), "http://b".to_string()];
        let wanted: BTreeMap<String, u64> =
            [("http://b".to_string(), 3), ("http://c".to_string(), 0)]
                .into_iter()
                .collect();
        let (stop, start) = plan(followed.iter(), &wanted);
        assert_eq!(stop, vec!["http://a".to_string()]);
        assert_eq!(start, vec!["http://c".to_string()]);
        let (stop, start) = plan(wanted.keys(), &wanted);
        assert!(stop.is_empty() && start.is_empty());
    }
}
