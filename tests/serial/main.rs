//! Tests that stop or take over a shared part of the test environment (the
//! control plane; a cluster-wide operator). A test binary of its own: cargo
//! runs test binaries one after another, so nothing else runs meanwhile, and
//! its tests take [`ONE_AT_A_TIME`] so they do not meet each other either.

// The shared support code; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

mod api_server_bounce;
mod cluster_quick_start;

/// Held for the whole of each test of this binary.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
