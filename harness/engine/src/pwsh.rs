//! `sgsim-pwsh`: the stand-in for PowerShell Core (`pwsh -Command <script>`) in sgsim's images for
//! PowerShell container images (Debian has no PowerShell package and nothing may be downloaded).
//!
//! It interprets the subset of PowerShell that step commands use, and says so by name for
//! anything else:
//! - statements separated by newlines or `;`, `#` and `<# #>` comments;
//! - `$var = expr`, `$Env:NAME = expr`, `if/elseif/else`, `foreach ($x in expr)`, `exit [n]`,
//!   `throw expr`;
//! - expressions: 'literal' and "expandable" strings (`$var`, `${var}`, `$Env:NAME`, `$(expr)`,
//!   backtick escapes), numbers, `$true`/`$false`/`$null`, `@(a, b)`, `a, b`, `1..3`, `( )`,
//!   `+`, `-eq -ne -gt -ge -lt -le -like -notlike -match -notmatch -contains`, `-and -or -not !`;
//! - cmdlets: Write-Host, Write-Output/echo, Write-Error, Write-Warning, New-Item, Add-Content,
//!   Set-Content, Get-Content, Test-Path, Set-Location/cd, Start-Sleep; any other command runs as
//!   a native program from PATH (`$LASTEXITCODE`, `$?`).
//!
//! An error with `$ErrorActionPreference = 'Stop'` (the product's prologue) ends the script with
//! exit code 1; otherwise the exit code is 0, or 1 when the last command failed, as `pwsh -Command`.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;

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
    fn text(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Val::Num(n) => fmt_num(*n),
            Val::Str(s) => s.clone(),
            Val::Arr(a) => a.iter().map(Val::text).collect::<Vec<_>>().join(" "),
        }
    }
    fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Arr(a) => !a.is_empty(),
        }
    }
    fn num(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::Str(s) => s.trim().parse().ok(),
            Val::Null => Some(0.0),
            Val::Arr(_) => None,
        }
    }
    fn items(self) -> Vec<Val> {
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

/// Why a script stopped early.
#[derive(Debug, PartialEq)]
enum Stop {
    /// `exit n`.
    Exit(i32),
    /// A terminating error (message as pwsh prints it).
    Error(String),
}

/// The interpreter's state.
pub struct Pwsh<'a> {
    vars: HashMap<String, Val>,
    /// The environment (`$Env:`), passed to native commands.
    env: HashMap<String, String>,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    last_ok: bool,
    /// Output of `( command )` / `$( command )` being collected as values instead of printed.
    captures: Vec<Vec<Val>>,
}

