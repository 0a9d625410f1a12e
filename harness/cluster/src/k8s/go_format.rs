//! Go's own formatting as Kubernetes' messages use it: `%q` of a string ([`go_quote`]) and
//! `time.Duration.String()` ([`go_duration`]).

use std::time::Duration;

/// Go's `%q` of a string: double-quoted, with Go's escapes for `"`, `\\` and control characters;
/// printable non-ASCII is kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `time.Duration.String()` for a non-negative duration: `0s`, `12ns`, `1.5µs`,
/// `437.806182ms`, `1.5s`, `2m3.000001s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 6));
    }
    // Seconds with up to 9 fractional digits, then minutes and hours.
    let secs_frac = frac(ns % 60_000_000_000, 9);
    let total_secs = ns / 1_000_000_000;
    let mins = total_secs / 60;
    let hours = mins / 60;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if mins > 0 {
        out.push_str(&format!("{}m", mins % 60));
    }
    out.push_str(&secs_frac);
    out.push('s');
    out
}

/// `v / 10^prec` with the fraction's trailing zeros (and a bare dot) dropped, as Go's `fmtFrac`.
fn frac(v: u128, prec: u32) -> String {
    let p = 10u128.pow(prec);
    let int = v / p;
    let f = v % p;
    if f == 0 {
        return int.to_string();
    }
    let digits = format!("{f:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_500, "1.5µs"),
            (437_806_182, "437.806182ms"),
            (1_000_000, "1ms"),
            (1_500_000_000, "1.5s"),
            (1_000_000_000, "1s"),
            (123_000_001_000, "2m3.000001s"),
            (3_600_000_000_000, "1h0m0s"),
            (60_000_000_000, "1m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (100_000_000_000_000, "27h46m40s"),
        ];
        for (ns, want) in cases {
            assert_eq!(go_duration(Duration::from_nanos(*ns)), *want, "{ns}ns");
        }
    }

    #[test]
    fn quotes() {
        assert_eq!(go_quote("harness/ci-addon:1.16.8"), "\"harness/ci-addon:1.16.8\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
