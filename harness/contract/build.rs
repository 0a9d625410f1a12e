//! Builds the double's gRPC code from the ```` ```proto file=NAME ```` blocks of docs/protocol.md
//! and from nothing else: the page is the contract.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let doc = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../docs/protocol.md");
    println!("cargo:rerun-if-changed={}", doc.display());
    let text = std::fs::read_to_string(&doc)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("protocol");
    std::fs::create_dir_all(&out)?;
    let mut files = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match &mut current {
            None => {
                if let Some(name) = line.strip_prefix("```proto file=") {
                    current = Some((name.trim().to_string(), String::new()));
                }
            }
            Some((name, body)) => {
                if line.trim_start().starts_with("```") {
                    std::fs::write(out.join(&*name), &*body)?;
                    files.push(name.clone());
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    if files.is_empty() {
        return Err("docs/protocol.md has no ```proto file=NAME blocks".into());
    }
    let fds = protox::compile(&files, [&out])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
