//! Timers: a module asks the node to send it `timer_fired`
//! ([`super::invocation::TimerFired`]) once after a delay, repeatedly at an
//! interval, or once when the active chain reaches a block height
//! (`timer_schedule`); it cancels one (`timer_cancel`) and lists its own
//! (`timer_list`).
//!
//! A repeating timer never overlaps itself: its next fire is scheduled an
//! interval after the module answered the previous one (or after the
//! node's fire deadline passed without an answer). A module's timers
//! belong to its connection and end with it.

use serde::{Deserialize, Serialize};

/// The shortest interval of a repeating timer, in milliseconds: a shorter
/// one would have the node do little but fire it.
pub const MIN_INTERVAL_MS: u64 = 10;

/// The longest delay or interval, in milliseconds (366 days).
pub const MAX_DELAY_MS: u64 = 366 * 24 * 3600 * 1000;

/// What a timer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// Fires once, `ms` milliseconds after it was scheduled.
    Once,
    /// Fires every `ms` milliseconds, each interval counted from the end of
    /// the previous fire.
    Repeat,
    /// Fires once, when the active chain's tip reaches `height` (at once
    /// if it already has).
    Height,
}

impl TimerKind {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimerKind::Once => "once",
            TimerKind::Repeat => "repeat",
            TimerKind::Height => "height",
        }
    }
}

/// Params of `timer_schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTimer {
    /// One-shot, repeating or at a height.
    pub kind: TimerKind,
    /// `once`: the delay, 0 to [`MAX_DELAY_MS`]; `repeat`: the interval,
    /// [`MIN_INTERVAL_MS`] to [`MAX_DELAY_MS`]; `nil` for `height`.
    #[serde(default)]
    pub ms: Option<u64>,
    /// `height`: the block height; `nil` otherwise.
    #[serde(default)]
    pub height: Option<u64>,
}

impl ScheduleTimer {
    /// A one-shot timer `ms` milliseconds from now.
    pub fn once(ms: u64) -> ScheduleTimer {
        ScheduleTimer {
            kind: TimerKind::Once,
            ms: Some(ms),
            height: None,
        }
    }

    /// A timer repeating every `ms` milliseconds.
    pub fn repeat(ms: u64) -> ScheduleTimer {
        ScheduleTimer {
            kind: TimerKind::Repeat,
            ms: Some(ms),
            height: None,
        }
    }

    /// A timer firing when the tip reaches `height`.
    pub fn at_height(height: u64) -> ScheduleTimer {
        ScheduleTimer {
            kind: TimerKind::Height,
            ms: None,
            height: Some(height),
        }
    }
}

/// Result of `timer_schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    /// The new timer's id, unique within the connection (never reused by
    /// it); `timer_fired` and `timer_cancel` name it.
    pub timer_id: u64,
    /// The module's timers now, this one included.
    pub timers: u64,
    /// The most it may have at once.
    pub max_timers: u64,
}

/// Params of `timer_cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelTimer {
    /// The timer to cancel.
    pub timer_id: u64,
}

/// Result of `timer_cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    /// True if the timer existed and is now gone; false if there was none
    /// of that id (a one-shot timer that already fired, or one never made).
    pub cancelled: bool,
}

/// One timer, in `timer_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerInfo {
    /// Its id.
    pub timer_id: u64,
    /// Its kind.
    pub kind: TimerKind,
    /// Its delay or interval (`once`, `repeat`).
    #[serde(default)]
    pub ms: Option<u64>,
    /// Its height (`height`).
    #[serde(default)]
    pub height: Option<u64>,
    /// How many times it has fired so far (a repeating timer's count).
    pub fires: u64,
}

/// Result of `timer_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimerList {
    /// The module's timers, by id.
    pub timers: Vec<TimerInfo>,
    /// The most it may have at once.
    pub max_timers: u64,
}
