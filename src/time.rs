//! Wall-clock time as LiveKit's messages carry it, and durations as its configs write them.
//! A leaf: anything may use it, it uses nothing of the crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (EgressInfo's times); 0 if the clock is before 1970.
pub fn unix_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Milliseconds since the Unix epoch (signal pings, participant join times).
pub(crate) fn unix_ms() -> i64 {
    unix_ns() / 1_000_000
}

/// Microseconds since the Unix epoch.
pub(crate) fn unix_us() -> i64 {
    unix_ns() / 1_000
}

/// Go-style durations as LiveKit writes them ("90s", "1h30m"), or plain seconds.
pub(crate) fn deserialize_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Seconds(s)) if s >= 0.0 && s.is_finite() => Ok(Some(Duration::from_secs_f64(s))),
        Some(Raw::Seconds(s)) => Err(serde::de::Error::custom(format!("{s} is not a duration"))),
        Some(Raw::Text(t)) if t.trim().is_empty() || t.trim() == "0" => Ok(None),
        Some(Raw::Text(t)) => humantime::parse_duration(t.trim())
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{t:?} is not a duration like \"90s\" or \"1h30m\": {e}"))),
    }
}

/// Delays between retries: `first`, then doubling up to `max` (backon's exponential
/// backoff, without jitter: a retry here waits on one peer, not on a crowd).
pub(crate) struct Backoff {
    delays: backon::ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        use backon::BackoffBuilder;
        let delays =
            backon::ExponentialBuilder::new().with_min_delay(first).with_max_delay(max).without_max_times().build();
        Self { delays, max }
    }

    /// How long to wait before the next try.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000, 1000]);
    }
}
