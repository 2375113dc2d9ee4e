//! The gateway configurations have one source: the examples
//! (examples/gateway-{nginx,envoy,traefik}/), which the end-to-end gateway
//! scenario and `cargo bench --bench gateway` run
//! (keyrotor_testsupport::gateways). docs/gateways.md must show them as
//! they are there, and Envoy's must be valid Envoy with no deprecated field.

use std::process::Command;

use keyrotor_testsupport::e2e::cluster::repo;
use keyrotor_testsupport::gateways::{self as g, Ports};

const DOCS: &str = "docs/gateways.md";

/// The fenced blocks of the section `## <title>` of docs/gateways.md.
fn blocks(title: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(DOCS)).unwrap();
    let heading = format!("## {title}\n");
    let start = text
        .find(&heading)
        .unwrap_or_else(|| panic!("{DOCS} has no {heading}"));
    let section = &text[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut found = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in section.lines() {
        match (&mut block, line.trim_start().starts_with("```")) {
            (None, true) => block = Some(Vec::new()),
            (Some(b), true) => {
                found.push(b.join("\n"));
                block = None;
            }
            (Some(b), false) => b.push(line),
            (None, false) => {}
        }
    }
    found
}

/// Whether `block`'s lines appear in `text` one after the other, all
/// indented alike (a fragment of a nested configuration).
fn holds(text: &str, block: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    let want: Vec<&str> = block.lines().collect();
    let Some(first) = want.first() else {
        return false;
    };
    (0..lines.len()).any(|i| {
        let Some(indent) = lines[i].strip_suffix(first) else {
            return false;
        };
        indent.trim().is_empty()
            && want.iter().enumerate().all(|(j, w)| {
                lines.get(i + j).is_some_and(|l| {
                    *l == format!("{indent}{w}") || (w.is_empty() && l.trim().is_empty())
                })
            })
    })
}

#[test]
fn docs_gateways_md_shows_each_gateway_configured_as_the_examples_the_tests_run() {
    let nginx = g::config_file(g::NGINX_EXAMPLE, "nginx.conf");
    let envoy = g::config_file(g::ENVOY_EXAMPLE, "envoy.yaml");
    let traefik = std::fs::read_to_string(repo().join(g::TRAEFIK_EXAMPLE)).unwrap();
    for (title, source, example) in [
        ("nginx", &nginx, g::NGINX_EXAMPLE),
        ("Envoy", &envoy, g::ENVOY_EXAMPLE),
        ("Traefik", &traefik, g::TRAEFIK_EXAMPLE),
    ] {
        let shown = blocks(title);
        assert!(
            !shown.is_empty(),
            "{DOCS} shows no configuration for {title}"
        );
        for block in shown {
            assert!(
                holds(source, &block),
                "{DOCS} ({title}) shows a configuration {example} does not hold:\n{block}"
            );
        }
    }
    // The check itself: a changed line is caught.
    assert!(!holds(&nginx, "listen 8081;"));
}

/// Envoy as the gateway scenario runs it: the example's envoy.yaml with
/// test ports passes `envoy --mode validate`, with no deprecated field
/// (they warn first, then stop loading). Skipped, loudly, when
/// tests/cluster/envoy/install has not installed Envoy (it needs PyPI).
#[test]
fn the_example_envoy_configuration_is_valid_envoy_without_deprecated_fields() {
    let Some(envoy) = g::envoy_installed() else {
        eprintln!(
            "\n*** Envoy example check SKIPPED: Envoy not installed (tests/cluster/envoy/install) ***\n"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("keyrotor-envoy-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("envoy.yaml");
    let ports = Ports {
        gateway: 18080,
        verifier: 18181,
        app: 19090,
    };
    std::fs::write(&path, g::envoy_yaml(ports)).unwrap();
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("OK"), "{said}");
    assert!(!said.contains("Deprecated"), "{said}");
}
