//! The hermetic integration tests, in one binary (tests/common compiles once for all of
//! them): no root, no network namespaces, no containers, no browser, no Prometheus server,
//! no package manager. They run the exporter binary and in-process routers on loopback,
//! read fixture trees and the repository's files, and lint with the tools `.ci/run`
//! installs (promtool, hadolint, kubernetes-validate, jsonnet); a missing tool is a loud
//! skip locally and a failure under CI=true. The system tests are the other binaries of
//! tests/ (see docs/development.md).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod dashboard_lint;
mod deploy_artifacts;
mod events_api;
mod fuzz_parsers;
mod http;
mod mixin;
mod registry;
mod security;
mod sockets_fixtures;
