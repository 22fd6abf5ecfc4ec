use serde_json::json;

use super::*;

#[test]
fn keepalive_is_a_third_of_the_granted_lease_within_bounds() {
    let op = |started: &str, expires: &str| -> Operation {
        serde_json::from_value(json!({
            "operation_id": Uuid::nil(),
            "endpoint_id": Uuid::nil(),
            "pool_id": Uuid::nil(),
            "operation_type": "sync",
            "status": "in_progress",
            "details": {},
            "created_at": started,
            "started_at": started,
            "completed_at": null,
            "error_code": null,
            "error_message": null,
            "progress": { "percentage": 0, "stage": null, "current_action": null },
            "plan": null,
            "policy": null,
            "cancel_requested": false,
            "lease_expires_at": expires,
            "target_state_id": null,
            "target_generation": null,
            "result_state_id": null,
        }))
        .unwrap()
    };
    let at = "2026-11-25T12:00:00Z";
    assert_eq!(
        keepalive(&op(at, "2026-11-25T12:00:03Z")),
        Duration::from_secs(1)
    );
    assert_eq!(
        keepalive(&op(at, "2026-11-25T12:02:00Z")),
        Duration::from_secs(30),
        "at most 30 s"
    );
    assert_eq!(
        keepalive(&op(at, "2026-11-25T12:00:00.3Z")),
        Duration::from_millis(200),
        "at least 200 ms"
    );
}

#[test]
fn backoff_doubles_to_a_minute_with_bounded_jitter_and_resets() {
    let mut backoff = Backoff::default();
    let delays: Vec<Duration> = (0..9).map(|_| backoff.delay()).collect();
    for (delay, base) in delays.iter().zip([1u64, 2, 4, 8, 16, 32, 60, 60, 60]) {
        let base = Duration::from_secs(base);
        assert!(
            *delay >= base && *delay <= base.mul_f64(1.25),
            "{delay:?} vs {base:?}"
        );
    }
    backoff.reset();
    assert!(backoff.delay() <= Duration::from_millis(1250));
}
