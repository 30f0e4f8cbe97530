//! Discovery: watches MaterializedViews and projector pods, keeps a route per
//! view (its serving revision's ready pods by shard), and the compiled spec of
//! each serving revision, read once from one of its projectors.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tracing::warn;

use super::routing::{ViewRoute, building_route, pending_route, route};
use matview_api::ProjectorClient;
use matview_crd::MaterializedView;
use matview_engine::{CompileError, CompiledView, compile};

/// Labels of every projector pod the operator creates.
const PROJECTOR_PODS: &str =
    "app.kubernetes.io/component=projector,app.kubernetes.io/managed-by=matview-operator";
/// Routes are rebuilt at most this often under a burst of watch events.
const REBUILD_EVERY: Duration = Duration::from_millis(20);

type ViewKey = (String, String);

/// What a serving revision needs to merge answers, read from its projector.
#[derive(Debug)]
pub struct RevisionInfo {
    pub compiled: CompiledView,
    /// The spec as the revision's projectors run it.
    pub spec: matview_crd::MaterializedViewSpec,
    /// Partitions of the source topic.
    pub partitions: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum RevisionInfoError {
    #[error("no projector of revision {0} answered")]
    Unreachable(String),
    #[error("the projectors of revision {revision} run a spec that does not compile")]
    Invalid {
        revision: String,
        #[source]
        source: CompileError,
    },
}

/// Views and their routes at one moment; replaced whole on every change.
#[derive(Default)]
struct Snapshot {
    views: BTreeMap<ViewKey, Arc<MaterializedView>>,
    routes: HashMap<ViewKey, Arc<ViewRoute>>,
    /// Routes of revisions waiting for promotion.
    pending: HashMap<ViewKey, Arc<ViewRoute>>,
    /// Every pod of revisions being built, ready or not (their progress).
    building: HashMap<ViewKey, Arc<ViewRoute>>,
}

/// A view with the routes of its serving revision, of a pending one, and of
/// the one being built (all its pods).
struct Routed {
    view: Arc<MaterializedView>,
    serving: Option<ViewRoute>,
    pending: Option<ViewRoute>,
    building: Option<ViewRoute>,
}

pub struct Directory {
    snapshot: RwLock<Arc<Snapshot>>,
    revisions: Mutex<HashMap<(String, String, String), Arc<RevisionInfo>>>,
    synced: AtomicBool,
    /// The MaterializedView CRD was not found at the last attempt to watch.
    crd_missing: Arc<AtomicBool>,
}

fn key_of(view: &MaterializedView) -> ViewKey {
    (
        view.metadata.namespace.clone().unwrap_or_default(),
        view.metadata.name.clone().unwrap_or_default(),
    )
}

impl Directory {
    /// A fixed set of views and routes (one process without Kubernetes).
    pub fn fixed(views: Vec<(MaterializedView, ViewRoute)>) -> Arc<Directory> {
        let directory = Arc::new(Directory {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            revisions: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(true),
            crd_missing: Arc::default(),
        });
        directory.publish(
            views
                .into_iter()
                .map(|(view, route)| Routed {
                    view: Arc::new(view),
                    serving: Some(route),
                    pending: None,
                    building: None,
                })
                .collect(),
        );
        directory
    }

    /// Replaces the snapshot; forgets compiled revisions no longer served.
    /// Replaces every view (dev mode, whose views change without a cluster):
    /// each with its status and the routes of its serving and pending
    /// revisions (a pending revision is the one being built there).
    pub fn replace(&self, views: Vec<(MaterializedView, Option<ViewRoute>, Option<ViewRoute>)>) {
        self.publish(
            views
                .into_iter()
                .map(|(view, serving, pending)| Routed {
                    view: Arc::new(view),
                    serving,
                    building: pending.clone(),
                    pending,
                })
                .collect(),
        );
    }

    fn publish(&self, views: Vec<Routed>) {
        let mut snapshot = Snapshot::default();
        for routed in views {
            let key = key_of(&routed.view);
            if let Some(route) = routed.serving {
                snapshot.routes.insert(key.clone(), Arc::new(route));
            }
            if let Some(pending) = routed.pending {
                snapshot.pending.insert(key.clone(), Arc::new(pending));
            }
            if let Some(building) = routed.building {
                snapshot.building.insert(key.clone(), Arc::new(building));
            }
            snapshot.views.insert(key, routed.view);
        }
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.retain(|(ns, name, rev), _| {
                snapshot
                    .routes
                    .get(&(ns.clone(), name.clone()))
                    .is_some_and(|r| r.revision == *rev)
                    || [&snapshot.pending, &snapshot.building]
                        .iter()
                        .any(|routes| {
                            routes
                                .get(&(ns.clone(), name.clone()))
                                .is_some_and(|r| r.revision == *rev)
                        })
            });
        }
        if let Ok(mut current) = self.snapshot.write() {
            *current = Arc::new(snapshot);
        }
    }

