//! The `sgsim` binary. All the work is in the `sgsim_cli` library.

fn main() {
    let code = sgsim_cli::main_impl();
    sgsim_cli::finish_process();
    std::process::exit(code);
}
