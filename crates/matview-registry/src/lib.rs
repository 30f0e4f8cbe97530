//! Reaching a schema registry: the settings of a secured one
//! ([`access`]), the client ([`client`]) the projector, the operator and
//! `matview validate` share, and the check of a view's paths against the
//! subject's latest schema ([`check`]).

pub mod access;
pub mod check;
pub mod client;

pub use access::{AccessError, BasicAuth, RegistryAccess};
pub use client::{Fetched, RegistryClient, RegistryUnavailable};