    fn current(&self) -> Arc<Snapshot> {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Starts watching (all namespaces, or one) and keeps routes current.
    pub fn start(client: Client, namespace: Option<&str>) -> Arc<Directory> {
        let (views_api, pods_api): (Api<MaterializedView>, Api<Pod>) = match namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client, ns),
            ),
            None => (Api::all(client.clone()), Api::all(client)),
        };
        let (views, views_writer) = reflector::store();
        let (pods, pods_writer) = reflector::store();
        let directory = Arc::new(Directory {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            revisions: Mutex::new(HashMap::new()),
            synced: AtomicBool::new(false),
            crd_missing: Arc::default(),
        });
        let changed = Arc::new(Notify::new());
        let view_events = reflector::reflector(
            views_writer,
            watcher(views_api, watcher::Config::default()).default_backoff(),
        );
        let pod_events = reflector::reflector(
            pods_writer,
            watcher(pods_api, watcher::Config::default().labels(PROJECTOR_PODS)).default_backoff(),
        );
        spawn_notifier(
            view_events,
            changed.clone(),
            "materializedviews",
            Some(directory.crd_missing.clone()),
        );
        spawn_notifier(pod_events, changed.clone(), "pods", None);
        let rebuilder = directory.clone();
        tokio::spawn(async move {
            let _ = views.wait_until_ready().await;
            let _ = pods.wait_until_ready().await;
            loop {
                rebuilder.rebuild(&views, &pods);
                rebuilder.synced.store(true, Ordering::Release);
                changed.notified().await;
                tokio::time::sleep(REBUILD_EVERY).await;
            }
        });
        directory
    }

    /// True while the MaterializedView CRD is not installed.
    pub fn crd_missing(&self) -> bool {
        self.crd_missing.load(Ordering::Acquire)
    }

    /// True once both watches have listed everything and routes are built.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    fn rebuild(&self, views: &Store<MaterializedView>, pods: &Store<Pod>) {
        let mut pods_by_ns: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for pod in pods.state() {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            pods_by_ns.entry(ns).or_default().push(pod);
        }
        let views = views
            .state()
            .into_iter()
            .map(|view| {
                let ns = view.metadata.namespace.clone().unwrap_or_default();
                let pods = pods_by_ns.get(&ns).map(Vec::as_slice).unwrap_or_default();
                let pods = || pods.iter().map(|p| p.as_ref());
                Routed {
                    serving: route(&view, pods()),
                    pending: pending_route(&view, pods()),
                    building: building_route(&view, pods()),
                    view,
                }
            })
            .collect();
        self.publish(views);
    }

    pub fn route(&self, namespace: &str, name: &str) -> Option<Arc<ViewRoute>> {
        self.current()
            .routes
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The route of the view's revision waiting for promotion, if any.
    pub fn pending_route(&self, namespace: &str, name: &str) -> Option<Arc<ViewRoute>> {
        self.current()
            .pending
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every pod of the view's revision being built, ready or not.
    pub fn building_route(&self, namespace: &str, name: &str) -> Option<Arc<ViewRoute>> {
        self.current()
            .building
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn view(&self, namespace: &str, name: &str) -> Option<Arc<MaterializedView>> {
        self.current()
            .views
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every view, by namespace and name.
    pub fn views(&self) -> Vec<Arc<MaterializedView>> {
        self.current().views.values().cloned().collect()
    }

    /// The spec of the route's revision and its compiled form, cached per revision.
    pub async fn revision_info(
        &self,
        projectors: &ProjectorClient,
        route: &ViewRoute,
    ) -> Result<Arc<RevisionInfo>, RevisionInfoError> {
        let key = (
            route.namespace.clone(),
            route.name.clone(),
            route.revision.clone(),
        );
        if let Some(info) = self
            .revisions
            .lock()
            .ok()
            .and_then(|r| r.get(&key).cloned())
        {
            return Ok(info);
        }
        for (_, endpoint) in route.endpoints() {
            let Ok(info) = projectors.info(&endpoint.url).await else {
                continue;
            };
            if info.revision != route.revision {
                continue;
            }
            let compiled = compile(&info.spec).map_err(|source| RevisionInfoError::Invalid {
                revision: route.revision.clone(),
                source,
            })?;
            let info = Arc::new(RevisionInfo {
                compiled,
                partitions: info.partitions,
                spec: info.spec,
            });
            // A projector that has not read the topic yet does not know its
            // partitions: ask again next time rather than keep a zero.
            if info.partitions > 0
                && let Ok(mut revisions) = self.revisions.lock()
            {
                revisions.insert(key, info.clone());
            }
            return Ok(info);
        }
        Err(RevisionInfoError::Unreachable(route.revision.clone()))
    }
}

/// Whether a watch failed because its resource type does not exist.
fn type_missing(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 404,
        watcher::Error::WatchError(status) => status.code == 404,
        _ => false,
    }
}

/// Wakes the rebuilder on every event; `missing` says whether the watched
/// type (the CRD) was found missing at the last attempt.
fn spawn_notifier<S, T>(
    events: S,
    changed: Arc<Notify>,
    what: &'static str,
    missing: Option<Arc<AtomicBool>>,
) where
    S: futures::Stream<Item = Result<T, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        futures::pin_mut!(events);
        let mut missing_logged = false;
        while let Some(event) = events.next().await {
            match (&event, &missing) {
                (Err(e), Some(missing)) if type_missing(e) => {
                    missing.store(true, Ordering::Release);
                    if !missing_logged {
                        warn!("{}; waiting for it", matview_crd::CRD_MISSING);
                        missing_logged = true;
                    }
                }
                (Err(e), _) => warn!(error = %e, watch = what, "watch error (retrying)"),
                (Ok(_), Some(missing)) => {
                    if missing.swap(false, Ordering::AcqRel) {
                        tracing::info!("the MaterializedView CRD is installed");
                    }
                    missing_logged = false;
                }
                (Ok(_), None) => {}
            }
            changed.notify_one();
        }
    });
}
