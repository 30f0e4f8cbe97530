//! Names two processes share: the labels the operator puts on a view's
//! projector pods and the gateway finds them by, and the projector's port.

/// The view a projector pod serves (its name).
pub const LABEL_VIEW: &str = "matview.dev/view";
/// The revision a projector pod serves.
pub const LABEL_REVISION: &str = "matview.dev/revision";
/// The shard a projector pod serves.
pub const LABEL_SHARD: &str = "matview.dev/shard";
/// The port of a projector's HTTP API.
pub const HTTP_PORT: i32 = 8080;
