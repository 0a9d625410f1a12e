//! `sgsim-fuzz`: runs the fuzz targets (see the library docs) and prints a table; exit 1 when
//! anything was found. `scripts/fuzz` is the usual way in.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sgsim_fuzz::driver::{self, Options};
use sgsim_fuzz::targets;

#[derive(Debug, Parser)]
#[command(name = "sgsim-fuzz", about = "sgsim's fuzzers (stable toolchain)")]
struct Args {
    /// Targets to run (default: all of scenario, normalize, apiserver).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Mutated inputs per target.
    #[arg(long, default_value_t = 1_000_000)]
    runs: u64,
    /// Seed of the mutation engine (a run is replayable from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where findings go.
    #[arg(long, default_value = "target/fuzz")]
    out: PathBuf,
    /// The repository whose scenarios/ and golden/ seed the corpora.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Stop a target after this many distinct findings.
    #[arg(long, default_value_t = 20)]
    max_findings: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<String> = if args.targets.is_empty() {
        targets::NAMES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.targets.clone()
    };
    let mut chosen = Vec::new();
    for n in &names {
        match targets::by_name(n, &args.repo) {
            Some(t) => chosen.push(t),
            None => {
                eprintln!(
                    "sgsim-fuzz: unknown target `{n}` (targets: {})",
                    targets::NAMES.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    driver::install_quiet_hook();
    let opts = Options {
        runs: args.runs,
        seed: args.seed,
        out: args.out.clone(),
        max_findings: args.max_findings,
    };
    let mut reports = Vec::new();
    for t in &mut chosen {
        let rep = driver::run(t.as_mut(), &opts, &mut |r| {
            eprint!(
                "\r{:<10} {:>9} inputs  {:>7.0}/s  corpus {:>5}  outcomes {:>5}  findings {}",
                r.target,
                r.runs,
                r.runs as f64 / r.elapsed.as_secs_f64().max(1e-9),
                r.corpus,
                r.signatures,
                r.findings.len()
            );
            let _ = std::io::stderr().flush();
        });
        eprintln!();
        reports.push(rep);
    }
    println!("| target | inputs | inputs/s | corpus | outcomes | findings | seconds |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut found = 0;
    for r in &reports {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.1} |",
            r.target,
            r.runs,
            r.runs as f64 / r.elapsed.as_secs_f64().max(1e-9),
            r.corpus,
            r.signatures,
            r.findings.len(),
            r.elapsed.as_secs_f64()
        );
        found += r.findings.len();
    }
    for r in &reports {
        for f in &r.findings {
            println!("FINDING {}: {} (input: {})", r.target, f.message, f.file.display());
        }
    }
    if found > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
