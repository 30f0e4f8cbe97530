//! Integration tests: one binary (one link step) against the real test
//! environment started by `make testenv`.

mod broker;
mod broker_bounce;
mod browser;
mod cli;
mod crd_api;
mod damaged_store;
mod dev;
mod disk_full;
mod docs;
mod e2e;
mod formats;
mod gateway;
mod gateway_load;
mod gateway_scans;
mod helm;
mod helm_chart;
mod history;
mod hostile;
mod image;
mod layering;
mod leader_election;
mod monotonic_reads;
mod operator;
mod operator_objects;
mod operator_scale;
mod projector;
mod sasl_ssl;
mod smoke_kafka;
mod smoke_kube;
mod smoke_tools;
mod support;
mod tables;
mod tables_streams;
mod troubles;
