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

mod ast;
mod commands;
mod error;
mod eval;
mod parser;
mod value;

use std::io::Write;

pub use eval::Pwsh;
pub use value::Val;

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

/// Runs `script` in a session with PATH and `SGSIM_PWSH_T1` only: (exit code, stdout, stderr).
#[cfg(test)]
fn run_test_script(script: &str) -> (i32, String, String) {
    let env = std::collections::HashMap::from([
        ("PATH".to_string(), std::env::var("PATH").unwrap_or_default()),
        ("SGSIM_PWSH_T1".to_string(), "from env".to_string()),
    ]);
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = Pwsh::with_env(env, &mut o, &mut e).run(script);
    (code, String::from_utf8(o).unwrap(), String::from_utf8(e).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        assert_eq!(
            main_with_args(&["-NoProfile".into(), "-Command".into(), "exit".into(), "5".into()]),
            5
        );
        assert_eq!(main_with_args(&[]), 64);
    }
}
