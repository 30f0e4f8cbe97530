//! What keeps a shard from moving while it still serves reads — the
//! broker, the store, the schema registry — each recorded when it starts
//! and when it clears (logged once each way).

use matview_registry::RegistryUnavailable;
use tracing::info;

use super::Shared;

impl Shared {
    /// Records whether the source's broker answers (`None`) or why not.
    pub(crate) fn set_source_error(&self, error: Option<String>) {
        self.metrics.set_source_reachable(error.is_none());
        if let Ok(mut p) = self.progress.lock() {
            let down = "the source's broker does not answer; serving reads from the store";
            replace_trouble(
                &mut p.source_error,
                error,
                down,
                "the source's broker answers again",
            );
        }
    }

    /// Records whether batches can be written to the store (`None`) or why not.
    pub(crate) fn set_store_error(&self, error: Option<String>) {
        self.metrics.set_store_writable(error.is_none());
        if let Ok(mut p) = self.progress.lock() {
            let down = "holding batches; serving reads from the store";
            replace_trouble(&mut p.store_error, error, down, "writing batches again");
        }
    }

    /// Records whether the schema registry answers (`None`) or why not.
    pub(crate) fn set_registry_error(&self, trouble: Option<&RegistryUnavailable>) {
        self.metrics.set_registry_reachable(trouble.is_none());
        let error = trouble.map(ToString::to_string);
        if let Ok(mut p) = self.progress.lock() {
            p.registry_refused = trouble.is_some_and(|t| t.refused);
            let down =
                "the schema registry cannot answer: holding batches; serving reads from the store";
            replace_trouble(
                &mut p.registry_error,
                error,
                down,
                "the schema registry answers again",
            );
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

/// Sets a trouble slot, logging only when it starts (`down`) or ends (`up`).
fn replace_trouble(slot: &mut Option<String>, error: Option<String>, down: &str, up: &str) {
    match (&slot, &error) {
        (None, Some(e)) => tracing::warn!(error = %e, "{down}"),
        (Some(_), None) => info!("{up}"),
        _ => {}
    }
    *slot = error;
}
