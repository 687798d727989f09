//! The `api-entreprise` command as a user runs it: a real process, with the
//! built-in sandbox when no token is configured.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .args(args)
        .env_remove("API_ENTREPRISE_TOKEN")
        .env_remove("API_ENTREPRISE_BASE_URL")
        .env_remove("API_ENTREPRISE_COMPONENT")
        .env_remove("API_ENTREPRISE_IP_QUOTA")
        .output()
        .expect("running api-entreprise")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const TRACE: [&str; 6] = [
    "--context",
    "aides publiques",
    "--recipient",
    "13002526500013",
    "--object",
    "dossier 42",
];

#[test]
fn a_call_without_a_token_uses_the_built_in_sandbox_and_says_so_in_one_line() {
    let out = run(&[&["call", "insee_unites_legales", "552049447"][..], &TRACE].concat());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("SOCIETE NATIONALE SNCF"), "{stdout}");
    assert!(stdout.contains("HTTP 200"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("built-in sandbox at http://127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn json_output_is_the_envelope() {
    let out = run(&[
        &["call", "insee_etablissements", "55204944776279", "--json"][..],
        &TRACE,
    ]
    .concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let envelope: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["data"]["siret"], "55204944776279");
    assert!(envelope["links"].is_object() && envelope["meta"].is_object());
}

#[test]
fn invalid_input_fails_with_every_code_and_what_to_do() {
    let out = run(&[
        "call",
        "insee_unites_legales",
        "552049448",
        "--context",
        "",
        "--recipient",
        "123",
        "--object",
        "x",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    for expected in [
        "nothing was sent",
        "00201",
        "00210",
        "00301",
        "give a SIREN",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from {stderr}"
        );
    }
}

#[test]
fn an_unknown_endpoint_and_a_bad_quota_are_explained() {
    let out = run(&[&["call", "insee_nope", "552049447"][..], &TRACE].concat());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no endpoint `insee_nope`"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&[
        &[
            "--ip-quota",
            "lots",
            "call",
            "insee_unites_legales",
            "552049447",
        ][..],
        &TRACE,
    ]
    .concat());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("N/DURATION"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_base_url_without_a_token_or_over_plain_http_is_refused() {
    let out = run(&[
        &[
            "--base-url",
            "https://entreprise.api.gouv.fr",
            "call",
            "insee_unites_legales",
            "552049447",
        ][..],
        &TRACE,
    ]
    .concat());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("API_ENTREPRISE_TOKEN"),
        "{}",
        text(&out.stderr)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_api-entreprise"))
        .args(
            [
                &[
                    "--base-url",
                    "http://entreprise.api.gouv.fr",
                    "call",
                    "insee_unites_legales",
                    "552049447",
                ][..],
                &TRACE,
            ]
            .concat(),
        )
        .env("API_ENTREPRISE_TOKEN", "a-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("only https is allowed"), "{stderr}");
    assert!(!stderr.contains("a-token"), "the token leaked: {stderr}");
}

#[test]
fn endpoints_lists_the_catalogue_as_json() {
    let out = run(&["endpoints", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.iter()
            .any(|e| e["id"] == "insee_unites_legales" && e["version"] == 4)
    );
    assert!(
        list.iter()
            .all(|e| e["path"].as_str().unwrap().starts_with("/v"))
    );
}
