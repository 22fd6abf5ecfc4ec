//! The pacsync endpoint agent and CLI.
//!
//! - [`config`]: the agent's config file (server, endpoint id, token, pacman settings);
//! - [`api`]: the host's HTTP API, spoken in `pacsync_core`'s wire types;
//! - [`pacman`]: reading the local package database and running real pacman;
//! - [`plan_check`]: the rules every plan passes before pacman sees any of it;
//! - [`execute`]: turning a plan into pacman transactions, with progress;
//! - [`resolve`]: where each package version of a plan comes from;
//! - [`rollback`]: the rollback store of versions nothing else could give back;
//! - [`archive_check`]: which installed foreign versions the archive keeps;
//! - [`stream`]: the endpoint's live event stream (WebSocket), for following and waking up;
//! - [`agent`]: the daemon loop that claims and carries out operations;
//! - [`tls`]: the trust roots of every HTTPS/WSS connection;
//! - [`cli`]: the commands, and the one mapping from failures to exit codes.

pub mod agent;
pub mod api;
pub mod archive_check;
pub mod cli;
pub mod config;
pub mod execute;
pub mod pacman;
pub mod plan_check;
pub mod resolve;
pub mod rollback;
pub mod stream;
pub mod tls;
