//! `api-entreprise dossier` as a buyer or a grant officer runs it: real
//! processes against the sandbox (in this process), over real HTTP. What
//! the manifest says is checked against what the sandbox received and
//! served: every recommended endpoint, each document's hash against the
//! bytes served, nothing asked twice that was kept, a forbidden endpoint
//! never sent. And the two commands around it: `habilitation` (what to
//! ask for) and `doctor --use-case` (what the token lacks).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use api_entreprise_catalogue as catalogue;
use api_entreprise_sandbox::Sandbox;
use serde_json::Value;
use sha2::Digest as _;

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("api-entreprise-dossier-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `dossier ID --use-case USE_CASE -o DIR/out ARGS…` against `sandbox`,
/// with a trace and a user id.
fn dossier(sandbox: &Sandbox, dir: &Path, id: &str, use_case: &str, args: &[&str]) -> Command {
    let mut command = without_user_id(sandbox, dir, id, use_case, args);
    command.args(["--user-id", "agent-42"]);
    command
}

/// [`dossier`] without `--user-id`.
fn without_user_id(sandbox: &Sandbox, dir: &Path, id: &str, use_case: &str, args: &[&str]) -> Command {
    let mut command =
        api_entreprise_tests::against_sandbox(Command::new(env!("CARGO_BIN_EXE_api-entreprise")), sandbox, dir);
    command
        .args(["dossier", id, "--use-case", use_case, "-o"])
        .arg(dir.join("out"))
        .args(api_entreprise_tests::TRACE_ARGS)
        .args(args);
    command
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("out/manifest.json")).unwrap()).unwrap()
}

