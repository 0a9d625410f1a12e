//! How a step becomes a program to run: the script around a Run step's command (early-exit
//! prologue, one line per output variable), the shell that runs it, a plugin's entrypoint, the
//! timeout, and reading the output-variable file back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{EngineError, Result};
use crate::proto::engine::{PluginStep, RunStep, ShellType};

/// The product's default execution timeout of a run step (4 hours).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(14_400);

/// What to start for a step.
pub(super) struct Plan {
    pub(super) argv: Vec<String>,
    pub(super) env: HashMap<String, String>,
    pub(super) timeout: Duration,
    pub(super) detach: bool,
    pub(super) output_vars: Vec<String>,
    pub(super) output_file: PathBuf,
}

fn shell_of(shell: ShellType) -> (&'static str, &'static str) {
    match shell {
        ShellType::Sh => ("sh", "-c"),
        ShellType::Bash => ("bash", "-c"),
        ShellType::Powershell => ("powershell", "-Command"),
        ShellType::Pwsh => ("pwsh", "-Command"),
        ShellType::Python => ("python3", "-c"),
    }
}

/// The script run for a Run step (see the module docs).
pub fn build_script(
    shell: ShellType,
    command: &str,
    output_vars: &[String],
    output_file: &Path,
    detach: bool,
) -> String {
    let file = output_file.display();
    let prologue = match shell {
        ShellType::Sh | ShellType::Bash => "set -e\n",
        ShellType::Powershell | ShellType::Pwsh => "$ErrorActionPreference = 'Stop' \n",
        ShellType::Python => "",
    };
    let mut script = format!("{prologue}{command}");
    if detach {
        return script;
    }
    script.push(' ');
    match shell {
        ShellType::Powershell | ShellType::Pwsh => {
            script.push_str(&format!("\nNew-Item {file}"));
            for v in output_vars {
                script.push_str(&format!(
                    "\n$val = \"{v} $Env:{v}\" \nAdd-Content -Path {file} -Value $val"
                ));
            }
        }
        ShellType::Python => {
            script.push_str("\nimport os\n");
            for v in output_vars {
                script.push_str(&format!(
                    "with open('{file}', 'a') as out_file:\n\tout_file.write('{v} ' + os.getenv('{v}') + '\\n')\n"
                ));
            }
        }
        ShellType::Sh | ShellType::Bash => {
            for v in output_vars {
                script.push_str(&format!("\necho \"{v} ${v}\" >> {file}"));
            }
        }
    }
    script
}

pub(super) fn plan_run(id: &str, r: RunStep, tmp: &Path) -> Result<Plan> {
    let shell = ShellType::try_from(r.shell_type).map_err(|_| EngineError::UnknownShell(r.shell_type))?;
    let output_file = tmp.join(format!("{id}.out"));
    let argv = if !r.entrypoint.is_empty() {
        r.entrypoint.clone()
    } else if !(r.detach && r.command.is_empty()) {
        let script = build_script(shell, &r.command, &r.env_var_outputs, &output_file, r.detach);
        let (sh, flag) = shell_of(shell);
        vec![sh.to_string(), flag.to_string(), script]
    } else {
        return Err(EngineError::NoCommand {
            step: id.to_string(),
            image: r.image,
        });
    };
    Ok(Plan {
        argv,
        env: r.environment.into_iter().collect(),
        timeout: timeout_of(r.context.map(|c| c.execution_timeout_secs)),
        detach: r.detach,
        output_vars: if r.detach { Vec::new() } else { r.env_var_outputs },
        output_file,
    })
}

pub(super) fn plan_plugin(id: &str, p: PluginStep, tmp: &Path) -> Result<Plan> {
    if p.entrypoint.is_empty() {
        return Err(EngineError::PluginWithoutEntrypoint {
            step: id.to_string(),
            image: p.image,
        });
    }
    Ok(Plan {
        argv: p.entrypoint,
        env: p.environment.into_iter().collect(),
        timeout: timeout_of(p.context.map(|c| c.execution_timeout_secs)),
        detach: false,
        output_vars: Vec::new(),
        output_file: tmp.join(format!("{id}.out")),
    })
}

fn timeout_of(secs: Option<i64>) -> Duration {
    match secs {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    }
}

/// Parses `NAME value` lines; only the requested names are kept (last line wins).
pub fn parse_outputs(content: &str, wanted: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in content.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        if wanted.iter().any(|w| w == name) {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_script_has_set_e_and_output_capture() {
        let s = build_script(
            ShellType::Sh,
            "echo hi",
            &["A".into(), "B".into()],
            Path::new("/t/x.out"),
            false,
        );
        assert_eq!(
            s,
            "set -e\necho hi \necho \"A $A\" >> /t/x.out\necho \"B $B\" >> /t/x.out"
        );
        let d = build_script(ShellType::Bash, "sleep 1", &["A".into()], Path::new("/t/x.out"), true);
        assert_eq!(d, "set -e\nsleep 1");
    }

    #[test]
    fn python_script_writes_outputs() {
        let s = build_script(ShellType::Python, "x=1", &["V".into()], Path::new("/t/s.out"), false);
        assert!(s.starts_with("x=1 \nimport os\nwith open('/t/s.out', 'a') as out_file:\n"));
        assert!(s.contains("out_file.write('V ' + os.getenv('V') + '\\n')"));
    }

    #[test]
    fn outputs_parse() {
        let o = parse_outputs(
            "A 1\nB two words\nC\nZ no\nA 3\n",
            &["A".into(), "B".into(), "C".into()],
        );
        assert_eq!(o.get("A").map(String::as_str), Some("3"));
        assert_eq!(o.get("B").map(String::as_str), Some("two words"));
        assert_eq!(o.get("C").map(String::as_str), Some(""));
        assert!(!o.contains_key("Z"));
    }
}
