//! Tests that stop a shared part of the test environment (the control
//! plane). A test binary of its own: cargo runs test binaries one after
//! another, so nothing else runs while the API server is away.

// The shared support code; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

mod api_server_bounce;
