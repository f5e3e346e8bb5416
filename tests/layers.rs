//! The layers written at the top of `src/lib.rs`, held by a test: the code of each layer names
//! (`crate::<module>`) only modules of its own layer or the layers below it. An import the
//! other way fails here, so the layering is a fact of the build rather than a hope of the docs.
//!
//! Unit tests may reach up (a wire test builds an entry through the registry's spec), so a
//! file's `#[cfg(test)]` tail and files named `tests.rs` or under a `tests/` folder are skipped.

use std::fs;
use std::path::{Path, PathBuf};

const VOCABULARY: &[&str] = &[
    "names",
    "time",
    "duration",
    "stable_hash",
    "bounded",
    "record",
];
const WIRE: &[&str] = &["wire"];
const DATA: &[&str] = &["swim", "registry", "timers", "stats", "config"];
const NODE: &[&str] = &["node"];

/// Each module (a file or a folder under `src/`) and the layers its code may use.
fn allowed(module: &str) -> Option<Vec<&'static str>> {
    let layers: &[&[&str]] = match module {
        // `record` is built of the rest of the vocabulary; the rest uses nothing above itself.
        "record" => &[VOCABULARY],
        m if VOCABULARY.contains(&m) => &[&["names", "time", "duration", "stable_hash", "bounded"]],
        m if WIRE.contains(&m) => &[VOCABULARY, WIRE],
        m if DATA.contains(&m) => &[VOCABULARY, WIRE, DATA],
        m if NODE.contains(&m) => &[VOCABULARY, WIRE, DATA, NODE],
        _ => return None,
    };
    Some(layers.iter().flat_map(|l| l.iter().copied()).collect())
}

fn rust_files(at: &Path, out: &mut Vec<PathBuf>) {
    if at.is_file() {
        if at.extension().is_some_and(|e| e == "rs") {
            out.push(at.to_path_buf());
        }
        return;
    }
    for entry in fs::read_dir(at).expect("readable src dir") {
        let path = entry.expect("dir entry").path();
        if path.file_name().is_some_and(|n| n == "tests") {
            continue;
        }
        rust_files(&path, out);
    }
}

/// The module names `code` reaches through `crate::`, outside comments and outside the item
/// that follows each `#[cfg(test)]` (a `mod x;` line, or a `mod x { ... }` block, followed to
/// its closing brace), so code after a test module is still checked.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut skipping = false;
    let mut entered = false;
    let mut depth = 0usize;
    for (number, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            (skipping, entered, depth) = (true, false, 0);
            continue;
        }
        if skipping {
            let opens = line.matches('{').count();
            entered |= opens > 0;
            depth = (depth + opens).saturating_sub(line.matches('}').count());
            // The item ends when its block closes, or at a `;` if it has no block.
            if depth == 0 && (entered || line.trim_end().ends_with(';')) {
                skipping = false;
            }
            continue;
        }
        let code_part = line.split("//").next().unwrap_or("");
        let mut rest = code_part;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((number + 1, name));
            }
        }
    }
    found
}

#[test]
fn no_layer_of_the_core_names_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for entry in fs::read_dir(&src).expect("src/") {
        let path = entry.expect("dir entry").path();
        let module = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let Some(may_use) = allowed(&module) else {
            continue;
        };
        let mut files = Vec::new();
        rust_files(&path, &mut files);
        for file in files {
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            checked += 1;
            let code = fs::read_to_string(&file).expect("readable source");
            for (line, used) in crate_paths(&code) {
                // `crate::Node` and other re-exports at the root are the node layer's face.
                let used_module = if used.starts_with(|c: char| c.is_ascii_uppercase()) {
                    "node".to_string()
                } else {
                    used
                };
                if !may_use.contains(&used_module.as_str()) {
                    violations.push(format!(
                        "{}:{line}: layer `{module}` uses `crate::{used_module}`",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    // Every core module was looked at: a rename cannot make this test pass by finding nothing.
    assert!(checked > 40, "only {checked} core files found under src/");
    assert!(
        violations.is_empty(),
        "imports against the layers of src/lib.rs:\n{}",
        violations.join("\n")
    );
}

#[test]
fn an_upward_import_is_reported() {
    let code = "use crate::names::NodeName;\nuse crate::registry::Entry; // why\n#[cfg(test)]\nmod tests {\n    use crate::node::Node;\n    fn f() {}\n}\nuse crate::runtime::App;\n";
    let found = crate_paths(code);
    assert_eq!(
        found,
        vec![
            (1, "names".to_string()),
            (2, "registry".to_string()),
            (8, "runtime".to_string())
        ]
    );
    let wire = allowed("wire").expect("wire is a layer");
    assert!(!wire.contains(&"registry"));
    assert!(wire.contains(&"record"));
}
