//! The README's configuration key table is the key table of the code, so it cannot drift.
//!
//! Run with `UPDATE_README=1` to rewrite the table after adding a key.

use rpc_tests as _;

const START: &str = "<!-- config-keys:start -->\n";
const END: &str = "<!-- config-keys:end -->";

#[test]
fn readme_key_table_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme
        .find(START)
        .expect("README has the config-keys start marker")
        + START.len();
    let end = readme
        .find(END)
        .expect("README has the config-keys end marker");
    let expected = rpc_core::config::keys::markdown_table();
    if readme[start..end] != expected {
        if std::env::var_os("UPDATE_README").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).expect("write README.md");
            return;
        }
        panic!(
            "README.md's configuration key table is out of date; run \
             `UPDATE_README=1 cargo test -p rpc-tests --test readme_keys` and commit. Expected:\n{expected}"
        );
    }
}

/// Every TOML example in the README is a valid configuration file, and the layout section
/// shows every section the parser knows.
#[test]
fn readme_toml_examples_parse() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .filter(|block| block.contains("[application]") || block.contains("[references."))
        .collect();
    assert!(!blocks.is_empty(), "the README shows the TOML layout");
    for block in &blocks {
        rpc_core::config::Config::from_toml_str(block)
            .unwrap_or_else(|e| panic!("README TOML example does not parse: {e}\n{block}"));
    }
    let layout = blocks
        .iter()
        // The layout is the example with the `[protocol]` section (others show a few keys).
        .find(|b| b.contains("[application]") && b.contains("[protocol]"))
        .expect("layout");
    for section in [
        "[application]",
        "[protocol]",
        "[services.",
        "[references.",
        ".methods.",
    ] {
        assert!(layout.contains(section), "the layout shows {section}");
    }
}
