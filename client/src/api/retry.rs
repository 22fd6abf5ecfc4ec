//! When a request the host turned away is sent again, and after how long.
//!
//! The host answers 429 `RATE_LIMITED` past a caller's rate before it reads the request, so the
//! request did nothing and any request may be sent again. It answers 503 (`REQUEST_TIMEOUT`,
//! `POLICY_BUSY`, `DATABASE_UNAVAILABLE`) when it could not finish, and part of the work may
//! have been done: only a request that does the same however often it arrives is sent again
//! after one ([`Resend`]). Either is sent again only after the wait the host names in
//! `Retry-After` (a 429 without one: a second; a 503 without one is not retried), at most
//! [`MAX_RETRIES`] times. A wait longer than [`MAX_WAIT`], or one that would end past the
//! command's deadline, is not slept through: the command gives up at once and says how long
//! the host asked it to wait.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ApiError;

/// How many times one request is sent again.
pub const MAX_RETRIES: u32 = 3;
/// The longest wait before sending a request again.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// The wait after a 429 that names none.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// Whether a request may be sent again when the host may have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Sending it twice does what sending it once does: reads, the state report, progress.
    Idempotent,
    /// Made idempotent by an `Idempotency-Key`, the same on every attempt: the host answers a
    /// repeat with what the first attempt created.
    Keyed,
    /// Sent again only when the host certainly did nothing with it.
    Once,
}

/// How long to wait before sending again a request the host refused with `refused` (and
/// `Retry-After: retry_after`), after `retries` retries and with `left` before the command's
/// deadline; `None`: give up.
pub fn wait(
    refused: &ApiError,
    retry_after: Option<Duration>,
    resend: Resend,
    retries: u32,
    left: Option<Duration>,
) -> Option<Duration> {
    let wait = match refused {
        ApiError::RateLimited { .. } => retry_after.unwrap_or(DEFAULT_WAIT),
        ApiError::Problem { status: 503, .. } if resend != Resend::Once => retry_after?,
        _ => return None,
    };
    let in_time = left.is_none_or(|left| wait <= left);
    (retries < MAX_RETRIES && wait <= MAX_WAIT && in_time).then_some(wait)
}

/// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP date (a date already
/// past is no wait).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// `wait` in whole seconds, rounded up, as a person is told it.
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited() -> ApiError {
        ApiError::RateLimited {
            retry_after: 2,
            detail: String::new(),
        }
    }

    fn problem(status: u16, code: &str) -> ApiError {
        ApiError::Problem {
            status,
            code: code.into(),
            detail: String::new(),
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_rate_limited_request_of_any_kind_waits_what_the_host_asks_three_times() {
        let asked = Some(2 * SECOND);
        for resend in [Resend::Idempotent, Resend::Keyed, Resend::Once] {
            for retries in 0..MAX_RETRIES {
                assert_eq!(
                    wait(&limited(), asked, resend, retries, None),
                    Some(2 * SECOND)
                );
            }
            assert_eq!(wait(&limited(), asked, resend, MAX_RETRIES, None), None);
        }
        assert_eq!(
            wait(&limited(), None, Resend::Once, 0, None),
            Some(SECOND),
            "a 429 without Retry-After waits a second"
        );
    }

    #[test]
    fn an_unavailable_host_is_asked_again_only_for_requests_safe_to_repeat() {
        let busy = problem(503, "POLICY_BUSY");
        let asked = Some(SECOND);
        assert_eq!(
            wait(&busy, asked, Resend::Idempotent, 0, None),
            Some(SECOND)
        );
        assert_eq!(wait(&busy, asked, Resend::Keyed, 0, None), Some(SECOND));
        assert_eq!(
            wait(&busy, asked, Resend::Once, 0, None),
            None,
            "the host may have acted on it"
        );
        assert_eq!(
            wait(&busy, None, Resend::Idempotent, 0, None),
            None,
            "no Retry-After, no retry"
        );
        for other in [
            problem(409, "OPERATION_CONFLICT"),
            problem(500, "INTERNAL"),
            problem(429, "TOO_MANY_STREAMS"),
        ] {
            assert_eq!(wait(&other, asked, Resend::Idempotent, 0, None), None);
        }
        let auth = ApiError::Auth {
            code: "TOKEN_REVOKED".into(),
            detail: String::new(),
        };
        assert_eq!(wait(&auth, asked, Resend::Idempotent, 0, None), None);
    }

    #[test]
    fn a_wait_too_long_or_past_the_deadline_is_given_up_at_once() {
        let long = Some(MAX_WAIT + SECOND);
        assert_eq!(wait(&limited(), long, Resend::Idempotent, 0, None), None);
        let asked = Some(2 * SECOND);
        assert_eq!(
            wait(&limited(), asked, Resend::Idempotent, 0, Some(SECOND)),
            None
        );
        assert_eq!(
            wait(&limited(), asked, Resend::Idempotent, 0, Some(2 * SECOND)),
            Some(2 * SECOND)
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(3 * SECOND));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(5 * SECOND)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO),
            "a date already past"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn waits_are_told_in_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(2 * SECOND), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
