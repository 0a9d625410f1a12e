//! Harness duration strings (`10m`, `1h 30m`, `45s`, `1d`, `500ms`).

/// Parse a Harness duration into whole seconds (rounded down; `500ms` is 0). `None` when it is
/// not a duration.
pub fn parse_secs(s: &str) -> Option<u64> {
    parse_millis(s).map(|ms| ms / 1000)
}

/// Parse a Harness duration into milliseconds.
pub fn parse_millis(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'w' => 7 * 86_400_000,
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    if !num.is_empty() {
        // A bare number is seconds.
        total = total.checked_add(num.parse::<u64>().ok()?.checked_mul(1000)?)?;
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(parse_secs("10m"), Some(600));
        assert_eq!(parse_secs("1h 30m"), Some(5400));
        assert_eq!(parse_secs("1d"), Some(86400));
        assert_eq!(parse_millis("500ms"), Some(500));
        assert_eq!(parse_secs("90"), Some(90));
        assert_eq!(parse_secs("x"), None);
        assert_eq!(parse_secs("99999999999999999999d"), None);
    }
}