impl<'a> Pwsh<'a> {
    /// A fresh session with the process environment, writing to `out` and `err`.
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Self::with_env(std::env::vars().collect(), out, err)
    }

    /// A fresh session with the given environment.
    pub fn with_env(env: HashMap<String, String>, out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        Pwsh {
            vars: HashMap::new(),
            env,
            out,
            err,
            last_ok: true,
            captures: Vec::new(),
        }
    }

    /// Run a script; the exit code as `pwsh -Command` would return it.
    pub fn run(&mut self, script: &str) -> i32 {
        let stmts = match Parser::new(script).script() {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(self.err, "ParserError: {e}");
                return 1;
            }
        };
        match self.block(&stmts) {
            Ok(()) => i32::from(!self.last_ok),
            Err(Stop::Exit(n)) => n,
            Err(Stop::Error(m)) => {
                let _ = writeln!(self.err, "{m}");
                1
            }
        }
    }

    fn stop_on_error(&self) -> bool {
        self.vars
            .get("erroractionpreference")
            .is_some_and(|v| v.text().eq_ignore_ascii_case("stop"))
    }

    /// A non-terminating error: printed, or terminating under `$ErrorActionPreference = 'Stop'`.
    fn error(&mut self, msg: String) -> Result<(), Stop> {
        self.last_ok = false;
        if self.stop_on_error() {
            return Err(Stop::Error(msg));
        }
        let _ = writeln!(self.err, "{msg}");
        Ok(())
    }

    fn block(&mut self, stmts: &[Stmt]) -> Result<(), Stop> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), Stop> {
        match s {
            Stmt::Assign(target, e) => {
                let v = self.eval(e)?;
                match target {
                    Target::Var(n) => {
                        self.vars.insert(n.to_ascii_lowercase(), v);
                    }
                    Target::Env(n) => {
                        self.env.insert(n.clone(), v.text());
                    }
                }
                self.last_ok = true;
            }
            Stmt::If(branches, otherwise) => {
                for (c, body) in branches {
                    if self.eval(c)?.truthy() {
                        return self.block(body);
                    }
                }
                if let Some(b) = otherwise {
                    self.block(b)?;
                }
            }
            Stmt::Foreach(var, e, body) => {
                for item in self.eval(e)?.items() {
                    self.vars.insert(var.to_ascii_lowercase(), item);
                    self.block(body)?;
                }
            }
            Stmt::Exit(e) => {
                let code = match e {
                    Some(e) => self.eval(e)?.num().unwrap_or(0.0) as i32,
                    None => 0,
                };
                return Err(Stop::Exit(code));
            }
            Stmt::Throw(e) => {
                let m = match e {
                    Some(e) => self.eval(e)?.text(),
                    None => "ScriptHalted".into(),
                };
                return Err(Stop::Error(format!("Exception: {m}")));
            }
            Stmt::Expr(e) => {
                let v = self.eval(e)?;
                self.emit(&v);
                self.last_ok = true;
            }
            Stmt::Command(name, args) => self.command(name, args)?,
            Stmt::Quiet(inner) => {
                self.captures.push(Vec::new());
                let r = self.stmt(inner);
                self.captures.pop();
                r?;
            }
        }
        Ok(())
    }

    /// Output of the success stream: collected when inside `( command )`, else printed.
    fn emit(&mut self, v: &Val) {
        if let Some(top) = self.captures.last_mut() {
            top.extend(v.clone().items());
            return;
        }
        for item in v.clone().items() {
            let _ = writeln!(self.out, "{}", item.text());
        }
    }

    fn eval(&mut self, e: &Expr) -> Result<Val, Stop> {
        Ok(match e {
            Expr::Lit(v) => v.clone(),
            Expr::Var(n) => self.var(n),
            Expr::Env(n) => self.env.get(n).cloned().map(Val::Str).unwrap_or(Val::Null),
            Expr::Expand(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        Part::Text(t) => s.push_str(t),
                        Part::Expr(e) => s.push_str(&self.eval(e)?.text()),
                    }
                }
                Val::Str(s)
            }
            Expr::Array(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(self.eval(i)?);
                }
                Val::Arr(out)
            }
            Expr::Sub(e) => {
                let v = self.eval(e)?;
                if let Val::Arr(a) = &v
                    && a.len() == 1
                {
                    return Ok(a[0].clone());
                }
                v
            }
            Expr::Not(e) => Val::Bool(!self.eval(e)?.truthy()),
            Expr::Member(v, name, args) => {
                let v = self.eval(v)?;
                let mut vals = Vec::new();
                for a in args.iter().flatten() {
                    vals.push(self.eval(a)?);
                }
                member(&v, name, args.is_some(), &vals).map_err(Stop::Error)?
            }
            Expr::Index(v, ix) => {
                let v = self.eval(v)?;
                let i = self.eval(ix)?.num().unwrap_or(0.0) as i64;
                let items: Vec<Val> = match v {
                    Val::Str(s) => s.chars().map(|c| Val::Str(c.to_string())).collect(),
                    v => v.items(),
                };
                let n = items.len() as i64;
                let at = if i < 0 { n + i } else { i };
                if (0..n).contains(&at) {
                    items[at as usize].clone()
                } else {
                    Val::Null
                }
            }
            Expr::Cmd(name, args) => {
                self.captures.push(Vec::new());
                let r = self.command(name, args);
                let mut got = self.captures.pop().unwrap_or_default();
                r?;
                match got.len() {
                    0 => Val::Null,
                    1 => got.remove(0),
                    _ => Val::Arr(got),
                }
            }
            Expr::Bin(op, a, b) => {
                let a = self.eval(a)?;
                if op == "-and" && !a.truthy() {
                    return Ok(Val::Bool(false));
                }
                if op == "-or" && a.truthy() {
                    return Ok(Val::Bool(true));
                }
                let b = self.eval(b)?;
                binary(op, a, b).map_err(Stop::Error)?
            }
        })
    }

    fn var(&self, n: &str) -> Val {
        match n.to_ascii_lowercase().as_str() {
            "true" => Val::Bool(true),
            "false" => Val::Bool(false),
            "null" => Val::Null,
            "?" => Val::Bool(self.last_ok),
            "pwd" => Val::Str(
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            ),
            l => self.vars.get(l).cloned().unwrap_or(Val::Null),
        }
    }

    /// Arguments: positional values, and `-Name value` / `-Switch` parameters.
    fn args(&mut self, args: &[Arg]) -> Result<(Vec<Val>, HashMap<String, Option<Val>>), Stop> {
        let mut pos = Vec::new();
        let mut named = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            match &args[i] {
                Arg::Param(p) => {
                    let p = p.to_ascii_lowercase();
                    let takes_value = !matches!(p.as_str(), "nonewline" | "force" | "recurse");
                    if takes_value && let Some(Arg::Value(e)) = args.get(i + 1) {
                        let v = self.eval(e)?;
                        named.insert(p, Some(v));
                        i += 2;
                        continue;
                    }
                    named.insert(p, None);
                }
                Arg::Value(e) => pos.push(self.eval(e)?),
            }
            i += 1;
        }
        Ok((pos, named))
    }

    fn command(&mut self, name: &str, args: &[Arg]) -> Result<(), Stop> {
        let (mut pos, named) = self.args(args)?;
        let take = |named: &HashMap<String, Option<Val>>, pos: &mut Vec<Val>, keys: &[&str]| -> Option<Val> {
            keys.iter()
                .find_map(|k| named.get(*k).cloned().flatten())
                .or_else(|| (!pos.is_empty()).then(|| pos.remove(0)))
        };
        self.last_ok = true;
        match name.to_ascii_lowercase().as_str() {
            "write-host" => {
                let mut items: Vec<Val> = pos.into_iter().flat_map(Val::items).collect();
                if let Some(Some(o)) = named.get("object") {
                    items.insert(0, o.clone());
                }
                let sep = named
                    .get("separator")
                    .cloned()
                    .flatten()
                    .map(|v| v.text())
                    .unwrap_or_else(|| " ".into());
                let line = items.iter().map(Val::text).collect::<Vec<_>>().join(&sep);
                let _ = if named.contains_key("nonewline") {
                    write!(self.out, "{line}")
                } else {
                    writeln!(self.out, "{line}")
                };
            }
            "write-output" | "echo" | "write" => {
                if let Some(Some(o)) = named.get("inputobject") {
                    pos.insert(0, o.clone());
                }
                for v in pos {
                    self.emit(&v);
                }
            }
            "write-warning" => {
                let m = take(&named, &mut pos, &["message"])
                    .map(|v| v.text())
                    .unwrap_or_default();
                let _ = writeln!(self.out, "WARNING: {m}");
            }
            "write-error" => {
                let m = take(&named, &mut pos, &["message"])
                    .map(|v| v.text())
                    .unwrap_or_default();
                self.error(format!("Write-Error: {m}"))?;
            }
            "new-item" => {
                let path = take(&named, &mut pos, &["path"]).map(|v| v.text()).unwrap_or_default();
                let dir = named
                    .get("itemtype")
                    .cloned()
                    .flatten()
                    .is_some_and(|t| t.text().eq_ignore_ascii_case("directory"));
                let r = if dir {
                    std::fs::create_dir_all(&path)
                } else if std::path::Path::new(&path).exists() && !named.contains_key("force") {
                    Err(std::io::Error::other(format!("The file '{path}' already exists.")))
                } else {
                    let value = named
                        .get("value")
                        .cloned()
                        .flatten()
                        .map(|v| v.text())
                        .unwrap_or_default();
                    std::fs::write(&path, value)
                };
                if let Err(e) = r {
                    self.error(format!("New-Item: {e}"))?;
                }
            }
            c @ ("add-content" | "set-content") => {
                let path = take(&named, &mut pos, &["path"]).map(|v| v.text()).unwrap_or_default();
                let value = take(&named, &mut pos, &["value"]).unwrap_or(Val::Null);
                let mut text: String = value.items().iter().map(|v| format!("{}\n", v.text())).collect();
                if c == "add-content" {
                    // Add-Content starts on a new line when the file does not end with one.
                    if let Ok(old) = std::fs::read_to_string(&path)
                        && !old.is_empty()
                        && !old.ends_with('\n')
                    {
                        text.insert(0, '\n');
                    }
                    let r = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .and_then(|mut f| f.write_all(text.as_bytes()));
                    if let Err(e) = r {
                        self.error(format!("Add-Content: {e}"))?;
                    }
                } else if let Err(e) = std::fs::write(&path, text) {
                    self.error(format!("Set-Content: {e}"))?;
                }
            }
            "get-content" | "cat" | "type" => {
                let path = take(&named, &mut pos, &["path"]).map(|v| v.text()).unwrap_or_default();
                match std::fs::read_to_string(&path) {
                    Ok(t) => {
                        for l in t.lines() {
                            let _ = writeln!(self.out, "{l}");
                        }
                    }
                    Err(_) => self.error(format!(
                        "Get-Content: Cannot find path '{path}' because it does not exist."
                    ))?,
                }
            }
            "test-path" => {
                let path = take(&named, &mut pos, &["path"]).map(|v| v.text()).unwrap_or_default();
                let e = std::path::Path::new(&path).exists();
                self.emit(&Val::Bool(e));
            }
            "set-location" | "cd" | "sl" => {
                let path = take(&named, &mut pos, &["path"]).map(|v| v.text()).unwrap_or_default();
                if std::env::set_current_dir(&path).is_err() {
                    self.error(format!(
                        "Set-Location: Cannot find path '{path}' because it does not exist."
                    ))?;
                }
            }
            "start-sleep" | "sleep" => {
                let s = take(&named, &mut pos, &["seconds", "s"])
                    .and_then(|v| v.num())
                    .unwrap_or(0.0);
                let ms = named
                    .get("milliseconds")
                    .cloned()
                    .flatten()
                    .and_then(|v| v.num())
                    .unwrap_or(0.0);
                std::thread::sleep(std::time::Duration::from_secs_f64((s + ms / 1000.0).max(0.0)));
            }
            _ => self.native(name, args)?,
        }
        Ok(())
    }

    /// A program from PATH (or a path), with its arguments as text.
    fn native(&mut self, name: &str, args: &[Arg]) -> Result<(), Stop> {
        let mut argv = Vec::new();
        for a in args {
            match a {
                Arg::Param(p) => argv.push(format!("-{p}")),
                Arg::Value(e) => {
                    for v in self.eval(e)?.items() {
                        argv.push(v.text());
                    }
                }
            }
        }
        let _ = self.out.flush();
        let child = Command::new(name)
            .args(&argv)
            .env_clear()
            .envs(&self.env)
            .stdout(std::process::Stdio::piped())
            .spawn();
        // stdout goes through the session's writer as it comes; stderr is inherited.
        let status = child.and_then(|mut ch| {
            if !self.captures.is_empty()
                && let Some(mut so) = ch.stdout.take()
            {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut so, &mut text);
                let lines: Vec<Val> = text.lines().map(|l| Val::Str(l.to_string())).collect();
                self.emit(&Val::Arr(lines));
            } else if let Some(mut so) = ch.stdout.take() {
                let mut buf = [0u8; 8192];
                loop {
                    match std::io::Read::read(&mut so, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let _ = self.out.write_all(&buf[..n]);
                            let _ = self.out.flush();
                        }
                    }
                }
            }
            ch.wait()
        });
        match status {
            Ok(st) => {
                let code = st.code().unwrap_or(1);
                self.vars.insert("lastexitcode".into(), Val::Num(f64::from(code)));
                self.last_ok = code == 0;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.error(format!(
                "{name}: The term '{name}' is not recognized as a name of a cmdlet, function, script file, or executable program.\nCheck the spelling of the name, or if a path was included, verify that the path is correct and try again."
            )),
            Err(e) => self.error(format!("{name}: {e}")),
        }
    }
}

