//! Resource quantities (`100m`, `500Mi`, `1.5`, `2G`) and a pod's effective requests, as the
//! scheduler and the kubelet use them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parse a quantity into milli-units (`cpu: 100m` → 100, `memory: 1Ki` → 1_024_000).
/// `None` when the text is not a Kubernetes quantity.
pub fn parse_milli(q: &str) -> Option<i128> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // Decimal exponent form: 1e3, 1E-2.
    let (num, suffix) = if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        if exp.parse::<i32>().is_ok() {
            (num, format!("e{exp}"))
        } else {
            (num, suffix.to_string())
        }
    } else {
        (num, suffix.to_string())
    };
    let negative = num.starts_with('-');
    let num = num.trim_start_matches(['+', '-']);
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    // value = digits / 10^frac_len, in milli → scale by 1000 then multiplier.
    let digits: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let frac_len = frac_part.len() as u32;
    let (mul_num, mul_den): (i128, i128) = match suffix.as_str() {
        "" => (1000, 1),
        "m" => (1, 1),
        "u" => (1, 1000),
        "n" => (1, 1_000_000),
        "k" => (1000 * 1000, 1),
        "M" => (1000 * 1_000_000, 1),
        "G" => (1000 * 1_000_000_000, 1),
        "T" => (1000 * 1_000_000_000_000, 1),
        "P" => (1000 * 1_000_000_000_000_000, 1),
        "E" => (1000 * 1_000_000_000_000_000_000, 1),
        "Ki" => (1000 << 10, 1),
        "Mi" => (1000 << 20, 1),
        "Gi" => (1000 << 30, 1),
        "Ti" => (1000 << 40, 1),
        "Pi" => (1000 << 50, 1),
        "Ei" => (1000 << 60, 1),
        s if s.starts_with('e') => {
            let exp: i32 = s[1..].parse().ok()?;
            if exp >= 0 {
                (1000 * 10i128.checked_pow(exp as u32)?, 1)
            } else {
                (1000, 10i128.checked_pow((-exp) as u32)?)
            }
        }
        _ => return None,
    };
    let den = 10i128.checked_pow(frac_len)?.checked_mul(mul_den)?;
    let num = digits.checked_mul(mul_num)?;
    // Round up like Kubernetes' ScaledValue/MilliValue.
    let v = (num + den - 1) / den;
    Some(if negative { -v } else { v })
}

/// Milli-units of a quantity, 0 when unparsable.
pub fn milli(q: &Quantity) -> i128 {
    parse_milli(&q.0).unwrap_or(0)
}

/// Whole units of a quantity, rounded up (bytes for memory).
pub fn units(q: &Quantity) -> i128 {
    let m = milli(q);
    (m + 999).div_euclid(1000)
}

fn container_requests(c: &Container) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    if let Some(res) = &c.resources {
        // Requests default to limits when only limits are given.
        if let Some(limits) = &res.limits {
            for (k, v) in limits {
                out.insert(k.clone(), milli(v));
            }
        }
        if let Some(req) = &res.requests {
            for (k, v) in req {
                out.insert(k.clone(), milli(v));
            }
        }
    }
    out
}

/// The pod's effective requests in milli-units: max(sum of containers, each init container),
/// plus overhead; as the scheduler's NodeResourcesFit computes them.
pub fn pod_requests(pod: &Pod) -> BTreeMap<String, i128> {
    let mut total: BTreeMap<String, i128> = BTreeMap::new();
    let Some(spec) = &pod.spec else {
        return total;
    };
    for c in &spec.containers {
        for (k, v) in container_requests(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, v) in container_requests(c) {
            let e = total.entry(k).or_default();
            if v > *e {
                *e = v;
            }
        }
    }
    for (k, v) in spec.overhead.iter().flatten() {
        *total.entry(k.clone()).or_default() += milli(v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::parse_milli;

    #[test]
    fn quantities() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("500Mi"), Some(500 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1G"), Some(1_000_000_000_000));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("0.5Gi"), Some(512 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("abc"), None);
        assert_eq!(parse_milli("10x"), None);
    }
}
