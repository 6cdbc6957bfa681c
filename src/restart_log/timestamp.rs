//! Timestamps of restart logs, in milliseconds since the Unix epoch: RFC 3339 (nodekeeper's,
//! any offset) and jmanager's Python `str(datetime)` in UTC. The common shapes are parsed here,
//! fast (the date and hour of the previous row are cached); anything else goes through chrono,
//! so the result is always chrono's.

/// Milliseconds since the epoch of any timestamp a restart log holds: RFC 3339, or jmanager's
/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC).
pub fn parse_timestamp(text: &[u8]) -> Option<i64> {
    let mut cache = HourCache::default();
    parse_rfc3339(text, &mut cache).or_else(|| parse_python_timestamp(text, &mut cache))
}

/// The last `YYYY-MM-DDTHH` seen and its time: consecutive rows of a log mostly share it, and
/// then only minutes, seconds and the fraction are left to parse.
#[derive(Clone, Copy, Debug, Default)]
pub struct HourCache {
    prefix: [u8; 13],
    hour_ms: i64,
    valid: bool,
}

/// An RFC 3339 timestamp as chrono's `parse_from_rfc3339` reads it, in milliseconds (truncated).
#[inline]
pub fn parse_rfc3339(text: &[u8], cache: &mut HourCache) -> Option<i64> {
    if let Some(parsed) = fast_timestamp(text, true, cache) {
        return Some(parsed);
    }
    let text = std::str::from_utf8(text).ok()?;
    let date = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(date.timestamp_millis())
}

/// jmanager's Python `str(datetime)` in UTC; RFC 3339 is accepted too.
pub fn parse_python_timestamp(text: &[u8], cache: &mut HourCache) -> Option<i64> {
    if let Some(parsed) = fast_timestamp(text, false, cache) {
        return Some(parsed);
    }
    let text = std::str::from_utf8(text).ok()?;
    if let Ok(date) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(date.timestamp_millis());
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(naive.and_utc().timestamp_millis())
}

/// Two ASCII digits, or `None`.
#[inline]
fn two_digits(high: u8, low: u8) -> Option<u32> {
    let (high, low) = (high.wrapping_sub(b'0'), low.wrapping_sub(b'0'));
    (high <= 9 && low <= 9).then(|| u32::from(high) * 10 + u32::from(low))
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}]` then `Z` or `±HH:MM` (`with_offset`), or `YYYY-MM-DD
/// HH:MM:SS[.f{1,9}]` with no offset (UTC). Leap seconds and other shapes: `None`.
#[inline]
pub fn fast_timestamp(text: &[u8], with_offset: bool, cache: &mut HourCache) -> Option<i64> {
    if text.len() < 19 {
        return None;
    }
    let separator = if with_offset { b'T' } else { b' ' };
    let hour_ms = if cache.valid && text[..13] == cache.prefix {
        cache.hour_ms
    } else {
        if text[4] != b'-' || text[7] != b'-' || text[10] != separator {
            return None;
        }
        let year = two_digits(text[0], text[1])? * 100 + two_digits(text[2], text[3])?;
        let month = two_digits(text[5], text[6])?;
        let day = two_digits(text[8], text[9])?;
        let hour = two_digits(text[11], text[12])?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) || hour > 23 {
            return None;
        }
        let days = days_from_civil(i64::from(year), month, day);
        let hour_ms = (days * 24 + i64::from(hour)) * 3_600_000;
        cache.prefix.copy_from_slice(&text[..13]);
        cache.hour_ms = hour_ms;
        cache.valid = true;
        hour_ms
    };
    if text[13] != b':' || text[16] != b':' {
        return None;
    }
    let minute = two_digits(text[14], text[15])?;
    let second = two_digits(text[17], text[18])?;
    if minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0u32;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n_digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if n_digits == 0 || n_digits > 9 {
            return None;
        }
        for index in 0..3 {
            let digit = fraction.get(index).filter(|_| index < n_digits);
            millis = millis * 10 + digit.map_or(0, |d| u32::from(d - b'0'));
        }
        rest = &fraction[n_digits..];
    }
    let offset_secs: i64 = match (with_offset, rest) {
        (false, []) | (true, b"Z") => 0,
        (true, [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]) => {
            let (hours, minutes) = (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    Some(
        hour_ms + i64::from(minute) * 60_000 + i64::from(second) * 1000 + i64::from(millis)
            - offset_secs * 1000,
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
