//! Kubernetes resource quantities (`400m`, `1`, `0.5`, `500Mi`, `1G`), to sum step resources.

/// Parse a quantity into thousandths of its unit (millicores for CPU, millibytes for memory).
pub fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let mult: i128 = match suffix {
        "" => 1000,
        "m" => 1,
        "k" => 1_000_000,
        "M" => 1_000_000_000,
        "G" => 1_000_000_000_000,
        "T" => 1_000_000_000_000_000,
        "Ki" => 1024 * 1000,
        "Mi" => 1024 * 1024 * 1000,
        "Gi" => 1024 * 1024 * 1024 * 1000,
        "Ti" => 1024_i128.pow(4) * 1000,
        _ => return None,
    };
    if num.is_empty() || num.starts_with('-') {
        return None;
    }
    let num = num.trim_start_matches('+');
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    if int.len() > 20 || frac.len() > 9 {
        return None;
    }
    let i: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: i128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let scale = 10_i128.pow(frac.len() as u32);
    i.checked_mul(mult)?.checked_add(f.checked_mul(mult)? / scale)
}

/// Format CPU millicores: `1` for 1000, `500m` for 500.
pub fn format_cpu(milli: i128) -> String {
    if milli % 1000 == 0 {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// Format memory (given in millibytes) with the largest binary suffix that divides it.
pub fn format_memory(milli: i128) -> String {
    let bytes = milli / 1000;
    for (suffix, unit) in [("Gi", 1024_i128.pow(3)), ("Mi", 1024 * 1024), ("Ki", 1024)] {
        if bytes != 0 && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn quantities() {
        assert_eq!(parse("400m"), Some(400));
        assert_eq!(parse("1"), Some(1000));
        assert_eq!(parse("0.5"), Some(500));
        assert_eq!(format_cpu(parse("400m").unwrap() + parse("100m").unwrap()), "500m");
        assert_eq!(format_cpu(1000), "1");
        assert_eq!(
            format_memory(parse("500Mi").unwrap() + parse("100Mi").unwrap()),
            "600Mi"
        );
        assert_eq!(format_memory(parse("1Gi").unwrap()), "1Gi");
        assert_eq!(parse("1x"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("99999999999999999999999999999Gi"), None);
    }
}
