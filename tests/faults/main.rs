//! A replicated Kafka cluster under failure: three KRaft nodes, each in a
//! network namespace of its own (`hack/testenv.sh cluster`), topics with
//! replication factor 3 and `min.insync.replicas=2`, a producer with
//! `acks=all` writing throughout, readers through the gateway throughout,
//! the operator, the process kubelet and projector pods as in production.
//! After each fault: no failed read, every row equal to the reference
//! computed from the orders, and the view Ready again by itself.
//!
//! A test binary of its own: cargo runs test binaries one after another, and
//! its scenarios take [`ONE_AT_A_TIME`], so three Kafka nodes per scenario
//! never start beside the rest of the suite or each other.

// The shared support code; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

mod cluster;
mod dead_letters;
mod figures;
mod leader;
mod projector_cut;
mod reconnects;
mod rolling;
mod scenario;
mod status_log;

/// Held for the whole of each scenario.
pub(crate) static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
