//! matview: declarative CQRS read models over Kafka, as a Kubernetes operator.
//!
//! The binary `matview` wires these modules together; each module owns one part
//! of the architecture described in the README.

pub mod api;
pub mod bench;
pub mod broker;
pub mod chart;
pub mod cli;
pub mod crd;
pub mod dev;
pub mod engine;
pub mod errors;
pub mod gateway;
pub mod logging;
pub mod operator;
pub mod projector;
pub mod signals;
pub mod version;
pub mod view;
pub mod web;
pub mod workload;
