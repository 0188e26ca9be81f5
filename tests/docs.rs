//! The metric table is known wherever metrics are defined outside the code:
//! the result-file docs, the DuckDB benchmark's SQL and the Python cross-check.
//! (The cross-check test and the aggregate benchmark also compare every metric's
//! value; this catches a missing one without running anything.)

use jagged_domain::metrics::METRICS;

fn read(rel: &str) -> String {
    let p = jagged_testkit::root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether `text` has `word` followed by something that cannot continue a name.
fn has(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| !text[i + word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn every_metric_of_the_table_is_documented_computed_by_duckdb_and_cross_checked() {
    let docs = read("docs/results.md");
    let duckdb = read("bench/aggregate_duckdb.py");
    let python = read("tests/crosscheck.py");
    let mut missing = Vec::new();
    for m in METRICS {
        if !has(&docs, &format!("| `{}`", m.name)) {
            missing.push(format!("docs/results.md has no row for `{}`", m.name));
        }
        if !has(&duckdb, &format!(" as {}", m.name)) {
            missing.push(format!("bench/aggregate_duckdb.py computes no `{}`", m.name));
        }
        if !has(&python, &format!("\"{}\":", m.name)) {
            missing.push(format!("tests/crosscheck.py computes no `{}`", m.name));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_check_itself_tells_a_metric_from_a_longer_name() {
    assert!(has("x as mac,\n", " as mac"));
    assert!(!has("x as mac_wrong,\n", " as mac"));
    assert!(has("| `acc1` |", "| `acc1`"));
}

/// Every example spec parses and validates (files are only read at submit), and
/// so does every TOML block of the README that is a whole spec.
#[test]
fn example_specs_and_the_readme_spec_parse() {
    let dir = jagged_testkit::root().join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            jagged_domain::spec::SweepSpec::from_toml(&std::fs::read_to_string(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "examples found: {n}");
    let readme = read("README.md");
    let blocks: Vec<&str> = readme.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).filter(|b| b.contains("[[models]]")).collect();
    assert!(!blocks.is_empty());
    for b in blocks {
        jagged_domain::spec::SweepSpec::from_toml(b).unwrap_or_else(|e| panic!("README spec: {e}\n{b}"));
    }
}
