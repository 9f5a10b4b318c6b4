use std::time::Duration;

use blvm_module_protocol::methods::timers::{ScheduleTimer, TimerKind, MAX_DELAY_MS, MIN_INTERVAL_MS};
use blvm_module_protocol::ErrorCode;

use super::{check, TimerLimits, DEFAULT_FIRE_TIMEOUT, DEFAULT_MAX_TIMERS};

#[test]
fn a_schedule_names_exactly_what_its_kind_needs_within_range() {
    assert_eq!(check(&ScheduleTimer::once(0)).ok(), Some(Some(Duration::ZERO)));
    assert_eq!(
        check(&ScheduleTimer::repeat(MIN_INTERVAL_MS)).ok(),
        Some(Some(Duration::from_millis(MIN_INTERVAL_MS)))
    );
    assert_eq!(check(&ScheduleTimer::at_height(0)).ok(), Some(None));
    for (bad, needle) in [
        (ScheduleTimer::repeat(MIN_INTERVAL_MS - 1), "interval is 10 to"),
        (ScheduleTimer::once(MAX_DELAY_MS + 1), "delay is 0 to"),
        (
            ScheduleTimer {
                kind: TimerKind::Height,
                ms: Some(5),
                height: Some(1),
            },
            "takes `height` and no `ms`",
        ),
        (
            ScheduleTimer {
                kind: TimerKind::Once,
                ms: None,
                height: None,
            },
            "`once` timer takes `ms`",
        ),
        (
            ScheduleTimer {
                kind: TimerKind::Repeat,
                ms: Some(100),
                height: Some(3),
            },
            "`repeat` timer takes `ms` and no `height`",
        ),
    ] {
        let e = check(&bad).expect_err(needle);
        assert_eq!(e.code, ErrorCode::InvalidParams);
        assert!(e.message.contains(needle), "{}", e.message);
    }
}

#[test]
fn per_module_limits_replace_the_defaults() {
    let mut limits = TimerLimits::default();
    assert_eq!(
        (limits.max_timers_of("a"), limits.fire_timeout_of("a")),
        (DEFAULT_MAX_TIMERS, DEFAULT_FIRE_TIMEOUT)
    );
    limits.max_timers_per_module.insert("a".into(), 2);
    limits
        .fire_timeout_per_module
        .insert("a".into(), Duration::from_millis(50));
    assert_eq!(
        (limits.max_timers_of("a"), limits.fire_timeout_of("a")),
        (2, Duration::from_millis(50))
    );
    assert_eq!(limits.max_timers_of("b"), DEFAULT_MAX_TIMERS);
}
