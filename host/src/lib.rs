//! The pacsync host: REST API, PostgreSQL-enforced operation lifecycle, embedded database.
//!
//! Map of the crate, in the one direction imports flow (api → domain → db):
//! - [`server`] only wires: database, keys, hub, reaper, router;
//! - [`api`] holds the routes (thin handlers), the extractors and [`api::AppState`], from which
//!   each handler takes what it needs (`FromRef` sub-states), and the rate limits and request
//!   timeout in front of every route ([`api::limits`]);
//! - the domain, one transaction per request, taking only what it uses (pool, policies, keys):
//!   [`operations`] (the lifecycle), [`classification`], [`endpoints`], [`enrollment`],
//!   [`pools`], [`plugins`], [`availability`], [`policy`] (classifies and plans in WebAssembly);
//! - [`events`] fans the event log out to WebSocket streams; [`reaper`] expires leases;
//!   [`retention`] collects package states nothing needs any more;
//! - [`db`] is the only place with SQL, over the stored procedures in `sql/`;
//! - [`auth`] verifies and issues tokens, records admin tokens and follows their revocation
//!   on every replica; [`tls`] serves HTTPS/WSS when no TLS-terminating proxy is in front;
//!   [`embedded_postgres`] runs the private cluster; [`metrics`] exports Prometheus metrics;
//! - [`error`] is the one mapping from failures to `application/problem+json`.

pub mod api;
pub mod auth;
pub mod availability;
pub mod classification;
pub mod cli;
pub mod config;
pub mod db;
pub mod embedded_postgres;
pub mod endpoints;
pub mod enrollment;
pub mod error;
pub mod events;
pub mod metrics;
pub mod operations;
pub mod plugins;
pub mod policy;
pub mod pools;
pub mod reaper;
pub mod request_id;
pub mod retention;
pub mod secret_file;
pub mod server;
pub mod tls;