fn items(manifest: &Value) -> BTreeMap<String, Value> {
    manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["endpoint"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

/// The use case's recommended endpoint ids, read from the catalogue.
fn recommended(use_case: &str) -> BTreeSet<&'static str> {
    catalogue::use_case(use_case)
        .unwrap()
        .recommended
        .iter()
        .map(|(id, _)| *id)
        .collect()
}

/// The data requests the sandbox received, by endpoint id (from the path).
fn asked(sandbox: &Sandbox) -> BTreeMap<String, usize> {
    let mut asked = BTreeMap::new();
    for r in sandbox.requests() {
        if let Some((e, _)) = catalogue::route(&r.path).filter(|(e, _)| e.needs_trace) {
            *asked.entry(e.id.to_owned()).or_default() += 1;
        }
    }
    asked
}

/// Every document of the manifest: its bytes hash as it says, and the
/// sandbox served exactly those bytes. Gives how many.
fn documents_match(dir: &Path, manifest: &Value, sandbox: &Sandbox) -> usize {
    let served: BTreeSet<String> = sandbox.files_served().into_iter().map(|f| f.sha256).collect();
    let mut count = 0;
    for item in manifest["items"].as_array().unwrap() {
        for doc in item["documents"].as_array().unwrap() {
            let bytes = std::fs::read(dir.join("out").join(doc["file"].as_str().unwrap())).unwrap();
            let sha: String = sha2::Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(doc["sha256"], sha, "{doc}");
            assert_eq!(doc["bytes"], bytes.len() as u64);
            assert!(served.contains(&sha), "{doc}: not bytes the sandbox served");
            assert!(bytes.starts_with(b"%PDF-"), "{doc}");
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marches_publics_dossier_of_a_company_holds_every_recommended_endpoint() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("company");
    let out = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &["--zip"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let manifest = manifest(&dir);
    let items = items(&manifest);
    let wanted = recommended("marches_publics");
    assert_eq!(items.keys().map(String::as_str).collect::<BTreeSet<_>>(), wanted);
    let asked = asked(&sandbox);
    for (id, item) in &items {
        let e = catalogue::find(id, Some(item["version"].as_u64().unwrap() as u8)).unwrap();
        let for_associations = e
            .params
            .iter()
            .any(|(_, k)| matches!(k, catalogue::ParamKind::SiretOrRna | catalogue::ParamKind::SirenOrRna));
        let expected = match (for_associations, e.kind) {
            (true, _) => "not-applicable",
            (false, catalogue::Kind::Document) => "document",
            (false, _) => "data",
        };
        assert_eq!(item["outcome"], expected, "{id}: {item}");
        // Each endpoint that applies was asked once, in one version only.
        let times = asked.get(id.as_str()).copied().unwrap_or(0);
        assert_eq!(times, usize::from(!for_associations), "{id} asked {times} time(s)");
    }
    // The head office's SIRET came from INSEE: the SIRET endpoints were asked with it.
    assert_eq!(items["insee_etablissements"]["params"][0], "41816609600069");
    let urssaf = &items["acoss_attestations_sociales"];
    assert_eq!(urssaf["version"], 4);
    assert!(urssaf["valid_until"].as_str().unwrap() > urssaf["valid_from"].as_str().unwrap());
    assert!(
        manifest["summary"]["complete"].as_bool().unwrap(),
        "{}",
        manifest["summary"]
    );
    let documents = documents_match(&dir, &manifest, &sandbox);
    assert!(documents >= 3, "{documents}");
    // Downloads went without the token.
    for r in sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/__sandbox/files/"))
    {
        assert!(!r.headers.iter().any(|(k, _)| k == "authorization"), "{}", r.path);
    }
    let zip = std::fs::read(dir.join("out.zip")).unwrap();
    assert!(zip.starts_with(b"PK\x03\x04") && zip.len() > 1000);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("acoss_attestations_sociales v4") && table.contains("complete:"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aides_publiques_dossier_of_an_association_asks_what_applies_to_one() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("association");
    let out = run(dossier(&sandbox, &dir, "W751004076", "aides_publiques", &["--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifest = manifest(&dir);
    assert_eq!(printed, manifest);
    let items = items(&manifest);
    assert_eq!(
        items.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        recommended("aides_publiques")
    );
    // The associations' directory gave its SIREN and head office.
    assert_eq!(manifest["entity"]["siren"], "775672272");
    assert_eq!(manifest["entity"]["association"], true);
    let asked = asked(&sandbox);
    for (id, item) in &items {
        let companies_register = ["infogreffe_", "inpi_", "rnm_"].iter().any(|p| id.starts_with(p));
        if companies_register {
            assert_eq!(item["outcome"], "not-applicable", "{id}");
            assert!(!asked.contains_key(id), "{id} was sent");
        } else {
            assert!(
                item["outcome"] == "data" || item["outcome"] == "document",
                "{id}: {item}"
            );
            assert_eq!(asked.get(id), Some(&1), "{id}");
        }
    }
    assert_eq!(items["acoss_attestations_sociales"]["params"][0], "775672272");
    assert_eq!(items["mi_associations"]["params"][0], "77567227221138");
    assert!(manifest["summary"]["complete"].as_bool().unwrap());
    assert!(documents_match(&dir, &manifest, &sandbox) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_unknown_entities_are_said_item_by_item() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("refused");
    let out = run(dossier(&sandbox, &dir, "90000001900019", "marches_publics", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let held = items(&manifest(&dir));
    let urssaf = &held["acoss_attestations_sociales"];
    assert_eq!(urssaf["outcome"], "refused-by-provider");
    assert!(urssaf["documents"].as_array().unwrap().is_empty());
    let dgfip = &held["dgfip_attestations_fiscales"];
    assert_eq!(dgfip["outcome"], "failed");
    assert_eq!(dgfip["error"]["codes"][0], "03501");
    assert!(dgfip["request_id"].as_str().unwrap().starts_with("sandbox-"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("missing: dgfip_attestations_fiscales, acoss_attestations_sociales"),
        "{table}"
    );

    let dir = folder("unknown");
    let out = run(dossier(&sandbox, &dir, "900000027", "fraude", &[])).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let manifest = manifest(&dir);
    assert!(
        items(&manifest)
            .values()
            .all(|i| i["outcome"] == "not-found" || i["outcome"] == "needs-input"),
        "{manifest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_use_case_forbids_is_refused_and_nothing_is_sent() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("forbidden");
    let out = run(dossier(
        &sandbox,
        &dir,
        "418166096",
        "socle_de_base",
        &["--only", "acoss_attestations_sociales"],
    ))
    .await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("the use case `socle_de_base` forbids it"), "{said}");
    // Bad input is said before anything starts.
    let out = run(dossier(&sandbox, &dir, "418166097", "marches_publics", &[])).await;
    assert!(text(&out).contains("not a valid SIREN"), "{}", text(&out));
    let out = run(without_user_id(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(text(&out).contains("need(s) --user-id"), "{}", text(&out));
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());
    assert!(!dir.join("out/manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_killed_mid_way_resumes_without_asking_again_what_it_kept() {
    let sandbox = api_entreprise_tests::sandbox().await;
    sandbox.set_latency(Duration::from_millis(300));
    let dir = folder("kill");
    let mut child = dossier(&sandbox, &dir, "41816609600069", "marches_publics", &["--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.join("out/manifest.json");
    let held_at_kill = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let m: Value = serde_json::from_str(&text).expect("the manifest is never half-written");
        let held: Vec<String> = items(&m)
            .into_iter()
            .filter(|(_, i)| i["outcome"] == "data" || i["outcome"] == "document")
            .map(|(id, _)| id)
            .collect();
        if held.len() >= 4 {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            break held;
        }
        assert!(child.try_wait().unwrap().is_none(), "it ended before the kill");
    };
    let before = asked(&sandbox);
    sandbox.set_latency(Duration::ZERO);
    let out = run(dossier(&sandbox, &dir, "41816609600069", "marches_publics", &[])).await;
    assert!(out.status.success(), "{}", text(&out));
    let after = asked(&sandbox);
    for id in &held_at_kill {
        assert_eq!(after[id], before[id], "{id} was kept, yet asked again");
        assert_eq!(after[id], 1, "{id}");
    }
    let manifest = manifest(&dir);
    assert!(manifest["summary"]["complete"].as_bool().unwrap());
    documents_match(&dir, &manifest, &sandbox);
    let said = text(&out);
    assert!(
        said.contains(&format!("{} kept from before", held_at_kill.len())),
        "{said}"
    );
    println!(
        "killed with {} item(s) held; {} data request(s) in all for {} item(s)",
        held_at_kill.len(),
        after.values().sum::<usize>(),
        items(&manifest).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_expired_attestation_is_renewed() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("renew");
    let first = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(first.status.success(), "{}", text(&first));
    let before = asked(&sandbox);
    let old = items(&manifest(&dir))["acoss_attestations_sociales"].clone();
    // Time passes: the URSSAF attestation's validity ends yesterday.
    let mut m = manifest(&dir);
    for item in m["items"].as_array_mut().unwrap() {
        if item["endpoint"] == "acoss_attestations_sociales" {
            item["valid_until"] = "2020-01-01".into();
        }
    }
    std::fs::write(dir.join("out/manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let second = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(second.status.success(), "{}", text(&second));
    let after = asked(&sandbox);
    let diff = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>| -> Vec<String> {
        a.iter()
            .filter(|(id, n)| b.get(*id) != Some(n))
            .map(|(id, _)| id.clone())
            .collect()
    };
    assert_eq!(diff(&after, &before), ["acoss_attestations_sociales"]);
    let renewed = items(&manifest(&dir))["acoss_attestations_sociales"].clone();
    assert_ne!(renewed["documents"][0]["sha256"], old["documents"][0]["sha256"]);
    assert!(renewed["valid_until"].as_str().unwrap() > "2020-01-01");
    assert_eq!(renewed["calls"], 2);
    documents_match(&dir, &manifest(&dir), &sandbox);
    // Within 200 days: the six-month attestation again, nothing else.
    let third = run(dossier(
        &sandbox,
        &dir,
        "418166096",
        "marches_publics",
        &["--renew-within", "200"],
    ))
    .await;
    assert!(third.status.success(), "{}", text(&third));
    let later = asked(&sandbox);
    assert_eq!(diff(&later, &after), ["acoss_attestations_sociales"]);
    // Nothing expiring: nothing asked.
    let fourth = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(fourth.status.success());
    assert_eq!(asked(&sandbox), later);
    assert!(
        text(&fourth).contains("0 item(s) asked with 0 call(s)"),
        "{}",
        text(&fourth)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_expired_before_its_download_is_asked_for_again_once() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let only = ["--only", "acoss_attestations_sociales"];
    sandbox.expire_next_links(1);
    let dir = folder("expired");
    let out = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &only)).await;
    assert!(out.status.success(), "{}", text(&out));
    let item = items(&manifest(&dir))["acoss_attestations_sociales"].clone();
    assert_eq!(item["outcome"], "document");
    assert_eq!(item["calls"], 2);
    assert_eq!(asked(&sandbox)["acoss_attestations_sociales"], 2);
    assert_eq!(sandbox.files_served().len(), 1);
    let expired: Vec<u16> = sandbox
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/__sandbox/files/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(expired, [404, 200]);

    // Expired twice: asked twice, no more, and said.
    sandbox.expire_next_links(2);
    let dir = folder("expired-twice");
    let out = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &only)).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let item = items(&manifest(&dir))["acoss_attestations_sociales"].clone();
    assert_eq!(item["outcome"], "failed");
    assert_eq!(item["calls"], 2);
    assert!(
        item["error"]["message"]
            .as_str()
            .unwrap()
            .contains("again with a fresh link"),
        "{item}"
    );
    assert_eq!(asked(&sandbox)["acoss_attestations_sociales"], 4);
    assert_eq!(sandbox.files_served().len(), 1);
}

/// `ARGS…` against `sandbox`, with its token.
fn command(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Command {
    let mut command =
        api_entreprise_tests::against_sandbox(Command::new(env!("CARGO_BIN_EXE_api-entreprise")), sandbox, dir);
    command.args(args);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn habilitation_and_doctor_say_what_the_token_lacks_for_a_use_case() {
    let sandbox = api_entreprise_tests::sandbox().await;
    // A token opened for the INSEE and the URSSAF only.
    let scopes = ["unites_legales_etablissements_insee", "attestations_sociales"];
    sandbox.set_scopes(Some(scopes.iter().map(|s| (*s).to_owned()).collect()));
    let dir = folder("habilitation");
    let out = run(command(
        &sandbox,
        &dir,
        &[
            "habilitation",
            "--use-case",
            "marches_publics",
            "--siret",
            "13002526500013",
        ],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let md = String::from_utf8_lossy(&out.stdout);
    for id in recommended("marches_publics") {
        assert!(md.contains(&format!("`{id}` v")), "{id} missing from the checklist");
    }
    for contact in [
        "Responsable de traitement",
        "DPD",
        "Contact métier",
        "Contact technique",
    ] {
        assert!(md.contains(contact), "{contact}");
    }
    assert!(md.contains("`13002526500013`"));
    let section = md.split("## 5.").nth(1).expect("a section on what the token opens");
    assert!(section.contains("`dgfip_attestations_fiscales`"), "{section}");
    assert!(!section.contains("`acoss_attestations_sociales`"), "{section}");
    assert!(!section.contains("`insee_etablissements`"), "{section}");

    let out = run(command(
        &sandbox,
        &dir,
        &[
            "doctor",
            "--use-case",
            "marches_publics",
            "--recipient",
            "13002526500013",
        ],
    ))
    .await;
    let said = text(&out);
    let line = said
        .lines()
        .find(|l| l.contains("use case Marchés publics") && l.contains("recommended"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(line.starts_with("[warn]"), "{line}");
    assert!(
        line.contains("dgfip_attestations_fiscales (scope attestations_fiscales or attestation_fiscale_dgfip)"),
        "{line}"
    );
    assert!(!line.contains("acoss_attestations_sociales"), "{line}");

    let out = run(command(&sandbox, &dir, &["habilitation", "--use-case", "marche"])).await;
    assert!(
        !out.status.success() && text(&out).contains("no use case `marche`"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_dossiers_writes_one_per_row_and_resumes() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("batch");
    let input = dir.join("candidats.csv");
    std::fs::write(
        &input,
        "nom,siret\nOCTO,41816609600069\nFondation,77567227221138\nInconnue,90000002700012\n",
    )
    .unwrap();
    let batch = |extra: &[&str]| {
        let mut args = vec![
            "batch",
            input.to_str().unwrap(),
            "--dossier",
            "--use-case",
            "marches_publics",
            "-o",
        ];
        let out = dir.join("dossiers");
        let out = out.to_str().unwrap().to_owned();
        let mut c = command(&sandbox, &dir, &[]);
        args.push(&out);
        args.extend_from_slice(&api_entreprise_tests::TRACE_ARGS);
        args.extend_from_slice(&["--user-id", "agent-42"]);
        args.extend_from_slice(extra);
        c.args(&args);
        c
    };
    let out = run(batch(&[])).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "the unknown company's dossier is incomplete: {}",
        text(&out)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["complete"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, true, false]
    );
    for (line, siret) in lines.iter().zip(["41816609600069", "77567227221138", "90000002700012"]) {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("dossiers").join(siret).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["identifier"], siret);
        assert_eq!(
            line["calls"].as_u64().unwrap(),
            items(&manifest)
                .values()
                .map(|i| i["calls"].as_u64().unwrap())
                .sum::<u64>()
        );
    }
    let sent = asked(&sandbox).values().sum::<usize>();
    // Again: nothing is asked (the unknown company's not-found answers
    // are answers, kept like the others).
    let again = run(batch(&[])).await;
    let lines: Vec<Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["calls"], 0, "{line}");
        assert!(line["kept"].as_u64().unwrap() > 0, "{line}");
    }
    assert_eq!(lines[2]["complete"], false);
    assert_eq!(asked(&sandbox).values().sum::<usize>(), sent);
    // A bad identifier in the file: said, nothing sent.
    std::fs::write(&input, "siret\n41816609600069\n4181660960006\n").unwrap();
    let before = sandbox.requests().len();
    let bad = run(batch(&[])).await;
    assert!(
        text(&bad).contains("row 2") && text(&bad).contains("nothing was sent"),
        "{}",
        text(&bad)
    );
    assert_eq!(sandbox.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dossier_another_process_is_gathering_is_refused_and_nothing_is_sent() {
    let sandbox = api_entreprise_tests::sandbox().await;
    let dir = folder("locked");
    std::fs::create_dir_all(dir.join("out")).unwrap();
    // This test process holds the folder, as a running `dossier` does.
    let held = std::fs::File::create(dir.join("out/.lock")).unwrap();
    held.lock().unwrap();
    let out = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("another process is gathering"), "{}", text(&out));
    assert!(sandbox.requests().is_empty(), "{:?}", sandbox.requests());
    drop(held);
    let out = run(dossier(&sandbox, &dir, "418166096", "marches_publics", &[])).await;
    assert!(out.status.success(), "{}", text(&out));
}
