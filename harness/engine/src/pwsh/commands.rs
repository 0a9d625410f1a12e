//! Commands: the built-in cmdlets (Write-Host, New-Item, Add-Content, Test-Path, ...), their
//! `-Name value` arguments, and native programs from PATH.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;

use super::Pwsh;
use super::ast::Arg;
use super::error::Stop;
use super::value::Val;

/// Named parameters by lower-case name: `-Name value` (Some) or `-Switch` (None).
type Named = HashMap<String, Option<Val>>;

impl Pwsh<'_> {
    /// Arguments: positional values, and `-Name value` / `-Switch` parameters.
    fn args(&mut self, args: &[Arg]) -> Result<(Vec<Val>, Named), Stop> {
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

    pub(super) fn command(&mut self, name: &str, args: &[Arg]) -> Result<(), Stop> {
        let (mut pos, named) = self.args(args)?;
        let take = |named: &Named, pos: &mut Vec<Val>, keys: &[&str]| -> Option<Val> {
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

#[cfg(test)]
mod tests {
    use crate::pwsh::run_test_script as run;

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
}
