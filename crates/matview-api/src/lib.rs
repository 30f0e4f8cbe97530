//! Typed HTTP contracts shared by the servers and their clients: the
//! projector's internal API (served by the projector, read by the operator and
//! the gateway) and the problem body every component answers errors with.
//! Components talk through these structs, never by parsing each other's text.

pub mod client;
pub mod dead_letters;
pub mod errors;
pub mod figures;
pub mod gateway;
pub mod listen;
pub mod metrics_text;
pub mod names;
pub mod openapi;
pub mod problem;
pub mod projector;
pub mod records;
pub mod revision_rows;
pub mod revisions;
pub mod signals;
pub mod version;
pub mod view;

pub use client::{Answer, ClientError, ProjectorClient};
pub use problem::ProblemBody;
