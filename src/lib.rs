//! matview: declarative CQRS read models over Kafka, as a Kubernetes operator.
//!
//! The binary `matview` wires the workspace's crates together: one
//! subcommand per component. Each crate is one layer of the architecture
//! (see the README); they are re-exported here under their short names, so
//! `matview::engine` is `matview_engine`.

pub use matview_api as api;
pub use matview_api::{errors, signals, version, view};
pub use matview_bench as bench;
pub use matview_bench::workload;
pub use matview_broker as broker;
pub use matview_crd as crd;
pub use matview_engine as engine;
pub use matview_gateway as gateway;
pub use matview_gateway::web;
pub use matview_operator as operator;
pub use matview_projector as projector;

pub mod chart;
pub mod cli;
pub mod dev;
pub mod logging;
pub mod reference;
