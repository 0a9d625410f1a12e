//! `sgsim images list|build|prune`: the stand-in images, their tags and the vendor names they
//! stand in for.

use clap::Subcommand;
use sgsim_cluster::images::{self, BuildEvent, BuiltImages, ImageCatalog};

use crate::{exit, input};

/// `sgsim images` actions.
#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Show every stand-in image: tag, whether the Docker daemon has it, and the vendor names
    /// (patterns) it stands in for.
    List,
    /// Build the stand-in images that are missing or out of date (scripts/build-images.sh).
    Build,
    /// Remove older sgsim/<name>:* tags no container uses (the current ones stay), and the
    /// registry blob cache's entries of images the daemon no longer has.
    Prune,
    /// Each image the scenarios' pods name, with the local image sgsim runs for it
    /// (`<image> <local tag>` per line, sgsim's relay included): what to load into a cluster that
    /// runs sgsim's stand-ins under the product's names (scripts/kind-load).
    Standins {
        /// Scenario directories (or scenario.yaml / pipeline files).
        #[arg(required = true)]
        scenarios: Vec<std::path::PathBuf>,
    },
}

/// Runs an `images` action; returns the exit code.
pub fn cmd_images(action: &ImagesAction) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::INFRASTRUCTURE;
        }
    };
    rt.block_on(async {
        let repo = input::repo_root();
        let progress = |e: BuildEvent| match e {
            BuildEvent::Progress(line) => eprintln!("{line}"),
            BuildEvent::Building { reason } => eprintln!("building images: {reason}"),
            BuildEvent::Finished { took } => {
                eprintln!("images built in {:.1}s", took.as_secs_f64())
            }
            BuildEvent::UpToDate => eprintln!("images are up to date"),
        };
        let built = match action {
            ImagesAction::List => BuiltImages::from_file(&images::images_env_file(&repo)).unwrap_or_default(),
            ImagesAction::Build | ImagesAction::Prune | ImagesAction::Standins { .. } => {
                match images::ensure_built(&repo, &progress).await {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
                        return exit::INFRASTRUCTURE;
                    }
                }
            }
        };
        if let ImagesAction::Prune = action {
            match images::prune_host(&built).await {
                Ok(removed) => {
                    for t in &removed {
                        println!("removed {t}");
                    }
                    println!("{} old tag(s) removed", removed.len());
                }
                Err(e) => {
                    eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
                    return exit::INFRASTRUCTURE;
                }
            }
            match sgsim_cluster::registry::prune_unused_blob_cache().await {
                Ok(removed) => println!(
                    "{} registry blob cache entr{} removed from {}",
                    removed.len(),
                    if removed.len() == 1 { "y" } else { "ies" },
                    sgsim_cluster::registry::blob_cache_root().display()
                ),
                Err(e) => {
                    eprintln!("error: {}", sgsim_cluster::docker::error_chain(&e));
                    return exit::INFRASTRUCTURE;
                }
            }
            return exit::OK;
        }
        if let ImagesAction::Standins { scenarios } = action {
            return standins(&built, scenarios);
        }
        list(&built).await;
        exit::OK
    })
}

/// `sgsim images standins`: the image → local image table of the scenarios' pods.
fn standins(built: &BuiltImages, scenarios: &[std::path::PathBuf]) -> i32 {
    let cwd = std::env::current_dir().unwrap_or_default();
    let catalog = ImageCatalog::builtin(built);
    let mut rows = std::collections::BTreeMap::new();
    if let Some(relay) = built.get("relay") {
        rows.insert(relay.to_string(), relay.to_string());
    }
    let mut code = exit::OK;
    for arg in scenarios {
        let sc = match input::load_in(&cwd, arg, &Default::default()).map(|i| i.scenario) {
            Ok(Ok(sc)) => sc,
            Ok(Err(e)) => {
                eprintln!("{}: {e}", arg.display());
                code = exit::USAGE;
                continue;
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::USAGE;
                continue;
            }
        };
        let spec = sgsim_core::render_pod(&sc).spec.unwrap_or_default();
        for c in spec.init_containers.iter().flatten().chain(&spec.containers) {
            if let Some(image) = &c.image {
                rows.insert(image.clone(), catalog.resolve(image).local);
            }
        }
    }
    for (image, local) in rows {
        println!("{image} {local}");
    }
    code
}

async fn list(built: &BuiltImages) {
    let host = sgsim_cluster::docker::host_docker().await.ok();
    let catalog = ImageCatalog::builtin(built);
    println!("{:<14} {:<32} {:<8} STANDS IN FOR", "STAND-IN", "TAG", "PRESENT");
    for name in images::IMAGE_NAMES {
        let tag = built.get(name).unwrap_or("(not built)");
        let present = match (&host, built.get(name)) {
            (None, _) => "?",
            (Some(h), Some(t)) if h.inspect_image(t).await.is_ok() => "yes",
            _ => "no",
        };
        let mut vendors: Vec<&str> = catalog.rules().filter(|(_, s)| s == name).map(|(p, _)| p).collect();
        match *name {
            "busybox" => vendors.push("(any image the catalog does not know)"),
            "pause" => vendors.push("(the pod sandbox)"),
            "node" => vendors.push("(a Kubernetes node)"),
            "registry" => vendors.push("(the run's registries: Docker Hub mirror, private registries)"),
            "debian-docker" => vendors.push("(base of node and dind)"),
            _ => {}
        }
        println!("{name:<14} {tag:<32} {present:<8} {}", vendors.join(", "));
    }
}
