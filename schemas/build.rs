//! Embeds every schema file under `json/` into the crate, so the validator needs no files at run
//! time and adding a schema file is all it takes to publish a new type or version.

use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    // A catalogue built without its files would refuse every event as of an unknown type.
    let areas =
        fs::read_dir(&root).unwrap_or_else(|e| panic!("cannot read the schema files in {}: {e}", root.display()));
    for area in areas.flatten() {
        println!("cargo:rerun-if-changed={}", area.path().display());
        let Ok(files) = fs::read_dir(area.path()) else { continue };
        for file in files.flatten() {
            let path = file.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            // <entity>.<action>.v<N>.json
            let Some(stem) = name.strip_suffix(".json") else { continue };
            let parts: Vec<&str> = stem.split('.').collect();
            if parts.len() != 3 || !parts[2].starts_with('v') {
                panic!("schema file {} is not named <entity>.<action>.v<N>.json", path.display());
            }
            let version: u32 = parts[2][1..].parse().unwrap_or_else(|_| panic!("bad version in {}", path.display()));
            let area_name = area.file_name().to_string_lossy().to_string();
            entries.push((format!("se.sgd.{area_name}.{}.{}", parts[0], parts[1]), version, path));
        }
    }
    assert!(!entries.is_empty(), "no schema files in {}", root.display());
    entries.sort();
    let mut out = String::from("/// Every schema file: (event type, version, schema text).\npub static SCHEMA_FILES: &[(&str, u32, &str)] = &[\n");
    for (ty, version, path) in &entries {
        out.push_str(&format!("    ({ty:?}, {version}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("schema_files.rs");
    fs::write(dest, out).expect("write schema_files.rs");
}
