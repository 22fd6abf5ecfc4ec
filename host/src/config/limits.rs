//! The bounds on what one caller can make a replica do: request rates, open event streams,
//! messages on a stream, time per request, and how much of the event log a resuming stream
//! reads at once.
//!
//! Every limit is kept in the memory of one replica and counted there: behind a load balancer
//! spreading a caller over `n` replicas, the caller gets up to `n` times each limit.

use std::num::NonZeroU32;
use std::time::Duration;

use super::{ConfigError, Settings};

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl Rate {
    /// A rate of `per_second` with bursts of `burst`; both at least 1.
    pub const fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self { per_second, burst }
    }

    /// The same rate as a governor quota.
    pub fn quota(self) -> governor::Quota {
        governor::Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// Resolved limits, each per replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whether the three request rates apply at all.
    pub rates_enabled: bool,
    /// Requests per endpoint (its token's subject).
    pub endpoint: Rate,
    /// Requests per admin token name (its subject).
    pub admin: Rate,
    /// Requests without a valid token, per client address (an IPv6 /64 counts as one).
    pub address: Rate,
    /// Open event streams one endpoint's token may hold.
    pub streams_per_endpoint: u32,
    /// Open event streams one admin token name may hold.
    pub streams_per_admin: u32,
    /// Requests (`get_status`, `ping`) per open stream.
    pub stream_messages: Rate,
    /// How long a request may take, from its head to its response.
    pub request_timeout: Duration,
    /// Event log rows a resuming stream reads per query.
    pub backlog_page: u32,
}

const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a default limit is zero"),
    }
}

impl Default for Limits {
    /// Sized so that a 10,000-endpoint fleet in normal use never meets them (see
    /// docs/deployment.md, "Limits"): an agent makes a handful of requests per operation, bursts of progress while
    /// pacman runs, and a report after each transaction.
    fn default() -> Self {
        Self {
            rates_enabled: true,
            endpoint: Rate::new(nz(20), nz(200)),
            admin: Rate::new(nz(50), nz(500)),
            address: Rate::new(nz(20), nz(200)),
            streams_per_endpoint: 4,
            streams_per_admin: 64,
            stream_messages: Rate::new(nz(1), nz(10)),
            request_timeout: Duration::from_secs(50),
            backlog_page: 500,
        }
    }
}

impl Limits {
    /// The limits `s` sets, defaults for the others.
    pub(super) fn resolve(s: &Settings) -> Result<Limits, ConfigError> {
        let default = Limits::default();
        Ok(Limits {
            rates_enabled: s.rate_limits.unwrap_or(default.rates_enabled),
            endpoint: rate(
                "rate_limit_endpoint_per_second / rate_limit_endpoint_burst",
                s.rate_limit_endpoint_per_second,
                s.rate_limit_endpoint_burst,
                default.endpoint,
            )?,
            admin: rate(
                "rate_limit_admin_per_second / rate_limit_admin_burst",
                s.rate_limit_admin_per_second,
                s.rate_limit_admin_burst,
                default.admin,
            )?,
            address: rate(
                "rate_limit_address_per_second / rate_limit_address_burst",
                s.rate_limit_address_per_second,
                s.rate_limit_address_burst,
                default.address,
            )?,
            streams_per_endpoint: at_least_one(
                "max_streams_per_endpoint",
                s.max_streams_per_endpoint,
                default.streams_per_endpoint,
            )?,
            streams_per_admin: at_least_one(
                "max_streams_per_admin",
                s.max_streams_per_admin,
                default.streams_per_admin,
            )?,
            stream_messages: rate(
                "stream_messages_per_second / stream_message_burst",
                s.stream_messages_per_second,
                s.stream_message_burst,
                default.stream_messages,
            )?,
            request_timeout: match s.request_timeout_ms {
                None => default.request_timeout,
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        name: "request_timeout_ms",
                        reason: "must be at least 1",
                    });
                }
                Some(ms) => Duration::from_millis(ms),
            },
            backlog_page: at_least_one(
                "event_backlog_page",
                s.event_backlog_page,
                default.backlog_page,
            )?,
        })
    }
}

fn rate(
    name: &'static str,
    per_second: Option<u32>,
    burst: Option<u32>,
    default: Rate,
) -> Result<Rate, ConfigError> {
    let positive = |n: Option<u32>, or: NonZeroU32| match n {
        None => Ok(or),
        Some(n) => NonZeroU32::new(n).ok_or(ConfigError::Invalid {
            name,
            reason: "must be at least 1",
        }),
    };
    Ok(Rate {
        per_second: positive(per_second, default.per_second)?,
        burst: positive(burst, default.burst)?,
    })
}

fn at_least_one(name: &'static str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::Invalid {
            name,
            reason: "must be at least 1",
        }),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}
