//! What keeps a shard from moving while it still serves reads — the
//! broker, the store, the schema registry — and replicas out of sync, each
//! recorded when it starts and when it clears (logged once each way). Each
//! change bumps a version the operator waits on (`GET /v1/troubles`), so
//! status says so within moments, not at the next periodic reconcile.

use matview_registry::RegistryUnavailable;
use tracing::info;

use super::Shared;

impl Shared {
    /// Records whether the source's broker answers (`None`) or why not.
    pub(crate) fn set_source_error(&self, error: Option<String>) {
        self.metrics.set_source_reachable(error.is_none());
        if let Ok(mut p) = self.progress.lock() {
            let down = "the source's broker does not answer; serving reads from the store";
            let changed = replace_trouble(
                &mut p.source_error,
                error,
                down,
                "the source's broker answers again",
            );
            self.troubles_changed(changed);
        }
    }

    /// Records which partitions have replicas out of sync (`None`: none).
    pub(crate) fn set_under_replicated(&self, partitions: Option<String>) {
        if let Ok(mut p) = self.progress.lock() {
            let changed = p.under_replicated != partitions;
            replace_trouble(
                &mut p.under_replicated,
                partitions,
                "replicas out of sync; reading and writing go on",
                "every replica in sync again",
            );
            self.troubles_changed(changed);
        }
    }

    /// Partitions with replicas out of sync, while some have.
    pub fn under_replicated(&self) -> Option<String> {
        self.progress
            .lock()
            .ok()
            .and_then(|p| p.under_replicated.clone())
    }

    /// The troubles' version now.
    pub fn troubles_version(&self) -> u64 {
        *self.troubles.borrow()
    }

    /// Waits until the troubles' version is not `after` or `wait` passed;
    /// gives the version then.
    pub async fn troubles_after(&self, after: u64, wait: std::time::Duration) -> u64 {
        let mut rx = self.troubles.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|v| *v != after)).await;
        self.troubles_version()
    }

    fn troubles_changed(&self, changed: bool) {
        if changed {
            self.troubles.send_modify(|v| *v += 1);
        }
    }

    /// Records whether batches can be written to the store (`None`) or why not.
    pub(crate) fn set_store_error(&self, error: Option<String>) {
        self.metrics.set_store_writable(error.is_none());
        if let Ok(mut p) = self.progress.lock() {
            let down = "holding batches; serving reads from the store";
            let changed = replace_trouble(&mut p.store_error, error, down, "writing batches again");
            self.troubles_changed(changed);
        }
    }

    /// Records whether the schema registry answers (`None`) or why not.
    pub(crate) fn set_registry_error(&self, trouble: Option<&RegistryUnavailable>) {
        self.metrics.set_registry_reachable(trouble.is_none());
        let error = trouble.map(ToString::to_string);
        if let Ok(mut p) = self.progress.lock() {
            let refused = trouble.is_some_and(|t| t.refused);
            let refusal_changed = p.registry_refused != refused;
            p.registry_refused = refused;
            let down =
                "the schema registry cannot answer: holding batches; serving reads from the store";
            let changed = replace_trouble(
                &mut p.registry_error,
                error,
                down,
                "the schema registry answers again",
            );
            self.troubles_changed(changed || refusal_changed);
        }
    }

    /// Why the schema registry cannot answer, while it cannot.
    pub fn registry_error(&self) -> Option<String> {
        self.progress
            .lock()
            .ok()
            .and_then(|p| p.registry_error.clone())
    }

    /// Whether the registry refuses the credentials, while it does.
    pub fn registry_refused(&self) -> bool {
        self.progress.lock().is_ok_and(|p| p.registry_refused)
    }

    /// Why batches are held, while they are.
    pub fn store_error(&self) -> Option<String> {
        self.progress
            .lock()
            .ok()
            .and_then(|p| p.store_error.clone())
    }

    /// Why the source's broker does not answer, while it does not.
    pub fn source_error(&self) -> Option<String> {
        self.progress
            .lock()
            .ok()
            .and_then(|p| p.source_error.clone())
    }
}

/// Sets a trouble slot, logging only when it starts (`down`) or ends (`up`);
/// whether it started or ended.
fn replace_trouble(slot: &mut Option<String>, error: Option<String>, down: &str, up: &str) -> bool {
    let started_or_ended = match (&slot, &error) {
        (None, Some(e)) => {
            tracing::warn!(error = %e, "{down}");
            true
        }
        (Some(_), None) => {
            info!("{up}");
            true
        }
        _ => false,
    };
    *slot = error;
    started_or_ended
}
