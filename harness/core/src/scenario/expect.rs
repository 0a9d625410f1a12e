//! Reading the `expect` section (the expected outcome) and the `fake` section (what the fake
//! runtime tier does in place of containers) of scenario.yaml.

use super::fixtures::{plain_map, scalar};
use super::header::{Expect, ExpectedStatus, FakeAttempt, FakeSpec, FakeStep, StepExpect};
use crate::diag::suggest;
use crate::walk::Ctx;
use crate::yaml::{Node, Pos, Value};

fn status(ctx: &mut Ctx<'_>, v: &Node) -> Option<ExpectedStatus> {
    let s = v.scalar_text()?;
    match s.as_str() {
        "Success" => Some(ExpectedStatus::Success),
        "Failed" => Some(ExpectedStatus::Failed),
        "Skipped" => Some(ExpectedStatus::Skipped),
        _ => {
            let hint = suggest(&s, ["Success", "Failed", "Skipped"])
                .map(|x| format!(", did you mean `{x}`?"))
                .unwrap_or_default();
            ctx.err(
                v.pos,
                format!("status must be Success, Failed or Skipped, found `{s}`{hint}"),
            );
            None
        }
    }
}

pub(super) fn read_expect(ctx: &mut Ctx<'_>, e: &Node, at: Pos, ex: &mut Expect) {
    if e.is_null() || !ctx.strict_map(e, at, &["status", "steps", "error"], "expect") {
        return;
    }
    if let Some(v) = e.get("status")
        && let Some(s) = status(ctx, v)
    {
        ex.status = s;
    }
    ex.error = scalar(ctx, e, "error");
    if ex.error.is_some() && e.get("status").is_none() {
        ex.status = ExpectedStatus::Failed;
    }
    if let Some(steps) = e.get("steps") {
        match steps.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let id = k.scalar_text().unwrap_or_default();
                    let mut se = StepExpect::default();
                    if ctx.strict_map(v, k.pos, &["status", "exitCode"], "expect.steps entry") {
                        if let Some(s) = v.get("status") {
                            se.status = status(ctx, s);
                        }
                        if let Some(c) = v.get("exitCode") {
                            match &c.value {
                                Value::Int(i) if (0..=255).contains(i) => se.exit_code = Some(*i as i32),
                                _ => ctx.err(c.pos, "`exitCode` must be an integer between 0 and 255"),
                            }
                        }
                    }
                    ex.steps.insert(id, se);
                }
            }
            None if steps.is_null() => {}
            None => ctx.err(
                steps.pos,
                format!("`expect.steps` must be a mapping, found {}", steps.kind_name()),
            ),
        }
    }
}

fn duration_millis(ctx: &mut Ctx<'_>, map: &Node, key: &str) -> u64 {
    let Some(text) = scalar(ctx, map, key) else { return 0 };
    match crate::duration::parse_millis(&text) {
        Some(ms) => ms,
        None => {
            let pos = map.get(key).map(|n| n.pos).unwrap_or_default();
            ctx.err(pos, format!("`{key}` `{text}` is not a duration (e.g. 2s, 500ms)"));
            0
        }
    }
}

fn int_in(ctx: &mut Ctx<'_>, v: &Node, what: &str, range: std::ops::RangeInclusive<i128>) -> Option<i128> {
    match &v.value {
        Value::Int(i) if range.contains(i) => Some(*i),
        _ => {
            ctx.err(
                v.pos,
                format!(
                    "`{what}` must be an integer between {} and {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

fn read_fake_attempt(ctx: &mut Ctx<'_>, v: &Node, at: Pos) -> FakeAttempt {
    const FIELDS: &[&str] = &["exitCode", "duration", "log", "outputs", "oomKilled"];
    let mut a = FakeAttempt::default();
    if v.is_null() || !ctx.strict_map(v, at, FIELDS, "fake step") {
        return a;
    }
    if let Some(c) = v.get("exitCode") {
        a.exit_code = int_in(ctx, c, "exitCode", 0..=255).unwrap_or(0) as i32;
    }
    a.duration_millis = duration_millis(ctx, v, "duration");
    a.log = scalar(ctx, v, "log").unwrap_or_default();
    a.outputs = plain_map(ctx, v, "outputs");
    if let Some(o) = v.get("oomKilled") {
        match &o.value {
            Value::Bool(b) => a.oom_killed = *b,
            _ => ctx.err(
                o.pos,
                format!("`oomKilled` must be true or false, found {}", o.kind_name()),
            ),
        }
    }
    a
}

pub(super) fn read_fake(ctx: &mut Ctx<'_>, f: &Node, at: Pos, fake: &mut FakeSpec) {
    const FIELDS: &[&str] = &["skip", "pull", "imageUsers", "exitCodes", "steps"];
    if f.is_null() || !ctx.strict_map(f, at, FIELDS, "fake") {
        return;
    }
    fake.skip = scalar(ctx, f, "skip");
    fake.pull_millis = duration_millis(ctx, f, "pull");
    for (key, out) in [("imageUsers", 0), ("exitCodes", 1)] {
        let Some(m) = f.get(key) else { continue };
        match m.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let name = k.scalar_text().unwrap_or_default();
                    if out == 0 {
                        if let Some(uid) = int_in(ctx, v, &format!("{key}.{name}"), 0..=i64::MAX as i128) {
                            fake.image_users.insert(name, uid as i64);
                        }
                    } else if let Some(code) = int_in(ctx, v, &format!("{key}.{name}"), 0..=255) {
                        fake.exit_codes.insert(name, code as i32);
                    }
                }
            }
            None if m.is_null() => {}
            None => ctx.err(
                m.pos,
                format!("`fake.{key}` must be a mapping, found {}", m.kind_name()),
            ),
        }
    }
    if let Some(steps) = f.get("steps") {
        match steps.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    let id = k.scalar_text().unwrap_or_default();
                    let step = match v.get("attempts") {
                        Some(list) => {
                            if v.as_map().is_some_and(|m| m.len() > 1) {
                                ctx.err(
                                    k.pos,
                                    "a fake step has either `attempts` or one attempt's fields, not both",
                                );
                            }
                            match list.as_seq() {
                                Some(items) if !items.is_empty() => FakeStep {
                                    attempts: items.iter().map(|i| read_fake_attempt(ctx, i, i.pos)).collect(),
                                },
                                _ => {
                                    ctx.err(list.pos, "`attempts` must be a non-empty list");
                                    FakeStep::default()
                                }
                            }
                        }
                        None => FakeStep {
                            attempts: vec![read_fake_attempt(ctx, v, k.pos)],
                        },
                    };
                    fake.steps.insert(id, step);
                }
            }
            None if steps.is_null() => {}
            None => ctx.err(
                steps.pos,
                format!("`fake.steps` must be a mapping, found {}", steps.kind_name()),
            ),
        }
    }
}
