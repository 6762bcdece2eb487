//! Embeds `sql/*.sql` and `schemas/marts/*.toml` in the binary, so a scheduled run does not depend on
//! the working directory (models can still be overridden by a folder at run
//! time, see `[transform] models_dir`).

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
            .to_path_buf();
    embed(
        &root.join("sql"),
        "sql",
        "builtin_models.rs",
        "/// Models compiled in from `sql/`: (file stem, SQL text).\npub const BUILTIN_MODELS",
    );
    embed(
        &root.join("schemas").join("marts"),
        "toml",
        "builtin_mart_docs.rs",
        "/// Documentation of the marts Rust jobs write, from `schemas/marts/`: (file stem, TOML text).\npub const BUILTIN_MART_DOCS",
    );
}

/// Writes `OUT_DIR/<dest>`: a const slice of (file stem, contents) of every
/// `*.<ext>` file in `dir`, sorted by name.
fn embed(dir: &Path, ext: &str, dest: &str, item: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    let mut out = format!("{item}: &[(&str, &str)] = &[\n");
    for p in &entries {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file names are UTF-8");
        writeln!(
            out,
            "    ({stem:?}, include_str!({:?})),",
            p.display().to_string()
        )
        .expect("write to String");
    }
    out.push_str("];\n");
    let path = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(dest);
    std::fs::write(path, out).expect("write the embedded file list");
}
