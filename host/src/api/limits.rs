//! Rate limits and the request timeout, in front of every route; and the open-stream caps the
//! stream routes check.
//!
//! **Who is counted.** A request with a validly signed bearer token (header, or `access_token`
//! on the stream routes) counts against its subject: an endpoint, or an admin token's name. The
//! token is verified here, once per request, and the result handed to the handler's extractor
//! ([`Verified`]); the database is not asked. So an endpoint token revoked by its generation
//! still counts against its endpoint, then fails authentication in the handler. An admin token
//! this replica knows to be revoked (or one without an id, refused as well) counts against the
//! client's address instead: under its name, a flood with a revoked token would throttle the
//! token reissued under that name. A request without a valid token (registration,
//! `GET /api/sync/health`, a bad token) counts against the client's address,
//! as the connection shows it: an IPv4 address, or an IPv6 /64 (one machine's usual share).
//! Behind a proxy that is the proxy's address, so every anonymous client shares one bucket
//! there: raise the per-address limit, or limit at the proxy. `/metrics` is an admin route like
//! any other: a scraper counts against its token's name.
//!
//! **What they answer.** Past its rate a caller gets 429 `RATE_LIMITED` with `Retry-After` (whole
//! seconds until one more request would pass), before its request is read or authenticated.
//! A request that takes longer than the request timeout gets 503 `REQUEST_TIMEOUT`; its work is
//! dropped at the next await, so a transaction in flight rolls back. An event stream is not cut
//! by it: the stream routes answer the upgrade at once and the session runs on its own.
//!
//! **Per replica.** Each replica counts in its own memory; a caller spread over `n` replicas gets
//! up to `n` times each limit. Buckets of callers idle long enough to be full again are
//! forgotten, so the memory held follows the callers active in the last few seconds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, NotUntil, RateLimiter};

use super::AppState;
use super::extract::Verified;
use crate::auth::{self, Keys, Role};
use crate::error::{Error, ErrorCode};
use crate::events::StreamSlots;

/// How many checks pass between two sweeps of forgotten buckets.
const SWEEP_EVERY: u64 = 1024;

/// The client address of a connection, recorded by the listener for the per-address limit.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// A TCP listener whose connections carry a [`ClientAddr`], so that axum's connect info (for
/// `tap_io` listeners: their address type) reaches the rate limiter.
pub struct ClientListener(pub tokio::net::TcpListener);

impl Listener for ClientListener {
    type Io = tokio::net::TcpStream;
    type Addr = ClientAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        (io, ClientAddr(addr))
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Listener::local_addr(&self.0).map(ClientAddr)
    }
}

impl Connected<IncomingStream<'_, crate::tls::TlsListener<ClientAddr>>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::TlsListener<ClientAddr>>) -> Self {
        *stream.remote_addr()
    }
}

/// This replica's rate limiters and stream counts.
#[derive(Clone)]
pub struct Limits {
    rates: Arc<Rates>,
    /// Open event streams per endpoint and per admin name.
    pub streams: StreamSlots,
}

struct Rates {
    endpoint: DefaultKeyedRateLimiter<String>,
    admin: DefaultKeyedRateLimiter<String>,
    address: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

/// Whom a request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Endpoint(String),
    Admin(String),
    Address(IpAddr),
}

impl Limits {
    /// Empty buckets and counts for `limits`.
    pub fn new(limits: &crate::config::Limits) -> Self {
        Self {
            rates: Arc::new(Rates {
                endpoint: RateLimiter::keyed(limits.endpoint.quota()),
                admin: RateLimiter::keyed(limits.admin.quota()),
                address: RateLimiter::keyed(limits.address.quota()),
                checks: AtomicU64::new(0),
            }),
            streams: StreamSlots::new(limits.streams_per_endpoint, limits.streams_per_admin),
        }
    }

