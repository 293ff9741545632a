//! Links libmobilellm: the directory of $MOBILELLM_LIBRARY (a path to libmobilellm.so), else the repository's
//! .build/release. An rpath lets tests and examples run without LD_LIBRARY_PATH.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=MOBILELLM_LIBRARY");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let directory = match std::env::var("MOBILELLM_LIBRARY") {
        Ok(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            path.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("."))
        }
        _ => manifest.join("../../.build/release"),
    };
    let directory = directory.canonicalize().unwrap_or(directory);
    println!("cargo:rustc-link-search=native={}", directory.display());
    println!("cargo:rustc-link-lib=dylib=mobilellm");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", directory.display());
    println!("cargo:rerun-if-changed={}", directory.join("libmobilellm.so").display());
}
