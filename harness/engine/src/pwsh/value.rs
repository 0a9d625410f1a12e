//! PowerShell values: their text, truth and number forms, the members and methods of strings and
//! arrays, and the operators (`+`, `..`, `-eq`, `-like`, `-match`, ...).

use super::error::Stop;

/// A PowerShell value.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// `$null`.
    Null,
    /// `$true` / `$false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Val>),
}

impl Val {
    pub(super) fn text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Val::Num(n) => fmt_num(*n),
            Val::Str(s) => s.clone(),
            Val::Arr(a) => a.iter().map(Val::text).collect::<Vec<_>>().join(" "),
        }
    }
    pub(super) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Arr(a) => !a.is_empty(),
        }
    }
    pub(super) fn num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::Str(s) => s.trim().parse().ok(),
            Val::Null => Some(0.0),
            Val::Arr(_) => None,
        }
    }
    pub(super) fn items(self) -> Vec<Val> {
        match self {
            Val::Arr(a) => a,
            Val::Null => Vec::new(),
            v => vec![v],
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// The members and methods of strings and arrays that step scripts use.
pub(super) fn member(v: &Val, name: &str, call: bool, args: &[Val]) -> Result<Val, Stop> {
    let arg = |i: usize| args.get(i).map(Val::text).unwrap_or_default();
    let text = v.text();
    Ok(match (name.to_ascii_lowercase().as_str(), call) {
        ("length", false) => match v {
            Val::Arr(a) => Val::Num(a.len() as f64),
            Val::Null => Val::Num(0.0),
            _ => Val::Num(text.chars().count() as f64),
        },
        ("count", false) => Val::Num(v.clone().items().len() as f64),
        ("toupper", true) => Val::Str(text.to_uppercase()),
        ("tolower", true) => Val::Str(text.to_lowercase()),
        ("trim", true) if args.is_empty() => Val::Str(text.trim().to_string()),
        ("trimstart", true) if args.is_empty() => Val::Str(text.trim_start().to_string()),
        ("trimend", true) if args.is_empty() => Val::Str(text.trim_end().to_string()),
        ("split", true) => {
            let sep = arg(0);
            let parts: Vec<Val> = if sep.is_empty() {
                text.split_whitespace().map(|p| Val::Str(p.into())).collect()
            } else {
                text.split(|c| sep.contains(c)).map(|p| Val::Str(p.into())).collect()
            };
            Val::Arr(parts)
        }
        ("replace", true) => Val::Str(text.replace(&arg(0), &arg(1))),
        ("contains", true) => Val::Bool(text.contains(&arg(0))),
        ("startswith", true) => Val::Bool(text.starts_with(&arg(0))),
        ("endswith", true) => Val::Bool(text.ends_with(&arg(0))),
        ("indexof", true) => Val::Num(
            text.find(&arg(0))
                .map(|i| text[..i].chars().count() as f64)
                .unwrap_or(-1.0),
        ),
        ("substring", true) => {
            let chars: Vec<char> = text.chars().collect();
            let start = (args.first().and_then(Val::num).unwrap_or(0.0) as usize).min(chars.len());
            let len = args
                .get(1)
                .and_then(Val::num)
                .map(|n| n as usize)
                .unwrap_or(chars.len() - start)
                .min(chars.len() - start);
            Val::Str(chars[start..start + len].iter().collect())
        }
        ("tostring", true) => Val::Str(text),
        _ => {
            return Err(Stop::Error(format!(
                "sgsim's pwsh stand-in does not support the member `{name}`"
            )));
        }
    })
}

fn like(pattern: &str, text: &str) -> bool {
    fn m(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| m(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && m(rest, &t[1..]),
            Some((c, rest)) => t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && m(rest, &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    m(&p, &t)
}

pub(super) fn binary(op: &str, a: Val, b: Val) -> Result<Val, Stop> {
    let cmp = |a: &Val, b: &Val| -> std::cmp::Ordering {
        match (a, b) {
            (Val::Num(x), _) => x
                .partial_cmp(&b.num().unwrap_or(f64::NAN))
                .unwrap_or(std::cmp::Ordering::Less),
            _ => a.text().to_ascii_lowercase().cmp(&b.text().to_ascii_lowercase()),
        }
    };
    use std::cmp::Ordering::*;
    Ok(match op {
        "+" => match (&a, &b) {
            (Val::Num(x), _) => Val::Num(
                x + b.num().ok_or_else(|| {
                    Stop::Error(format!(
                        "Cannot convert value \"{}\" to type \"System.Int32\".",
                        b.text()
                    ))
                })?,
            ),
            (Val::Arr(x), _) => Val::Arr(x.iter().cloned().chain(b.items()).collect()),
            _ => Val::Str(a.text() + &b.text()),
        },
        "-" => Val::Num(a.num().unwrap_or(0.0) - b.num().unwrap_or(0.0)),
        "*" => Val::Num(a.num().unwrap_or(0.0) * b.num().unwrap_or(0.0)),
        "/" => Val::Num(a.num().unwrap_or(0.0) / b.num().unwrap_or(1.0)),
        ".." => {
            let (x, y) = (a.num().unwrap_or(0.0) as i64, b.num().unwrap_or(0.0) as i64);
            let r: Vec<Val> = if x <= y {
                (x..=y).map(|i| Val::Num(i as f64)).collect()
            } else {
                (y..=x).rev().map(|i| Val::Num(i as f64)).collect()
            };
            Val::Arr(r)
        }
        "-eq" => Val::Bool(cmp(&a, &b) == Equal),
        "-ne" => Val::Bool(cmp(&a, &b) != Equal),
        "-gt" => Val::Bool(cmp(&a, &b) == Greater),
        "-ge" => Val::Bool(cmp(&a, &b) != Less),
        "-lt" => Val::Bool(cmp(&a, &b) == Less),
        "-le" => Val::Bool(cmp(&a, &b) != Greater),
        "-like" => Val::Bool(like(&b.text(), &a.text())),
        "-notlike" => Val::Bool(!like(&b.text(), &a.text())),
        "-match" | "-notmatch" => {
            // Substring match (sgsim has no regex engine here); anchors are honoured.
            let (p, t) = (b.text().to_ascii_lowercase(), a.text().to_ascii_lowercase());
            let hit = match (p.strip_prefix('^'), p.strip_suffix('$')) {
                (Some(x), _) if x.ends_with('$') => t == x[..x.len() - 1],
                (Some(x), _) => t.starts_with(x),
                (None, Some(x)) => t.ends_with(x),
                (None, None) => t.contains(&p),
            };
            Val::Bool(hit == (op == "-match"))
        }
        "-contains" => Val::Bool(a.items().iter().any(|x| cmp(x, &b) == Equal)),
        "-notcontains" => Val::Bool(!a.items().iter().any(|x| cmp(x, &b) == Equal)),
        "-and" => Val::Bool(a.truthy() && b.truthy()),
        "-or" => Val::Bool(a.truthy() || b.truthy()),
        o => {
            return Err(Stop::Error(format!(
                "sgsim's pwsh stand-in does not support the operator `{o}`"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::pwsh::run_test_script as run;

    #[test]
    fn members_indexes_and_out_null() {
        let s = "$v = '1.24.3'\n$parts = $v.Split('.')\n\"major $($parts[0]) of $($parts.Count), last $($parts[-1])\"\n                 $name = ' Web-App '\n$name.Trim().ToLower()\n$name.Length\nif ($v.StartsWith('1.')) { 'v1' }\n                 $v.Replace('.', '-').Substring(0, 4)\nNew-Item -ItemType Directory -Path /tmp -Force | Out-Null\n'x' | Out-Null\n                 Write-Host $name.ToUpper()";
        let (c, o, e) = run(s);
        assert_eq!(
            (c, o.as_str(), e.as_str()),
            (0, "major 1 of 3, last 3\nweb-app\n9\nv1\n1-24\n WEB-APP \n", "")
        );
        let (c, _, e) = run("$ErrorActionPreference = 'Stop'\n$x = 'a'\n$x.Frobnicate()");
        assert_eq!(c, 1);
        assert!(e.contains("does not support the member `Frobnicate`"), "{e}");
        let (c, _, e) = run("Get-ChildItem | Sort-Object");
        assert_eq!(c, 1);
        assert!(e.contains("other than `| Out-Null`"), "{e}");
    }
}
