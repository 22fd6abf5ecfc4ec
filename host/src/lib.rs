//! The pacsync host: REST API, PostgreSQL-enforced operation lifecycle, embedded database.
//!
//! Map of the crate:
//! - [`server`] starts and stops everything; [`api`] holds the routes (thin handlers);
//! - [`operations`], [`endpoints`], [`pools`] are the domain: one transaction per request;
//! - [`db`] is the only place with SQL, over the stored procedures in `sql/`;
//! - [`auth`] decides who is asking; [`policy`] classifies and plans; [`reaper`] expires leases;
//! - [`events`] fans the event log out to WebSocket streams; [`tls`] serves HTTPS/WSS when no
//!   TLS-terminating proxy is in front;
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
pub mod server;
pub mod tls;
