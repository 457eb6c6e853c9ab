//! Rules of the code base that a reviewer would otherwise have to remember, checked by reading
//! the tree (rust-analyzer's `tidy` is the model). Each rule is a function of the files it
//! reads, and each is shown failing on a deliberately broken copy, so none passes by never
//! looking:
//!
//! - in the worker's non-test code a `Reason` is built only in `codes.rs`;
//! - the storage backends are told apart only in the worker's `storage.rs`;
//! - a crate depends only on the crates ARCHITECTURE.md's table allows (`cargo metadata`);
//! - the workspace's `rust-version` is the toolchain the README asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `.rs` files under `dir`, with the part of each before its unit tests (`#[cfg(test)]`).
fn non_test_sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                let text = read(&path);
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
                out.push((path, code));
            }
        }
    }
    out.sort();
    out
}

/// `file:line: text` of each line of the non-test code under `dir` (except the file named
/// `allowed`) that contains one of `needles`.
fn offending_lines(dir: &Path, allowed: &str, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in non_test_sources(dir) {
        if path.file_name().is_some_and(|n| n == allowed) {
            continue;
        }
        for (i, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            if needles.iter().any(|n| line.contains(n)) {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

/// Rule: the worker builds a `Reason` (a contract reason code with its message) only in
/// `codes.rs`, so "which code does this error get" has one answer.
fn reasons_built_outside_codes(worker_src: &Path) -> Vec<String> {
    offending_lines(worker_src, "codes.rs", &["Reason::new(", "Reason {"])
}

/// Rule: only `storage.rs` knows which backend holds a job's bytes.
fn storage_backends_matched_outside_storage(worker_src: &Path) -> Vec<String> {
    offending_lines(worker_src, "storage.rs", &["Storage::S3", "Storage::Local", "Backend::", "Layout::", ".s3()"])
}

/// The table between `<!-- tidy:dependencies -->` markers of ARCHITECTURE.md: for each crate
/// (folder name), the crates of ours it may depend on, normally and as dev-dependencies.
fn allowed_dependencies(architecture: &str) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let start =
        architecture.find("<!-- tidy:dependencies -->").expect("ARCHITECTURE.md has the tidy:dependencies table");
    let end = architecture.find("<!-- /tidy:dependencies -->").expect("the table's end marker");
    let names = |cell: &str| -> BTreeSet<String> {
        cell.split(',').map(str::trim).filter(|c| !c.is_empty() && *c != "—").map(str::to_owned).collect()
    };
    let mut table = BTreeMap::new();
    for line in architecture[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 3 || cells[0] == "crate" || cells[0].starts_with("---") {
            continue;
        }
        table.insert(cells[0].to_string(), (names(cells[1]), names(cells[2])));
    }
    table
}

/// The workspace's crates (folder names: `mediagate` for the binary, `worker` for
/// `mediagate-worker`) and their dependencies on each other, normal and dev, from `cargo
/// metadata`'s JSON.
fn actual_dependencies(metadata: &serde_json::Value) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let short = |name: &str| name.strip_prefix("mediagate-").unwrap_or(name).to_string();
    let mut out = BTreeMap::new();
    for p in metadata["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("package name");
        let (mut normal, mut dev) = (BTreeSet::new(), BTreeSet::new());
        for d in p["dependencies"].as_array().expect("dependencies") {
            let dep = d["name"].as_str().expect("dependency name");
            if dep != "mediagate" && !dep.starts_with("mediagate-") {
                continue;
            }
            match d["kind"].as_str() {
                Some("dev") => dev.insert(short(dep)),
                _ => normal.insert(short(dep)),
            };
        }
        out.insert(short(name), (normal, dev));
    }
    out
}

/// Rule: every dependency between our crates is one the table allows, and every crate is in it.
fn forbidden_dependencies(architecture: &str, metadata: &serde_json::Value) -> Vec<String> {
    let allowed = allowed_dependencies(architecture);
    let mut found = Vec::new();
    for (krate, (normal, dev)) in actual_dependencies(metadata) {
        let Some((may, may_dev)) = allowed.get(&krate) else {
            found.push(format!("{krate} is not in ARCHITECTURE.md's dependency table"));
            continue;
        };
        for d in normal.difference(may) {
            found.push(format!("{krate} depends on {d}, which ARCHITECTURE.md does not allow"));
        }
        for d in dev.difference(may_dev) {
            if !may.contains(d) {
                found.push(format!("{krate} has {d} as a dev-dependency, which ARCHITECTURE.md does not allow"));
            }
        }
    }
    found
}

fn cargo_metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

/// Rule: the workspace's `rust-version` is the toolchain README.md asks for ("toolchain ≥ X").
fn rust_version_mismatch(cargo_toml: &str, readme: &str) -> Option<String> {
    let declared = cargo_toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = \"").and_then(|r| r.strip_suffix('"')))
        .map(str::to_owned);
    let asked = readme.split("toolchain ≥ ").nth(1).map(|rest| {
        rest.chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect::<String>()
            .trim_end_matches('.')
            .to_string()
    });
    match (declared, asked) {
        (Some(d), Some(a)) if d == a => None,
        (d, a) => Some(format!("Cargo.toml's rust-version is {d:?}, the README asks for toolchain ≥ {a:?}")),
    }
}

