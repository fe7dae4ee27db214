//! Where Last-Modified and event times come from: the wall clock, or tokio's clock for simulations
//! (which follows paused time, so a replayed run stamps the same times).

use std::fmt;
use std::time::SystemTime;

pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// `origin` plus the time tokio's clock advanced since this clock was made: under
/// `tokio::time::pause()` it moves only when the runtime's time does.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be called inside the runtime whose clock it follows.
    pub fn starting_at(origin: SystemTime) -> TokioClock {
        TokioClock {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.origin + self.start.elapsed()
    }
}
