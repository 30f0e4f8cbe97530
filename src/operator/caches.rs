//! The operator's watch caches of its StatefulSets and projector pods: the
//! same watches that trigger reconciles keep these stores, so reading a
//! revision's readiness and pods costs no request to the API server.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use super::desired::{LABEL_REVISION, LABEL_VIEW};

/// How long a reconcile waits for the caches' first complete listing.
const FIRST_LIST: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Caches {
    pub stateful_sets: Store<StatefulSet>,
    pub pods: Store<Pod>,
}

impl Caches {
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
