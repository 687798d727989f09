//! The time window a batch may send in (`--between 20:00-07:00`), in a
//! time zone (Europe/Paris by default): the getting-started page's advice to
//! run large volumes at night. Outside it, the batch pauses until it opens.

use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A daily window, `start` to `end` (across midnight when `end < start`).
#[derive(Debug, Clone)]
pub struct Window {
    start: Time,
    end: Time,
    tz: TimeZone,
    tz_name: String,
    /// Added to the system clock (an injected clock, for tests).
    offset: jiff::SignedDuration,
}

/// Until when the batch waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Until {
    /// How long from now.
    pub after: Duration,
    /// When, for a person (`20:00 Europe/Paris`).
    pub label: String,
}

impl Window {
    /// Reads `HH:MM-HH:MM` in the time zone named `tz` (IANA, such as
    /// `Europe/Paris`).
    pub fn parse(text: &str, tz: &str) -> Result<Self, String> {
        let bad = || format!("--between {text:?} is not HH:MM-HH:MM, such as 20:00-07:00");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| Time::strptime("%H:%M", t.trim()).map_err(|_| bad());
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(format!(
                "--between {text:?} is empty: its start and end are the same time"
            ));
        }
        let zone = TimeZone::get(tz)
            .map_err(|e| format!("the time zone {tz:?} is unknown ({e}): give an IANA name such as Europe/Paris"))?;
        Ok(Self {
            start,
            end,
            tz: zone,
            tz_name: tz.to_owned(),
            offset: jiff::SignedDuration::ZERO,
        })
    }

    /// Takes the clock to read `now` at this instant (it then advances with
    /// the system's): for tests.
    pub fn starting_at(mut self, now: Timestamp) -> Self {
        self.offset = now.duration_since(Timestamp::now());
        self
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// The window and the time it is now in its zone, for a person.
    pub fn describe(&self) -> String {
        format!(
            "sending only between {} and {} ({}); it is {} there now",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M"),
            self.tz_name,
            self.now().to_zoned(self.tz.clone()).strftime("%H:%M:%S")
        )
    }

    /// `None` inside the window; outside, how long until it opens.
    pub fn wait(&self) -> Option<Until> {
        self.wait_at(self.now())
    }

    fn wait_at(&self, now: Timestamp) -> Option<Until> {
        let local = now.to_zoned(self.tz.clone());
        let t = local.time();
        let inside = if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        };
        if inside {
            return None;
        }
        let today = local.date().to_datetime(self.start).to_zoned(self.tz.clone()).ok()?;
        let opens = if today.timestamp() > now {
            today
        } else {
            today.checked_add(1.day()).ok()?
        };
        let after = Duration::try_from(opens.timestamp().duration_since(now)).unwrap_or_default();
        Some(Until {
            after,
            label: format!("{} {}", opens.strftime("%H:%M"), self.tz_name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_night_window_is_open_across_midnight_and_says_when_it_opens() {
        let w = Window::parse("20:00-07:00", "Europe/Paris").unwrap();
        // 22:30 and 03:00 in Paris (winter: UTC+1) are inside.
        assert_eq!(w.wait_at(at("2026-11-30T21:30:00Z")), None);
        assert_eq!(w.wait_at(at("2026-12-01T02:00:00Z")), None);
        // 12:00 in Paris: eight hours to wait.
        let until = w.wait_at(at("2026-11-30T11:00:00Z")).unwrap();
        assert_eq!(until.after, Duration::from_secs(8 * 3600));
        assert_eq!(until.label, "20:00 Europe/Paris");
        // 07:00 exactly is outside: thirteen hours.
        let until = w.wait_at(at("2026-11-30T06:00:00Z")).unwrap();
        assert_eq!(until.after, Duration::from_secs(13 * 3600));
    }

    #[test]
    fn a_day_window_and_bad_input() {
        let w = Window::parse("09:00-17:00", "Europe/Paris").unwrap();
        assert_eq!(w.wait_at(at("2026-07-01T10:00:00Z")), None);
        // 18:00 in Paris (summer: UTC+2): open again tomorrow at 09:00.
        let until = w.wait_at(at("2026-07-01T16:00:00Z")).unwrap();
        assert_eq!(until.after, Duration::from_secs(15 * 3600));
        assert!(
            Window::parse("20h-7h", "Europe/Paris")
                .unwrap_err()
                .contains("HH:MM-HH:MM")
        );
        assert!(
            Window::parse("20:00-20:00", "Europe/Paris")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            Window::parse("20:00-07:00", "Mars/Olympus")
                .unwrap_err()
                .contains("unknown")
        );
    }
}
