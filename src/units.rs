//! Durations and byte sizes as people write them in a config file.
//!
//! Durations are one whole number and one unit, with nothing in between:
//! `"250ms"`, `"30s"`, `"2m"`, `"1h"`. There are no decimals (`"1.5s"` is
//! written `"1500ms"`), no signs, no spaces and no compound forms
//! (`"1m30s"` is written `"90s"`): one spelling per value keeps the parser
//! small and a typo from meaning something unexpected. A bare number
//! (`"30"`) is refused because its unit would be a guess.
//!
//! Sizes are either a TOML integer of bytes (`65536`) or a string of one
//! whole number and a binary unit: `"512B"`, `"64KiB"`, `"4MiB"`, `"1GiB"`.
//! Decimal units (`"64KB"`) are refused rather than guessed at, since `KB`
//! means 1000 to some readers and 1024 to others.

use std::time::Duration;

const DURATION_UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

const SIZE_UNITS: [(&str, u64); 4] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

/// Parses a duration such as `"30s"`; `None` when the text is not one whole
/// number followed by `ms`, `s`, `m` or `h`, or does not fit.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let millis = parse_scaled(text, &DURATION_UNITS)?;
    Some(Duration::from_millis(millis))
}

/// Parses a size string such as `"64KiB"`; `None` when the text is not one
/// whole number followed by `B`, `KiB`, `MiB` or `GiB`, or does not fit.
pub fn parse_size(text: &str) -> Option<usize> {
    usize::try_from(parse_scaled(text, &SIZE_UNITS)?).ok()
}

/// Writes a duration in the largest unit that divides it exactly, in the
/// form [`parse_duration`] reads back. A duration finer than a millisecond
/// (only possible for a config built in code) is written in Rust's debug
/// form, which makes the difference visible instead of rounding it away.
pub fn format_duration(duration: Duration) -> String {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{duration:?}");
    }
    let millis = duration.as_millis();
    format_scaled(millis, &DURATION_UNITS)
}

/// Writes a byte count in the largest binary unit that divides it exactly,
/// in the form [`parse_size`] reads back.
pub fn format_size(bytes: usize) -> String {
    format_scaled(bytes as u128, &SIZE_UNITS)
}

fn parse_scaled(text: &str, units: &[(&str, u64)]) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let scale = units.iter().find(|(name, _)| *name == unit)?.1;
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

fn format_scaled(value: u128, units: &[(&str, u64)]) -> String {
    let (name, scale) = units
        .iter()
        .find(|(_, scale)| value != 0 && value.is_multiple_of(u128::from(*scale)))
        .unwrap_or(&units[units.len() - 1]);
    format!("{}{name}", value / u128::from(*scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn durations_that_are_refused() {
        for text in [
            "",
            "30",
            "s",
            "-1s",
            "+1s",
            "1.5s",
            " 30s",
            "30s ",
            "30 s",
            "30S",
            "1m30s",
            "30sec",
            "30d",
            "ms",
            "18446744073709551616ms",
            "18446744073709551615h",
        ] {
            assert_eq!(parse_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("4MiB"), Some(4_194_304));
        assert_eq!(parse_size("1GiB"), Some(1_073_741_824));
    }

    #[test]
    fn sizes_that_are_refused() {
        for text in [
            "", "64", "64KB", "64kib", "64 KiB", "1.5MiB", "-1B", "KiB", "64Ki",
        ] {
            assert_eq!(parse_size(text), None, "{text:?}");
        }
    }

    #[test]
    fn formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
        assert_eq!(format_duration(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format_size(65_536), "64KiB");
        assert_eq!(format_size(4 * 1024 * 1024), "4MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
    }

    #[test]
    fn formatting_reads_back() {
        for millis in [1, 999, 1000, 59_999, 60_000, 3_600_000, 7_200_500] {
            let duration = Duration::from_millis(millis);
            assert_eq!(parse_duration(&format_duration(duration)), Some(duration));
        }
        for bytes in [1, 1023, 1024, 1536, 1 << 20, 3 << 30] {
            assert_eq!(parse_size(&format_size(bytes)), Some(bytes));
        }
    }
}
