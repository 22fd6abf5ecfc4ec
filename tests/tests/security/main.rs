//! Black-box security tests: a real host, a real database, the real client binary and real
//! pacman, each attack tried as an outsider would and shown to be stopped. SECURITY.md names
//! the threat model and which test covers which control.

mod admin_tokens;
mod agent_plans;
mod availability;
mod client_limits;
mod embedded;
mod limits;
mod retention;
mod targets;
mod unit;
