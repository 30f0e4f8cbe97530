//! Starting a revision of a view in dev mode: its manifest as dev mode runs
//! it (the registry it can reach), its stores under the data directory and
//! one projector per shard.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::{DevConfig, DevError};
use super::rollouts::{DevView, Launch, Started};
use crate::crd::MaterializedView;
use crate::gateway::routing::{Endpoint, ViewRoute};
use crate::projector::{ProjectorConfig, RunningProjector};
use crate::view::ValidatedView;

/// How a revision starts in dev mode (also a changed file's, later).
pub struct Launcher {
    pub config: DevConfig,
    pub servers: String,
    pub registry: Option<String>,
    pub runtime: tokio::runtime::Handle,
}

impl Launch for Launcher {
    fn prepare(
        &self,
        mut manifest: MaterializedView,
    ) -> Result<(MaterializedView, ValidatedView), String> {
        if let (Some(url), true) = (&self.registry, needs_registry(&manifest)) {
            manifest.spec.source.schema_registry = Some(crate::crd::SchemaRegistry {
                url: url.clone(),
                config_from: None,
            });
        }
        let validated = ValidatedView::new(&manifest).map_err(|e| crate::errors::chain(&e))?;
        Ok((manifest, validated))
    }

    fn start(
        &self,
        manifest: &MaterializedView,
        validated: &ValidatedView,
        cancel: CancellationToken,
    ) -> Result<Started, String> {
        let view = DevView {
            path: None,
            manifest: manifest.clone(),
            validated: validated.clone(),
        };
        let (projectors, route) =
            start_view(&self.config, &self.servers, &view, &self.runtime, &cancel)
                .map_err(|e| crate::errors::chain(&e))?;
        Ok(Started { projectors, route })
    }
}

/// Views that read Avro or Protobuf need a schema registry.
pub fn needs_registry(view: &MaterializedView) -> bool {
    let source = &view.spec.source;
    source.format != crate::crd::EventFormat::Json
        || matches!(
            source.key_format,
            crate::crd::KeyFormat::Avro | crate::crd::KeyFormat::Protobuf
        )
}

/// Starts every shard of a view and returns its route. The manifest is
/// written under the data directory (with the chosen brokers), as the
/// operator's ConfigMap would hold it; each revision has its own stores.
pub fn start_view(
    config: &DevConfig,
    servers: &str,
    view: &DevView,
    runtime: &tokio::runtime::Handle,
    cancel: &CancellationToken,
) -> Result<(Vec<RunningProjector>, ViewRoute), DevError> {
    let v = &view.validated;
    let home = config
        .data_dir
        .join(&v.namespace)
        .join(&v.name)
        .join(&v.revision);
    std::fs::create_dir_all(&home).map_err(|source| DevError::Write {
        path: home.clone(),
        source,
    })?;
    let view_file = home.join("view.yaml");
    let text = serde_yaml_ng::to_string(&view.manifest).unwrap_or_default();
    write(&view_file, &text)?;
    let mut running = Vec::new();
    let mut shards = Vec::new();
    for shard in 0..v.shards {
        let projector = crate::projector::start(
            shard_config(servers, &view_file, &home, shard),
            runtime,
            cancel.clone(),
        )?;
        shards.push(vec![Endpoint {
            pod: format!("{}-s{shard}", v.name),
            url: format!("http://{}", projector.address),
        }]);
        running.push(projector);
    }
    let route = ViewRoute {
        namespace: v.namespace.clone(),
        name: v.name.clone(),
        revision: v.revision.clone(),
        topic: v.topic.clone(),
        keyed_by_row_key: v.keyed_by_row_key,
        shards,
    };
    Ok((running, route))
}

fn shard_config(servers: &str, view_file: &Path, home: &Path, shard: u32) -> ProjectorConfig {
    ProjectorConfig {
        view_file: view_file.to_path_buf(),
        shard: Some(shard),
        ordinal: None,
        replica: None,
        data_dir: home.join(format!("s{shard}")),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        bootstrap_servers: Some(servers.to_string()),
        kafka_properties: Vec::new(),
        batch_max_events: 20_000,
        batch_max_wait: Duration::from_millis(20),
        ready_max_lag: 0,
        // A laptop runs several stores: a small page cache each.
        store_cache_bytes: 64 << 20,
        fetch_queue_kib: 4096,
        memory_budget_mib: 256,
        damaged_store: crate::projector::DamagedStore::Rebuild,
        min_free_bytes: 16 << 20,
        schema_registry_config_dir: None,
    }
}

fn write(path: &Path, text: &str) -> Result<(), DevError> {
    std::fs::write(path, text).map_err(|source| DevError::Write {
        path: path.to_path_buf(),
        source,
    })
}
