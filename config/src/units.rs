//! Human units in the configuration: sizes ("64MiB", "1GB", "512") and durations ("30s", "15m", "24h", "7d").
//!
//! Both deserialize from a TOML string (or a bare integer: bytes, seconds), so a typo such as `"64MB "` or `"3 weeks"`
//! is reported with the line of the value instead of surfacing later as a wrong limit.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, de};

/// A size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    pub const fn gib(n: u64) -> Self {
        Self(n * 1024 * 1024 * 1024)
    }
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (number, unit) = split_number(s)?;
        let scale: u64 = match unit {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` in `{s}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
                ));
            }
        };
        number
            .checked_mul(scale)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, scale) in UNITS {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{name}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A duration with a unit: s, m, h or d.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn secs(n: u64) -> Self {
        Self(StdDuration::from_secs(n))
    }
    pub fn get(self) -> StdDuration {
        self.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (number, unit) = split_number(s)?;
        let scale = match unit {
            "ms" => return Ok(Duration(StdDuration::from_millis(number))),
            "s" | "" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{s}`: use ms, s, m, h or d"
                ));
            }
        };
        number
            .checked_mul(scale)
            .map(|n| Duration(StdDuration::from_secs(n)))
            .ok_or_else(|| format!("duration `{s}` is too large"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

fn split_number(s: &str) -> Result<(u64, &str), String> {
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(format!("`{s}` does not start with a number"));
    }
    let number = s[..digits]
        .parse()
        .map_err(|_| format!("`{s}` is too large"))?;
    Ok((number, &s[digits..]))
}

/// Deserializes any `FromStr<Err = String>` type from a string or a bare integer.
fn from_str_or_int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Str(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Int(n) => n.to_string(),
        Raw::Str(s) => s,
    };
    text.parse().map_err(de::Error::custom)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_or_int(d)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_str_or_int(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("512", 512),
            ("64MiB", 64 << 20),
            ("1GB", 1_000_000_000),
            ("2KiB", 2048),
            ("7B", 7),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "12 MiB",
            "3XB",
            "99999999999999999999",
            "20000000TiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("30s", 30),
            ("15m", 900),
            ("24h", 86_400),
            ("7d", 604_800),
            ("5", 5),
        ] {
            assert_eq!(text.parse::<Duration>(), Ok(Duration::secs(secs)), "{text}");
        }
        assert_eq!(
            "250ms".parse::<Duration>(),
            Ok(Duration(StdDuration::from_millis(250)))
        );
        for bad in ["", "d", "3w", "1.5h"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }
}
