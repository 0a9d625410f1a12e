//! `sgsim-pwsh`: installed as `pwsh` in sgsim's stand-in for PowerShell images (see
//! `sgsim_engine::pwsh` for the language subset).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(sgsim_engine::pwsh::main_with_args(&args));
}
