//! The `sgsim` binary. All the work is in the `sgsim_cli` library.

fn main() {
    std::process::exit(sgsim_cli::main_impl());
}
