//! Test harness: private PostgreSQL clusters, hosts (in-process or as real processes) and a small
//! API client. Everything is real: clusters are started by the host's own `embedded_postgres`
//! module, hosts listen on loopback, requests go over HTTP.

mod api;
mod cluster;
mod fleet;
mod host;
pub mod pacman;
mod stream;

pub use api::{Api, Caller, Reply, Request, state};
pub use cluster::{PrivateCluster, postgres_binary, shared_tempdir, stop_cluster_blocking};
pub use fleet::{Endpoint, Fleet, FleetBuilder};
pub use host::{HostProcess, TestHost, test_settings};
pub use stream::{Stream, StreamRefused};