#[test]
fn reasons_are_built_only_in_codes_rs() {
    let found = reasons_built_outside_codes(&root().join("crates/worker/src"));
    assert!(found.is_empty(), "build reasons in crates/worker/src/codes.rs:\n{}", found.join("\n"));
}

#[test]
fn storage_backends_are_told_apart_only_in_storage_rs() {
    let found = storage_backends_matched_outside_storage(&root().join("crates/worker/src"));
    assert!(found.is_empty(), "keep backend differences in crates/worker/src/storage.rs:\n{}", found.join("\n"));
}

#[test]
fn crates_depend_only_as_architecture_md_allows() {
    let found = forbidden_dependencies(&read(&root().join("ARCHITECTURE.md")), &cargo_metadata());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_rust_version_is_the_toolchain_the_readme_asks_for() {
    let found = rust_version_mismatch(&read(&root().join("Cargo.toml")), &read(&root().join("README.md")));
    assert_eq!(found, None);
}

/// A copy of the worker's sources to break.
fn worker_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, _) in non_test_sources(&root().join("crates/worker/src")) {
        let rel = path.strip_prefix(root().join("crates/worker/src")).expect("under src");
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&path, &to).expect("copy");
    }
    dir
}

fn break_file(path: &Path, code: &str) {
    let text = read(path);
    // Before the unit tests, where the rules look.
    let broken = match text.split_once("#[cfg(test)]") {
        Some((code_part, tests)) => format!("{code_part}{code}\n#[cfg(test)]{tests}"),
        None => format!("{text}\n{code}\n"),
    };
    std::fs::write(path, broken).expect("write");
}

#[test]
fn each_rule_fails_on_a_broken_copy() {
    // A reason built in item.rs.
    let copy = worker_copy();
    assert!(reasons_built_outside_codes(copy.path()).is_empty(), "the copy starts clean");
    break_file(
        &copy.path().join("item.rs"),
        "fn stray() -> Reason { Reason::new(ReasonCode::InputCorrupt, \"made here\") }",
    );
    let found = reasons_built_outside_codes(copy.path());
    assert!(found.len() == 1 && found[0].contains("item.rs"), "{found:?}");

    // A backend matched in job.rs.
    let copy = worker_copy();
    assert!(storage_backends_matched_outside_storage(copy.path()).is_empty(), "the copy starts clean");
    break_file(&copy.path().join("job.rs"), "fn stray(s: &Shared) -> bool { s.storage.s3().is_some() }");
    let found = storage_backends_matched_outside_storage(copy.path());
    assert!(found.len() == 1 && found[0].contains("job.rs"), "{found:?}");

    // media depending on worker, and a table that forgets a crate.
    let architecture = read(&root().join("ARCHITECTURE.md"));
    let mut metadata = cargo_metadata();
    assert!(forbidden_dependencies(&architecture, &metadata).is_empty(), "the real tree is clean");
    let media = metadata["packages"]
        .as_array_mut()
        .expect("packages")
        .iter_mut()
        .find(|p| p["name"] == "mediagate-media")
        .expect("mediagate-media");
    media["dependencies"]
        .as_array_mut()
        .expect("dependencies")
        .push(serde_json::json!({"name": "mediagate-worker", "kind": null}));
    let found = forbidden_dependencies(&architecture, &metadata);
    assert_eq!(found, ["media depends on worker, which ARCHITECTURE.md does not allow"]);
    let without_ledger = architecture.replace("| ledger | store, queue | testkit |\n", "");
    let found = forbidden_dependencies(&without_ledger, &cargo_metadata());
    assert!(found.iter().any(|f| f == "ledger is not in ARCHITECTURE.md's dependency table"), "{found:?}");

    // A README that asks for another toolchain.
    let cargo_toml = read(&root().join("Cargo.toml"));
    let readme = read(&root().join("README.md"));
    assert_eq!(rust_version_mismatch(&cargo_toml, &readme), None);
    let older = readme.replacen("toolchain ≥ ", "toolchain ≥ 1.80 (was ", 1);
    assert!(rust_version_mismatch(&cargo_toml, &older).is_some());
}
