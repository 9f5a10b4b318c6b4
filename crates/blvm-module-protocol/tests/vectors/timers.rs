//! The vectors of the timer methods (`docs/ipc-protocol.md` §8.8): the
//! example module `blockwatch` schedules a timer repeating every minute,
//! lists its timers, cancels it, and the node's third fire of it.

use blvm_module_protocol::methods::invocation::{TimerFired, TIMER_FIRED};
use blvm_module_protocol::methods::timers::{CancelTimer, ScheduleTimer, Scheduled, TimerInfo, TimerKind, TimerList};

use super::*;

fn every_minute() -> ScheduleTimer {
    ScheduleTimer::repeat(60_000)
}

fn scheduled() -> Scheduled {
    Scheduled {
        timer_id: 1,
        timers: 1,
        max_timers: 64,
    }
}

fn listed() -> TimerList {
    TimerList {
        timers: vec![TimerInfo {
            timer_id: 1,
            kind: TimerKind::Repeat,
            ms: Some(60_000),
            height: None,
            fires: 3,
        }],
        max_timers: 64,
    }
}

fn cancel() -> CancelTimer {
    CancelTimer { timer_id: 1 }
}

/// 2025-12-02 08:00:00 UTC.
fn fired() -> TimerFired {
    TimerFired {
        timer_id: 1,
        fired_at_ms: 1_764_662_400_000,
        fire: 3,
        height: None,
    }
}

fn response<R: Serialize>(name: &'static str, id: u64, result: &R) -> Vector {
    Vector {
        name,
        bytes: encoded(name, |out| encode::response(out, id, result)),
    }
}

/// The timer vectors, in the order the spec shows them.
pub(super) fn vectors() -> Vec<Vector> {
    vec![
        request(
            "timer_schedule_request",
            40,
            Method::TimerSchedule.name(),
            &every_minute(),
        ),
        response("timer_schedule_response", 40, &scheduled()),
        request("timer_list_request", 41, Method::TimerList.name(), &Empty {}),
        response("timer_list_response", 41, &listed()),
        request("timer_cancel_request", 42, Method::TimerCancel.name(), &cancel()),
        request("timer_fired_request", 3, TIMER_FIRED, &fired()),
    ]
}

#[test]
fn timer_request_vectors_decode_to_their_params_need_manage_timers_and_re_encode_exactly() {
    let (id, method, params) = request_vector::<ScheduleTimer>("timer_schedule_request");
    assert_eq!((id, method.as_str(), params), (40, "timer_schedule", every_minute()));
    let (id, method, _) = request_vector::<Empty>("timer_list_request");
    assert_eq!((id, method.as_str()), (41, "timer_list"));
    let (id, method, params) = request_vector::<CancelTimer>("timer_cancel_request");
    assert_eq!((id, method.as_str(), params), (42, "timer_cancel", cancel()));
    for name in ["timer_schedule", "timer_list", "timer_cancel"] {
        let method = Method::from_name(name).expect("a known method");
        assert_eq!(method.required_permission(), Some(Permission::ManageTimers), "{name}");
    }
}

#[test]
fn timer_response_vectors_decode_to_the_new_id_and_the_list_and_re_encode_exactly() {
    let (id, result) = response_vector::<Scheduled>("timer_schedule_response");
    assert_eq!((id, result), (40, scheduled()));
    let (id, result) = response_vector::<TimerList>("timer_list_response");
    assert_eq!((id, result), (41, listed()));
}

#[test]
fn timer_fired_vector_decodes_to_the_third_fire_of_timer_1_and_re_encodes_exactly() {
    let (id, method, params) = request_vector::<TimerFired>("timer_fired_request");
    assert_eq!((id, method.as_str(), params), (3, TIMER_FIRED, fired()));
}

#[test]
fn a_timer_fired_of_an_older_node_without_fire_and_height_still_decodes() {
    #[derive(Serialize)]
    struct OldTimerFired {
        timer_id: u64,
        fired_at_ms: u64,
    }
    let mut frame = Vec::new();
    let old = OldTimerFired {
        timer_id: 1,
        fired_at_ms: 5,
    };
    encode::request(&mut frame, 3, TIMER_FIRED, &old).expect("encodes");
    let Frame::Request(r) = decode_only_frame(&frame) else {
        panic!("not a request")
    };
    let fired: TimerFired = r.params().expect("decodes");
    assert_eq!((fired.fire, fired.height), (0, None));
}
