//! The operator's watch caches of its StatefulSets and projector pods: the
//! same watches that trigger reconciles keep these stores, so reading a
//! revision's readiness and pods costs no request to the API server.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use super::desired::{LABEL_REVISION, LABEL_VIEW};

/// How long a reconcile waits for the caches' first complete listing.
const FIRST_LIST: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Caches {
    pub stateful_sets: Store<StatefulSet>,
    pub pods: Store<Pod>,
}

impl Caches {
    /// The watches of objects labelled `selector` that trigger reconciles,
    /// keeping the caches as they go. Cached objects keep only what
    /// reconcile reads (labels, replicas, status): a thousand views' pods
    /// and StatefulSets in little memory.
    pub fn watch(
        sets: Api<StatefulSet>,
        pods: Api<Pod>,
        selector: &str,
    ) -> (
        Caches,
        impl Stream<Item = Result<StatefulSet, watcher::Error>> + Send + 'static,
        impl Stream<Item = Result<Pod, watcher::Error>> + Send + 'static,
    ) {
        let (sets_cache, sets_writer) = reflector::store::<StatefulSet>();
        let (pods_cache, pods_writer) = reflector::store::<Pod>();
        let sets = watcher(sets, watcher::Config::default().labels(selector))
            .default_backoff()
            .modify(|set: &mut StatefulSet| {
                set.managed_fields_mut().clear();
                set.spec.template = Default::default();
                set.spec.volume_claim_templates = None;
            })
            .reflect(sets_writer)
            .touched_objects();
        let pods = watcher(pods, watcher::Config::default().labels(selector))
            .default_backoff()
            .modify(|pod: &mut Pod| {
                pod.managed_fields_mut().clear();
                pod.spec = None;
            })
            .reflect(pods_writer)
            .touched_objects();
        let caches = Caches {
            stateful_sets: sets_cache,
            pods: pods_cache,
        };
        (caches, sets, pods)
    }

    /// The StatefulSets of one revision of a view.
    pub async fn stateful_sets(
        &self,
        ns: &str,
        view: &str,
        revision: &str,
    ) -> Vec<Arc<StatefulSet>> {
        of_revision(&self.stateful_sets, ns, view, revision).await
    }

    /// The pods of one revision of a view.
    pub async fn pods(&self, ns: &str, view: &str, revision: &str) -> Vec<Arc<Pod>> {
        of_revision(&self.pods, ns, view, revision).await
    }
}

async fn of_revision<K>(store: &Store<K>, ns: &str, view: &str, revision: &str) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    // Until the first listing is complete the store would say "none".
    let _ = tokio::time::timeout(FIRST_LIST, store.wait_until_ready()).await;
    store
        .state()
        .into_iter()
        .filter(|o| {
            let labels = o.labels();
            o.namespace().as_deref() == Some(ns)
                && labels.get(LABEL_VIEW).map(String::as_str) == Some(view)
                && labels.get(LABEL_REVISION).map(String::as_str) == Some(revision)
        })
        .collect()
}
