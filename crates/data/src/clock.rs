//! Time without a date crate: RFC 3339 timestamps to Unix seconds and back, UTC calendar days,
//! and short durations (`30d`, `24h`). Feedback days are UTC days.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` (a space instead of `T` is accepted) or a bare
/// date `YYYY-MM-DD` (midnight UTC) into Unix seconds. `None` for anything else.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() == 10 {
        return parse_date(s).map(|d| d * 86400);
    }
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let days = parse_date(date)?;
    let sep = rest.as_bytes()[0];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return None;
    }
    let time = &rest[1..9];
    let tb = time.as_bytes();
    if tb[2] != b':' || tb[5] != b':' {
        return None;
    }
    let (hh, mm, ss) = (
        digits(&time[0..2])?,
        digits(&time[3..5])?,
        digits(&time[6..8])?,
    );
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut tail = &rest[9..];
    if let Some(frac) = tail.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        tail = &frac[n..];
    }
    let offset = match tail {
        "Z" | "z" => 0,
        _ if tail.len() == 6 && (tail.starts_with('+') || tail.starts_with('-')) => {
            if tail.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (digits(&tail[1..3])?, digits(&tail[4..6])?);
            let o = oh * 3600 + om * 60;
            if tail.starts_with('-') {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    Some(days * 86400 + hh * 3600 + mm * 60 + ss.min(59) - offset)
}

fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(&s[0..4])?;
    let m = digits(&s[5..7])? as u32;
    let d = digits(&s[8..10])? as u32;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The UTC day number of a Unix time.
pub fn day_of(secs: i64) -> i64 {
    secs.div_euclid(86400)
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time.
pub fn format_rfc3339(secs: i64) -> String {
    let day = day_of(secs);
    let s = secs.rem_euclid(86400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        day_string(day),
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The current Unix time, in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Parses `30d`, `24h`, `90m`, `45s` or `2w` into seconds. `None` for anything else (zero too).
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        'w' => 7 * 86400,
        _ => return None,
    };
    (n > 0).then(|| n.checked_mul(mult)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        let t = parse_rfc3339("2026-10-01T08:10:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-10-01T08:10:00Z");
        assert_eq!(parse_rfc3339("2026-10-01T10:10:00+02:00"), Some(t));
        assert_eq!(parse_rfc3339("2026-10-01T08:10:00.123Z"), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01"), Some(0));
        assert_eq!(day_string(day_of(t)), "2026-10-01");
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "yesterday",
            "2026-10-01T08:10:00",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        for d in [-800_000, -1, 0, 1, 20_000, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(parse_duration("30d"), Some(30 * 86400));
        assert_eq!(parse_duration("24h"), Some(86400));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("3x"), None);
    }
}
