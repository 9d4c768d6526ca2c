//! The layer drawing of the crate, checked: every `crate::…` path in `src/` must point to a module on
//! a lower layer than its own, and the outside crates that one module owns (SQL, josekit, the HTTP
//! framework) appear nowhere else. Compiled for tests only; it reads the source tree with `std::fs`.
//!
//! Files inside one top-level module may use each other freely: each such folder is one idea. Today
//! five have cycles among their files: `oidc/` (the `Provider` in `mod.rs` and the flows that
//! call back into it), `routes/`, `storage/` and `wecom/` (each `mod.rs` with the files that
//! share its helpers), and the simulator's `control`, `events` and `state`.
//!
//! `main.rs` stands above everything and is not checked: it names the library as `wecom_oidc::`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Top to bottom. A module may use modules on lower lines only; modules on one line do not use each
/// other. `simulator` is an island: it plays WeCom, takes only the event cipher from `wecom`, and
/// only `demo` (and the tests) start it.
const LAYERS: &[&[&str]] = &[
    &["demo"],
    &["startup", "simulator"],
    &["console"],
    &["check", "health"],
    &["registry"],
    &["routes"],
    &["limits"],
    &["oidc"],
    &["keys", "telemetry"],
    &["storage"],
    &["wecom", "pages"],
    &["config"],
    &["domain"],
    &[
        "clock",
        "crypto",
        "outbound",
        "limit_settings",
        "key_timing",
        "event_keys",
    ],
];

/// Outside crates that belong to a few modules: SQL lives only in `storage`, josekit only in `keys`,
/// and the protocol below the HTTP adapter never sees actix-web.
const OWNED_CRATES: &[(&str, &[&str])] = &[
    ("sqlx", &["storage"]),
    ("josekit", &["keys"]),
    (
        "actix_web",
        &[
            "demo",
            "startup",
            "simulator",
            "console",
            "registry",
            "routes",
            "limits",
            "telemetry",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|line| line.contains(&module))
}

/// The source with comments removed, so that a doc comment naming a module is not a use of it.
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`, including `crate::{a, b::c}`.
fn crate_uses(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let preceded_by_ident = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        if preceded_by_ident {
            continue;
        }
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        used.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            used.insert(ident(after));
        }
    }
    used.retain(|m| !m.is_empty() && m != "self");
    used
}

/// Whether the code names `krate` as a path (`krate::…`), not as part of a longer name.
fn names_crate(code: &str, krate: &str) -> bool {
    code.match_indices(&format!("{krate}::")).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// Every rule broken by one file of module `owner`, as readable lines.
fn violations(owner: &str, file: &str, text: &str) -> Vec<String> {
    let Some(own) = layer_of(owner) else {
        return vec![format!(
            "{file}: module `{owner}` is on no layer; add it to LAYERS in src/layers.rs"
        )];
    };
    let code = code_of(text);
    let mut found = Vec::new();
    for used in crate_uses(&code) {
        if used == owner {
            continue;
        }
        match layer_of(&used) {
            Some(layer) if layer > own => {}
            Some(_) => found.push(format!(
                "{file}: `{owner}` uses `crate::{used}`, which is not on a lower layer"
            )),
            None => found.push(format!(
                "{file}: uses `crate::{used}`, which is on no layer; add it to LAYERS"
            )),
        }
    }
    for (krate, owners) in OWNED_CRATES {
        if !owners.contains(&owner) && names_crate(&code, krate) {
            found.push(format!(
                "{file}: `{owner}` names `{krate}`, which only {owners:?} may use"
            ));
        }
    }
    found
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn sources(src: &Path, dir: &Path, out: &mut Vec<(String, String, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(src, &path, out);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let relative = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // This file spells upward imports in its own test cases on purpose.
        if ["lib.rs", "main.rs", "layers.rs"].contains(&relative.as_str()) {
            continue;
        }
        let owner = relative
            .split(['/', '\\'])
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = fs::read_to_string(&path).unwrap();
        out.push((owner, relative, text));
    }
}

#[test]
fn imports_only_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 50, "the source tree was not found");

    let found: Vec<String> = files
        .iter()
        .flat_map(|(owner, file, text)| violations(owner, file, text))
        .collect();

    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn an_upward_import_in_any_spelling_is_caught() {
    let cases = [
        ("config", "use crate::routes::AppState;"),
        ("config", "let p = crate::oidc::endpoints::TOKEN_PATH;"),
        ("storage", "use crate::{clock::Clock, keys::KeyManager};"),
        ("oidc", "use crate::{\n    routes::{self, AppState},\n};"),
        ("domain", "use crate::domain::group;\nuse crate::wecom;"),
        ("oidc", "use crate::storage::Store;\nuse crate::limits;"),
        ("keys", "use crate::keys::x;\nuse crate::nowhere::x;"),
        ("nowhere", "use crate::clock::Clock;"),
        ("oidc", "use actix_web::HttpRequest;"),
        ("routes", "let row = sqlx::query(\"SELECT 1\");"),
    ];
    for (owner, text) in cases {
        assert_eq!(
            violations(owner, "case.rs", text).len(),
            1,
            "{owner}: {text}"
        );
    }
}

#[test]
fn downward_imports_comments_and_longer_names_pass() {
    let cases = [
        (
            "routes",
            "use crate::oidc::{Params, Provider};\nuse crate::{clock, pages::Page};",
        ),
        (
            "config",
            "// crate::routes::AppState is above\nuse crate::domain::group::GroupKinds;",
        ),
        (
            "config",
            "/* crate::routes */ use crate::event_keys::check_token;",
        ),
        ("oidc", "use my_crate::routes;\nuse super::super::oidc;"),
        (
            "storage",
            "use crate::storage::StorageError;\nlet x = nosqlx::y;",
        ),
    ];
    for (owner, text) in cases {
        assert_eq!(
            violations(owner, "case.rs", text),
            Vec::<String>::new(),
            "{owner}: {text}"
        );
    }
}