    /// Takes one request from `caller`'s bucket, or says when it may try again.
    fn check(&self, caller: &Caller) -> Result<(), Error> {
        let rates = &self.rates;
        if rates.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            rates.endpoint.retain_recent();
            rates.admin.retain_recent();
            rates.address.retain_recent();
        }
        let (outcome, now) = match caller {
            Caller::Endpoint(subject) => (
                rates.endpoint.check_key(subject),
                rates.endpoint.clock().now(),
            ),
            Caller::Admin(subject) => (rates.admin.check_key(subject), rates.admin.clock().now()),
            Caller::Address(ip) => (rates.address.check_key(ip), rates.address.clock().now()),
        };
        outcome.map_err(|refused| limited(&refused, now))
    }
}

/// A moment on the limiters' clock.
type Instant = <DefaultClock as Clock>::Instant;

fn limited(refused: &NotUntil<Instant>, now: Instant) -> Error {
    let wait = refused.wait_time_from(now);
    Error::new(
        ErrorCode::RateLimited,
        format!(
            "too many requests; at most {} at once and {} per second after that (per replica)",
            refused.quota().burst_size(),
            per_second(refused.quota().replenish_interval()),
        ),
    )
    .retry_after(ceil_seconds(wait))
}

fn per_second(interval: Duration) -> u128 {
    Duration::from_secs(1)
        .as_nanos()
        .checked_div(interval.as_nanos())
        .unwrap_or(0)
}

fn ceil_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Middleware: verifies the request's token (leaving the result to the handler) and counts the
/// request against its caller, or answers 429 `RATE_LIMITED`.
pub async fn rate_limit(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let verified = Verified::of(&app.keys, request.headers(), request.uri());
    if app.config.limits.rates_enabled {
        let caller = caller(&app.keys, verified.as_ref(), &request);
        if let Err(refused) = app.limits.check(&caller) {
            return refused.into_response();
        }
    }
    if let Some(verified) = verified {
        request.extensions_mut().insert(verified);
    }
    next.run(request).await
}

/// Middleware: answers 503 `REQUEST_TIMEOUT` once the request has taken the configured time.
pub async fn request_timeout(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = app.config.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request took longer than the host's {} ms request timeout",
                limit.as_millis()
            ),
        )
        .into_response(),
    }
}

/// The subject of a validly signed token that is not known to be revoked, else the client's
/// address.
fn caller(keys: &Keys, verified: Option<&Verified>, request: &Request) -> Caller {
    match verified.and_then(Verified::claims) {
        Some(claims) if !auth::revoked(keys, claims) => match claims.role {
            Role::Endpoint => Caller::Endpoint(claims.sub.clone()),
            Role::Admin => Caller::Admin(claims.sub.clone()),
        },
        _ => {
            let ip = request
                .extensions()
                .get::<ConnectInfo<ClientAddr>>()
                .map(|ConnectInfo(ClientAddr(addr))| addr.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            Caller::Address(bucket(ip))
        }
    }
}

/// The address a client is counted under: IPv4 as it is, IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::config::Rate;

    fn limits(burst: u32) -> Limits {
        let rate = Rate::new(NonZeroU32::MIN, NonZeroU32::new(burst).unwrap());
        Limits::new(&crate::config::Limits {
            endpoint: rate,
            admin: rate,
            address: rate,
            ..crate::config::Limits::default()
        })
    }

    #[test]
    fn a_caller_past_its_burst_is_told_when_to_come_back_and_others_are_not_affected() {
        let limits = limits(2);
        let one = Caller::Endpoint("a".into());
        assert!(limits.check(&one).is_ok());
        assert!(limits.check(&one).is_ok());
        let refused = limits.check(&one).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(
            refused.retry_after,
            Some(1),
            "one request a second refills in 1 s"
        );
        assert!(limits.check(&Caller::Endpoint("b".into())).is_ok());
        assert!(
            limits.check(&Caller::Admin("a".into())).is_ok(),
            "an admin named like an endpoint has its own bucket"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(bucket(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ceil_seconds(Duration::from_millis(2001)), 3);
    }
}