/// The members and methods of strings and arrays that step scripts use.
fn member(v: &Val, name: &str, call: bool, args: &[Val]) -> Result<Val, String> {
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
        _ => return Err(format!("sgsim's pwsh stand-in does not support the member `{name}`")),
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

fn binary(op: &str, a: Val, b: Val) -> Result<Val, String> {
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
                x + b
                    .num()
                    .ok_or_else(|| format!("Cannot convert value \"{}\" to type \"System.Int32\".", b.text()))?,
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
        o => return Err(format!("sgsim's pwsh stand-in does not support the operator `{o}`")),
    })
}

// ---- syntax ----

#[derive(Debug, Clone)]
enum Target {
    Var(String),
    Env(String),
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Val),
    Var(String),
    Env(String),
    Expand(Vec<Part>),
    Array(Vec<Expr>),
    Sub(Box<Expr>),
    Not(Box<Expr>),
    Bin(String, Box<Expr>, Box<Expr>),
    /// A command whose output is a value: `(Test-Path x)`, `$(git rev-parse HEAD)`.
    Cmd(String, Vec<Arg>),
    /// `$x.Length`, `$s.Split(',')`: a member or method of the .NET value.
    Member(Box<Expr>, String, Option<Vec<Expr>>),
    /// `$a[0]`.
    Index(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
enum Arg {
    Param(String),
    Value(Expr),
}

#[derive(Debug, Clone)]
enum Stmt {
    Assign(Target, Expr),
    If(Vec<(Expr, Vec<Stmt>)>, Option<Vec<Stmt>>),
    Foreach(String, Expr, Vec<Stmt>),
    Exit(Option<Expr>),
    Throw(Option<Expr>),
    Expr(Expr),
    Command(String, Vec<Arg>),
    /// `... | Out-Null`: the statement's output is discarded (Write-Host still prints).
    Quiet(Box<Stmt>),
}

struct Parser {
    s: Vec<char>,
    i: usize,
}

const COMPARISON: &[&str] = &[
    "-eq",
    "-ne",
    "-gt",
    "-ge",
    "-lt",
    "-le",
    "-like",
    "-notlike",
    "-match",
    "-notmatch",
    "-contains",
    "-notcontains",
];

impl Parser {
    fn new(src: &str) -> Self {
        Parser {
            s: src.chars().collect(),
            i: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.s.get(self.i + n).copied()
    }
    fn rest_starts(&self, w: &str) -> bool {
        let w: Vec<char> = w.chars().collect();
        self.s.len() >= self.i + w.len()
            && self.s[self.i..self.i + w.len()]
                .iter()
                .zip(&w)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
    fn line(&self) -> usize {
        self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count()
            + 1
    }
    fn err<T>(&self, m: &str) -> Result<T, String> {
        Err(format!("line {}: {m}", self.line()))
    }

    /// Spaces, tabs, comments and line continuations (not newlines).
    fn blank(&mut self) {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => self.i += 1,
                Some('`') if self.peek_at(1) == Some('\n') => self.i += 2,
                Some('<') if self.peek_at(1) == Some('#') => {
                    while self.i < self.s.len() && !(self.peek() == Some('#') && self.peek_at(1) == Some('>')) {
                        self.i += 1;
                    }
                    self.i = (self.i + 2).min(self.s.len());
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }
    /// Blanks and newlines/semicolons.
    fn separators(&mut self) {
        loop {
            self.blank();
            match self.peek() {
                Some('\n' | ';') => self.i += 1,
                _ => return,
            }
        }
    }
    fn eat(&mut self, c: char) -> bool {
        self.blank();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(&format!("expected `{c}`"))
        }
    }
    fn word(&mut self) -> String {
        let st = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '\\' | ':'))
        {
            self.i += 1;
        }
        self.s[st..self.i].iter().collect()
    }
    fn keyword(&mut self, kw: &str) -> bool {
        self.blank();
        let end = self.s.get(self.i + kw.len()).copied();
        if self.rest_starts(kw) && !end.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            self.i += kw.len();
            true
        } else {
            false
        }
    }

    fn script(&mut self) -> Result<Vec<Stmt>, String> {
        let out = self.stmts()?;
        self.separators();
        if self.i < self.s.len() {
            return self.err(&format!("unexpected `{}`", self.s[self.i]));
        }
        Ok(out)
    }

    fn stmts(&mut self) -> Result<Vec<Stmt>, String> {
        let mut out = Vec::new();
        loop {
            self.separators();
            match self.peek() {
                None | Some('}') => return Ok(out),
                _ => out.push(self.stmt()?),
            }
            self.blank();
            if self.peek() == Some('|') {
                self.i += 1;
                if !self.keyword("Out-Null") {
                    return self
                        .err("pipelines (`|`) other than `| Out-Null` are not supported by sgsim's pwsh stand-in");
                }
                if let Some(last) = out.pop() {
                    out.push(Stmt::Quiet(Box::new(last)));
                }
                self.blank();
            }
            match self.peek() {
                None | Some('\n' | ';' | '}') => {}
                Some('|') => {
                    return self
                        .err("pipelines (`|`) other than `| Out-Null` are not supported by sgsim's pwsh stand-in");
                }
                Some(c) => return self.err(&format!("unexpected `{c}`")),
            }
        }
    }

    fn body(&mut self) -> Result<Vec<Stmt>, String> {
        self.separators();
        self.expect('{')?;
        let b = self.stmts()?;
        self.separators();
        self.expect('}')?;
        Ok(b)
    }

    fn stmt(&mut self) -> Result<Stmt, String> {
        self.blank();
        if self.keyword("if") {
            let mut branches = Vec::new();
            self.expect('(')?;
            let c = self.expr()?;
            self.expect(')')?;
            branches.push((c, self.body()?));
            let mut otherwise = None;
            loop {
                let save = self.i;
                self.separators();
                if self.keyword("elseif") {
                    self.expect('(')?;
                    let c = self.expr()?;
                    self.expect(')')?;
                    branches.push((c, self.body()?));
                } else if self.keyword("else") {
                    otherwise = Some(self.body()?);
                    break;
                } else {
                    self.i = save;
                    break;
                }
            }
            return Ok(Stmt::If(branches, otherwise));
        }
        if self.keyword("foreach") {
            self.expect('(')?;
            self.expect('$')?;
            let v = self.word();
            if !self.keyword("in") {
                return self.err("expected `in`");
            }
            let e = self.expr()?;
            self.expect(')')?;
            return Ok(Stmt::Foreach(v, e, self.body()?));
        }
        if self.keyword("exit") {
            self.blank();
            let e = if matches!(self.peek(), None | Some('\n' | ';' | '}')) {
                None
            } else {
                Some(self.expr()?)
            };
            return Ok(Stmt::Exit(e));
        }
        if self.keyword("throw") {
            self.blank();
            let e = if matches!(self.peek(), None | Some('\n' | ';' | '}')) {
                None
            } else {
                Some(self.expr()?)
            };
            return Ok(Stmt::Throw(e));
        }
        // Assignment: `$x = ...` / `$Env:X = ...`.
        if self.peek() == Some('$') {
            let save = self.i;
            self.i += 1;
            let name = self.word();
            self.blank();
            if !name.is_empty() && self.peek() == Some('=') && self.peek_at(1) != Some('=') {
                self.i += 1;
                let e = self.expr_or_command()?;
                let target = match name.split_once(':') {
                    Some((scope, n)) if scope.eq_ignore_ascii_case("env") => Target::Env(n.to_string()),
                    Some((_, n)) => Target::Var(n.to_string()),
                    None => Target::Var(name),
                };
                return Ok(Stmt::Assign(target, e));
            }
            self.i = save;
        }
        // A command: a bare word first (`Write-Host`, `ls`, `./run.sh`); `& "prog"` too.
        let c = self.peek().unwrap_or(' ');
        if c == '&' {
            self.i += 1;
            self.blank();
            let name = self.primary()?;
            let name = match name {
                Expr::Lit(v) => v.text(),
                Expr::Expand(p) if p.iter().all(|x| matches!(x, Part::Text(_))) => p
                    .iter()
                    .map(|x| {
                        if let Part::Text(t) = x {
                            t.clone()
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
                _ => return self.err("`&` needs a literal command name in sgsim's pwsh stand-in"),
            };
            return Ok(Stmt::Command(name, self.command_args()?));
        }
        if c.is_alphabetic() || c == '.' || c == '/' || c == '_' {
            let name = self.word();
            return Ok(Stmt::Command(name, self.command_args()?));
        }
        Ok(Stmt::Expr(self.expr()?))
    }

    fn command_args(&mut self) -> Result<Vec<Arg>, String> {
        let mut args = Vec::new();
        loop {
            self.blank();
            match self.peek() {
                None | Some('\n' | ';' | '}' | ')' | '|') => return Ok(args),
                Some('-') if self.peek_at(1).is_some_and(|c| c.is_alphabetic()) => {
                    self.i += 1;
                    let mut p = self.word();
                    if let Some(stripped) = p.strip_suffix(':') {
                        p = stripped.to_string();
                    }
                    args.push(Arg::Param(p));
                }
                Some('"' | '\'' | '$' | '(' | '@') => args.push(Arg::Value(self.unary()?)),
                Some(c) if c.is_ascii_digit() && self.bare_is_number() => args.push(Arg::Value(self.unary()?)),
                Some(_) => {
                    // A bareword argument: up to a blank or separator, with `$var` expansion.
                    let mut parts = Vec::new();
                    let mut text = String::new();
                    while let Some(c) = self.peek() {
                        if c.is_whitespace() || matches!(c, ';' | '}' | ')' | '|') {
                            break;
                        }
                        if c == '$' {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(Part::Expr(self.variable()?));
                            continue;
                        }
                        text.push(c);
                        self.i += 1;
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(text));
                    }
                    args.push(Arg::Value(Expr::Expand(parts)));
                }
            }
        }
    }

    /// An expression, or a command when a bare word comes first (`$x = Get-Content f`,
    /// `(Test-Path x)`).
    fn expr_or_command(&mut self) -> Result<Expr, String> {
        self.separators();
        if self
            .peek()
            .is_some_and(|c| c.is_alphabetic() || c == '.' || c == '/' || c == '_')
        {
            let name = self.word();
            return Ok(Expr::Cmd(name, self.command_args()?));
        }
        self.expr()
    }

    fn bare_is_number(&self) -> bool {
        let mut j = self.i;
        while self.s.get(j).is_some_and(|c| c.is_ascii_digit() || *c == '.') {
            j += 1;
        }
        self.s
            .get(j)
            .is_none_or(|c| c.is_whitespace() || matches!(c, ';' | '}' | ')'))
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let first = self.logic()?;
        self.blank();
        if self.peek() == Some(',') {
            let mut items = vec![first];
            while self.eat(',') {
                self.separators();
                items.push(self.logic()?);
            }
            return Ok(Expr::Array(items));
        }
        Ok(first)
    }

    fn logic(&mut self) -> Result<Expr, String> {
        let mut a = self.comparison()?;
        loop {
            self.blank();
            let op = ["-and", "-or"].into_iter().find(|o| self.keyword(o));
            let Some(op) = op else { return Ok(a) };
            self.separators();
            let b = self.comparison()?;
            a = Expr::Bin(op.into(), Box::new(a), Box::new(b));
        }
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let mut a = self.additive()?;
        loop {
            self.blank();
            // Case-insensitive `-ieq`/`-ceq` spellings compare as `-eq`.
            let op = COMPARISON.iter().find(|o| {
                let o = &o[1..];
                self.keyword(&format!("-{o}")) || self.keyword(&format!("-i{o}")) || self.keyword(&format!("-c{o}"))
            });
            let Some(op) = op else { return Ok(a) };
            let b = self.additive()?;
            a = Expr::Bin((*op).into(), Box::new(a), Box::new(b));
        }
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut a = self.range()?;
        loop {
            self.blank();
            let op = match self.peek() {
                Some('+') => "+",
                Some('-')
                    if self
                        .peek_at(1)
                        .is_some_and(|c| c == ' ' || c.is_ascii_digit() || c == '$' || c == '(') =>
                {
                    "-"
                }
                Some('*') => "*",
                Some('/') => "/",
                _ => return Ok(a),
            };
            self.i += 1;
            let b = self.range()?;
            a = Expr::Bin(op.into(), Box::new(a), Box::new(b));
        }
    }

    fn range(&mut self) -> Result<Expr, String> {
        let a = self.unary()?;
        if self.peek() == Some('.') && self.peek_at(1) == Some('.') {
            self.i += 2;
            let b = self.unary()?;
            return Ok(Expr::Bin("..".into(), Box::new(a), Box::new(b)));
        }
        Ok(a)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.blank();
        if self.keyword("-not") || self.eat('!') {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let mut e = self.primary()?;
        // Members, methods and indexes, directly after the value (no blank).
        loop {
            match self.peek() {
                Some('.') if self.peek_at(1).is_some_and(|c| c.is_alphabetic()) => {
                    self.i += 1;
                    let st = self.i;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.i += 1;
                    }
                    let name: String = self.s[st..self.i].iter().collect();
                    let args = if self.peek() == Some('(') {
                        self.i += 1;
                        let mut args = Vec::new();
                        self.separators();
                        if !self.eat(')') {
                            loop {
                                args.push(self.logic()?);
                                self.separators();
                                if self.eat(')') {
                                    break;
                                }
                                self.expect(',')?;
                            }
                        }
                        Some(args)
                    } else {
                        None
                    };
                    e = Expr::Member(Box::new(e), name, args);
                }
                Some('[') => {
                    self.i += 1;
                    let ix = self.expr()?;
                    self.separators();
                    self.expect(']')?;
                    e = Expr::Index(Box::new(e), Box::new(ix));
                }
                _ => return Ok(e),
            }
        }
    }

    fn variable(&mut self) -> Result<Expr, String> {
        self.i += 1; // `$`
        match self.peek() {
            Some('{') => {
                self.i += 1;
                let st = self.i;
                while self.peek().is_some_and(|c| c != '}') {
                    self.i += 1;
                }
                let name: String = self.s[st..self.i].iter().collect();
                self.i += 1;
                Ok(var_expr(&name))
            }
            Some('(') => self.paren(),
            Some('?') => {
                self.i += 1;
                Ok(Expr::Var("?".into()))
            }
            _ => {
                let st = self.i;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                }
                if self.peek() == Some(':') && self.peek_at(1).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.i += 1;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.i += 1;
                    }
                }
                let name: String = self.s[st..self.i].iter().collect();
                if name.is_empty() {
                    return Ok(Expr::Lit(Val::Str("$".into())));
                }
                Ok(var_expr(&name))
            }
        }
    }

    /// `( expr )` or `( command )`, at the `(`.
    fn paren(&mut self) -> Result<Expr, String> {
        self.i += 1;
        let e = self.expr_or_command()?;
        self.separators();
        self.expect(')')?;
        Ok(Expr::Sub(Box::new(e)))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.blank();
        match self.peek() {
            Some('\'') => {
                self.i += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return self.err("missing closing `'`"),
                        Some('\'') if self.peek_at(1) == Some('\'') => {
                            s.push('\'');
                            self.i += 2;
                        }
                        Some('\'') => {
                            self.i += 1;
                            return Ok(Expr::Lit(Val::Str(s)));
                        }
                        Some(c) => {
                            s.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some('"') => {
                self.i += 1;
                let mut parts = Vec::new();
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => return self.err("missing closing `\"`"),
                        Some('"') if self.peek_at(1) == Some('"') => {
                            text.push('"');
                            self.i += 2;
                        }
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('`') => {
                            let c = self.peek_at(1).unwrap_or('`');
                            text.push(match c {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                c => c,
                            });
                            self.i += 2;
                        }
                        Some('$')
                            if self
                                .peek_at(1)
                                .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '{' | '(' | '?')) =>
                        {
                            if !text.is_empty() {
                                parts.push(Part::Text(std::mem::take(&mut text)));
                            }
                            parts.push(Part::Expr(self.variable()?));
                        }
                        Some(c) => {
                            text.push(c);
                            self.i += 1;
                        }
                    }
                }
                if !text.is_empty() || parts.is_empty() {
                    parts.push(Part::Text(text));
                }
                Ok(Expr::Expand(parts))
            }
            Some('$') => self.variable(),
            Some('(') => self.paren(),
            Some('@') if self.peek_at(1) == Some('(') => {
                self.i += 2;
                self.separators();
                if self.eat(')') {
                    return Ok(Expr::Array(Vec::new()));
                }
                let e = self.expr()?;
                self.separators();
                self.expect(')')?;
                Ok(match e {
                    Expr::Array(a) => Expr::Array(a),
                    e => Expr::Array(vec![e]),
                })
            }
            Some(c) if c.is_ascii_digit() || (c == '-' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) => {
                let st = self.i;
                self.i += 1;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || (c == '.' && self.peek_at(1) != Some('.')))
                {
                    self.i += 1;
                }
                let t: String = self.s[st..self.i].iter().collect();
                t.parse()
                    .map(|n| Expr::Lit(Val::Num(n)))
                    .or_else(|_| self.err(&format!("bad number `{t}`")))
            }
            Some(c) => self.err(&format!("unexpected `{c}` (not supported by sgsim's pwsh stand-in)")),
            None => self.err("unexpected end of script"),
        }
    }
}

