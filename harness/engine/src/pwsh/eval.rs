//! The evaluator: a session's state (variables, environment, output streams), statements and
//! expressions, and how errors stop a script.

use std::collections::HashMap;
use std::io::Write;

use super::ast::{Expr, Part, Stmt, Target};
use super::error::Stop;
use super::parser::Parser;
use super::value::{Val, binary, member};

/// The interpreter's state.
pub struct Pwsh<'a> {
    pub(super) vars: HashMap<String, Val>,
    /// The environment (`$Env:`), passed to native commands.
    pub(super) env: HashMap<String, String>,
    pub(super) out: &'a mut dyn Write,
    pub(super) err: &'a mut dyn Write,
    pub(super) last_ok: bool,
    /// Output of `( command )` / `$( command )` being collected as values instead of printed.
    pub(super) captures: Vec<Vec<Val>>,
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
    pub(super) fn error(&mut self, msg: String) -> Result<(), Stop> {
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
    pub(super) fn emit(&mut self, v: &Val) {
        if let Some(top) = self.captures.last_mut() {
            top.extend(v.clone().items());
            return;
        }
        for item in v.clone().items() {
            let _ = writeln!(self.out, "{}", item.text());
        }
    }

    pub(super) fn eval(&mut self, e: &Expr) -> Result<Val, Stop> {
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
                member(&v, name, args.is_some(), &vals)?
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
                binary(op, a, b)?
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
}

#[cfg(test)]
mod tests {
    use crate::pwsh::run_test_script as run;

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
}
