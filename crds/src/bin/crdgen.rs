//! Writes `config/crd/*.yaml` (the CRDs generated from oxelb's types) and assembles the all-in-one
//! `config/oxelb.yaml`.
//!
//! Usage: `cargo run -p oxelb-crds --bin crdgen [-- --check] [--config-dir DIR]`. With `--check`
//! nothing is written; the exit status is 1 if a committed file differs from what would be written.

use std::path::PathBuf;
use std::process::ExitCode;

use oxelb_crds::manifests::{self, CRDGEN_COMMAND};

const USAGE: &str = "usage: crdgen [--check] [--config-dir DIR]\n\
  writes config/crd/*.yaml and config/oxelb.yaml (DIR defaults to the workspace's config/)\n\
  --check  write nothing; fail if a file is stale";

fn main() -> ExitCode {
    let mut check = false;
    let mut config_dir = manifests::default_config_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--config-dir" => match args.next() {
                Some(dir) => config_dir = PathBuf::from(dir),
                None => {
                    eprintln!("crdgen: --config-dir needs a directory\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("crdgen: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    if check {
        return match manifests::stale_files(&config_dir) {
            Ok(stale) if stale.is_empty() => ExitCode::SUCCESS,
            Ok(stale) => {
                for path in stale {
                    eprintln!(
                        "crdgen: {} is stale or missing; run `{CRDGEN_COMMAND}` and commit the result",
                        config_dir.join(path).display()
                    );
                }
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("crdgen: {err}");
                ExitCode::FAILURE
            }
        };
    }

    let files = match manifests::generated_files(&config_dir) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("crdgen: {err}; nothing was written");
            return ExitCode::FAILURE;
        }
    };
    for (relative, content) in files {
        let path = config_dir.join(&relative);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, content));
        if let Err(err) = written {
            eprintln!("crdgen: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("crdgen: wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