fn var_expr(name: &str) -> Expr {
    match name.split_once(':') {
        Some((scope, n)) if scope.eq_ignore_ascii_case("env") => Expr::Env(n.to_string()),
        Some((_, n)) => Expr::Var(n.to_string()),
        None => Expr::Var(name.to_string()),
    }
}

/// `pwsh` command line: `-Command <script>` / `-c`, `-File <path>`, `-NoProfile` etc. ignored.
pub fn main_with_args(args: &[String]) -> i32 {
    let mut script = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_ascii_lowercase();
        match a.as_str() {
            "-command" | "-c" => {
                script = Some(args[i + 1..].join(" "));
                break;
            }
            "-file" | "-f" => {
                match args.get(i + 1).map(std::fs::read_to_string) {
                    Some(Ok(t)) => script = Some(t),
                    _ => {
                        eprintln!(
                            "The argument '{}' is not recognized as the name of a script file.",
                            args.get(i + 1).cloned().unwrap_or_default()
                        );
                        return 64;
                    }
                }
                break;
            }
            "-version" | "--version" | "-v" => {
                println!("PowerShell 7.4.0 (sgsim stand-in)");
                return 0;
            }
            a if a.starts_with('-') => {}
            _ => {
                script = Some(args[i..].join(" "));
                break;
            }
        }
        i += 1;
    }
    let Some(script) = script else {
        eprintln!("sgsim's pwsh stand-in runs scripts (-Command, -File); it has no interactive shell");
        return 64;
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let code = Pwsh::new(&mut out, &mut err).run(&script);
    let _ = out.flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str) -> (i32, String, String) {
        let env = HashMap::from([
            ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
            ("SGSIM_PWSH_T1".to_string(), "from env".to_string()),
        ]);
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let code = Pwsh::with_env(env, &mut o, &mut e).run(script);
        (code, String::from_utf8(o).unwrap(), String::from_utf8(e).unwrap())
    }

    #[test]
    fn writes_and_expands() {
        let (c, o, _) = run(
            "$name = 'World'\nWrite-Host \"Hello, $name!\" ; Write-Output 'a' 'b'\necho \"`$name is ${name}, 1+2=$(1 + 2)\"",
        );
        assert_eq!((c, o.as_str()), (0, "Hello, World!\na\nb\n$name is World, 1+2=3\n"));
        let (_, o, _) = run("'single $x'\n\"it`'s\"; 42; $true; $null; @(1, 2)");
        assert_eq!(o, "single $x\nit's\n42\nTrue\n1\n2\n");
    }

    #[test]
    fn environment() {
        let (_, o, _) = run(
            "Write-Host $Env:SGSIM_PWSH_T1\n$env:SGSIM_PWSH_T2 = \"x-$Env:SGSIM_PWSH_T1\"\nWrite-Host $Env:SGSIM_PWSH_T2\nsh -c 'echo \"child sees $SGSIM_PWSH_T2\"'",
        );
        assert_eq!(o, "from env\nx-from env\nchild sees x-from env\n");
    }

    #[test]
    fn conditions_and_loops() {
        let s = "$v = 17\nif ($v -eq 17) {\n  Write-Host 'seventeen'\n} elseif ($v -gt 10) { 'big' } else { 'small' }\n\
                 foreach ($i in 1..3) { Write-Host -NoNewline \"$i \" }\nWrite-Host ''\n\
                 if (-not ($v -lt 3) -and 'abc' -like 'A*') { 'ok' }\nif ('x' -ne 'X') { 'case' } else { 'no case' }\n\
                 if (@('a','b') -contains 'b') { 'has b' }\nif ('release-1.2' -match '^release') { 'release' }";
        let (c, o, _) = run(s);
        assert_eq!((c, o.as_str()), (0, "seventeen\n1 2 3 \nok\nno case\nhas b\nrelease\n"));
    }

    #[test]
    fn exit_codes_and_errors() {
        assert_eq!(
            run("Write-Host a; exit 3; Write-Host b"),
            (3, "a\n".into(), String::new())
        );
        let (c, o, e) =
            run("$ErrorActionPreference = 'Stop' \nWrite-Host before\nthrow \"boom $(1)\"\nWrite-Host after");
        assert_eq!((c, o.as_str(), e.as_str()), (1, "before\n", "Exception: boom 1\n"));
        let (c, _, e) = run("$ErrorActionPreference = 'Stop'\nno-such-command-sgsim x");
        assert_eq!(c, 1);
        assert!(
            e.starts_with("no-such-command-sgsim: The term 'no-such-command-sgsim' is not recognized"),
            "{e}"
        );
        // Without Stop the script goes on; the last command decides the exit code.
        let (c, o, _) = run("no-such-command-sgsim\nWrite-Host goes on");
        assert_eq!((c, o.as_str()), (0, "goes on\n"));
        let (c, _, e) = run("Write-Host 'unclosed");
        assert_eq!(c, 1);
        assert!(e.contains("missing closing"), "{e}");
        let (c, _, e) = run("Get-ChildItem | Select-Object Name");
        assert_eq!(c, 1);
        assert!(e.contains("pipelines"), "{e}");
    }

    #[test]
    fn native_commands_and_files() {
        let dir = std::env::temp_dir().join(format!("sgsim-pwsh-{}", std::process::id()));
        let d = dir.display();
        let s = format!(
            "New-Item -ItemType Directory -Path {d} -Force\nNew-Item {d}/out\n$val = \"A 1\" \nAdd-Content -Path {d}/out -Value $val\n\
             Add-Content -Path {d}/out -Value 'B 2'\nGet-Content {d}/out\nTest-Path {d}/nope\nsh -c 'exit 4'\n\"code $LASTEXITCODE $?\"\ntrue"
        );
        let (c, o, _) = run(&s);
        assert_eq!((c, o.as_str()), (0, "A 1\nB 2\nFalse\ncode 4 False\n"));
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "A 1\nB 2\n");
        let (c, _, _) = run("sh -c 'exit 2'");
        assert_eq!(c, 1, "a failing last command gives 1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runs_the_addons_pwsh_script_with_output_variables() {
        use crate::proto::engine::ShellType;
        let dir = std::env::temp_dir().join(format!("sgsim-pwsh-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("step.out");
        let command = "$Env:VERSION = \"1.$(2 + 3)\"\nWrite-Host \"building $Env:VERSION\"";
        let script = crate::addon::build_script(ShellType::Pwsh, command, &["VERSION".to_string()], &file, false);
        let (c, o, e) = run(&script);
        assert_eq!((c, o.as_str(), e.as_str()), (0, "building 1.5\n", ""));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "VERSION 1.5\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn commands_as_values() {
        let (c, o, _) = run(
            "if (-not (Test-Path /nonexistent-sgsim)) { 'missing' }\n$n = (sh -c 'echo 3; echo 4')\n\"lines: $n $(sh -c 'echo x')\"\n$t = Test-Path /\n$t",
        );
        assert_eq!((c, o.as_str()), (0, "missing\nlines: 3 4 x\nTrue\n"));
    }

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

    #[test]
    fn command_line() {
        assert_eq!(
            main_with_args(&["-NoProfile".into(), "-Command".into(), "exit".into(), "5".into()]),
            5
        );
        assert_eq!(main_with_args(&[]), 64);
    }

    #[test]
    fn no_panic_on_odd_input() {
        for s in [
            "",
            "$",
            "${",
            "$(",
            "@(",
            "$x.",
            "$x.Split(",
            "$x[",
            "$x[1",
            "1 | Out",
            "$x.Substring(9, 9)",
            "if",
            "if (",
            "if ($x) {",
            "foreach (",
            "\"$(\"",
            "'",
            "`",
            "1..",
            "-",
            "&",
            "& $x",
            "}",
            ")",
            "$x =",
            "<#",
            "exit (",
            "\"`",
        ] {
            let _ = run(s);
        }
    }
}
