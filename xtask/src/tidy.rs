//! Tidy checks: Spate crates depend only downward, and every `.rs` file opens with a `//!` line.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The layering, lowest first. A crate may depend only on crates listed before it.
/// `spate-macros` is a proc-macro crate and may depend on no Spate crate at all.
const LAYERS: &[&str] = &[
    "spate-storage",
    "spate-core",
    "spate-streaming",
    "spate-receivers",
];
const TOP: &[&str] = &["spate-examples", "xtask"];

fn spate_deps(manifest: &toml::Table, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The macro crate's compile tests build jobs against the runtime crates: only its build and
    // runtime dependencies must be free of Spate crates.
    let sections: &[&str] = if name == "spate-macros" {
        &["dependencies", "build-dependencies"]
    } else {
        &["dependencies", "dev-dependencies", "build-dependencies"]
    };
    for section in sections {
        if let Some(deps) = manifest.get(*section).and_then(|d| d.as_table()) {
            out.extend(deps.keys().filter(|k| k.starts_with("spate-")).cloned());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Checks one crate's Spate dependencies against the layering; returns the problems found.
pub(crate) fn check_edges(name: &str, deps: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if name == "spate-macros" {
        for d in deps {
            problems.push(format!(
                "spate-macros must not depend on a Spate crate, but depends on {d}"
            ));
        }
        return problems;
    }
    if TOP.contains(&name) {
        return problems;
    }
    let Some(level) = LAYERS.iter().position(|l| *l == name) else {
        problems.push(format!(
            "crate {name} is not in the layering (xtask/src/tidy.rs LAYERS): add it"
        ));
        return problems;
    };
    for d in deps {
        match LAYERS.iter().position(|l| l == d) {
            Some(l) if l < level => {}
            Some(_) => problems.push(format!(
                "{name} depends on {d}, which is not below it ({})",
                LAYERS.join(" <- ")
            )),
            None if d == "spate-macros" && name == "spate-streaming" => {}
            None => problems.push(format!(
                "{name} depends on {d}, which only crates above the layering may use"
            )),
        }
    }
    problems
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name == "target" || name.starts_with('.') {
                continue;
            }
            rust_files(&path, out)?;
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs every tidy check over the repository at `root`.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut manifests = vec![root.join("xtask/Cargo.toml")];
    for entry in std::fs::read_dir(root.join("crates"))? {
        let m = entry?.path().join("Cargo.toml");
        if m.exists() {
            manifests.push(m);
        }
    }
    for m in manifests {
        let text =
            std::fs::read_to_string(&m).with_context(|| format!("reading {}", m.display()))?;
        let manifest: toml::Table = text
            .parse()
            .with_context(|| format!("parsing {}", m.display()))?;
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .with_context(|| format!("{} has no package name", m.display()))?
            .to_string();
        problems.extend(check_edges(&name, &spate_deps(&manifest, &name)));
    }
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files)?;
    rust_files(&root.join("xtask"), &mut files)?;
    for f in files {
        // trybuild inputs are deliberately minimal user programs; they are exempt.
        if f.components().any(|c| c.as_os_str() == "ui") {
            continue;
        }
        let text = std::fs::read_to_string(&f)?;
        if !text.starts_with("//!") {
            problems.push(format!(
                "{} does not start with a `//!` line saying what it is for",
                f.display()
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy() {
        let problems = check(&crate::project_root()).unwrap();
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn upward_and_macro_edges_are_rejected() {
        assert!(check_edges("spate-core", &["spate-storage".into()]).is_empty());
        assert_eq!(
            check_edges("spate-storage", &["spate-core".into()]).len(),
            1
        );
        assert_eq!(
            check_edges("spate-core", &["spate-receivers".into()]).len(),
            1
        );
        assert_eq!(
            check_edges("spate-macros", &["spate-storage".into()]).len(),
            1
        );
        assert!(check_edges("spate-examples", &["spate-receivers".into()]).is_empty());
    }
}
