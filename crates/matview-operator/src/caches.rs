//! The operator's watches: views (only changes that need a reconcile), and
//! the caches of its StatefulSets and projector pods: the
//! same watches that trigger reconciles keep these stores, so reading a
//! revision's readiness and pods costs no request to the API server.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};

use super::desired::{LABEL_REVISION, LABEL_VIEW};
use matview_crd::MaterializedView;

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

    /// The views, and their changes that call for a reconcile: spec
    /// (generation, which deletion also bumps) and finalizers. The
    /// operator's own status writes trigger nothing: a thousand views would
    /// each be reconciled once more after every status patch.
    pub fn view_changes(
        views: Api<MaterializedView>,
    ) -> (
        Store<MaterializedView>,
        impl Stream<Item = Result<MaterializedView, watcher::Error>> + Send + 'static,
    ) {
        let (store, writer) = reflector::store::<MaterializedView>();
        let changes = watcher(views, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(
                predicates::generation.combine(predicates::finalizers),
                PredicateConfig::default(),
            );
        (store, changes)
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
