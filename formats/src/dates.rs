//! Dates as registries write them: ISO 8601 in documents, RFC 9110 in `Last-Modified`. Times are Unix seconds.

/// `2026-11-28T06:00:00.000Z`.
pub fn iso(time: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000Z")
}

/// `20261128060000`, as Maven's metadata writes `lastUpdated`.
pub fn compact(time: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// `Sat, 28 Nov 2026 06:00:00 GMT`.
pub fn http_date(time: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(time);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][((time / 86_400) % 7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][mo as usize - 1];
    format!("{weekday}, {d:02} {month} {y} {h:02}:{mi:02}:{s:02} GMT")
}

/// Unix seconds to (year, month, day, hour, minute, second), by the days-from-civil algorithm.
fn civil(time: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (time / 86_400) as i64;
    let secs = time % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso(1_795_845_600), "2026-11-28T06:00:00.000Z");
        assert_eq!(
            super::http_date(1_795_845_600),
            "Sat, 28 Nov 2026 06:00:00 GMT"
        );
        assert_eq!(super::iso(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::compact(1_795_845_600), "20261128060000");
    }
}
