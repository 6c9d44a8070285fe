//! Properties of the core that must hold for every input, not just the fixtures.
//!
//! Deployments are generated valid by construction (`deployment()`), with the deploy env
//! they need; failing seeds are kept in `proptest-regressions/` in git.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

use xtask::core::deployment::{
    Auth, AutoStop, Database, Deployment, Place, Size, Storage, Strategy as Rollout, Tenancy,
};
use xtask::core::diagnostic::render_report;
use xtask::core::engine_env::engine_env;
use xtask::core::render::fly_toml;
use xtask::core::secret::DeployEnv;
use xtask::core::validate::Checked;

fn check(text: &str, env: &DeployEnv) -> Checked {
    wb_tests::check_text("d.org", "d", Some(text), None, env, &["fly"]).1
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}"
}

fn url() -> impl Strategy<Value = String> {
    ("[a-z]{1,10}", prop::option::of("/[a-z]{1,8}"))
        .prop_map(|(host, path)| format!("https://{host}.example.com{}", path.unwrap_or_default()))
}

fn canary() -> impl Strategy<Value = String> {
    // Values shaped like real secrets: `=`, quotes, blanks, newlines, unicode.
    "[a-z0-9]{8}[=\"' \n\té]{0,3}[a-z0-9]{4}".prop_map(|s| format!("canary-{s}"))
}

/// A valid deployment and the deploy env it needs, by construction.
fn deployment() -> impl Strategy<Value = (Deployment, Vec<(String, String)>)> {
    let axes = (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0..4usize,
    );
    let open = (
        name(),
        name(),
        url(),
        url(),
        prop::option::of(url()),
        prop::option::of("/[a-z]{1,10}"),
        1..=65535u16,
    );
    let secrets = prop::collection::vec(("S_[A-Z0-9_]{2,10}", canary()), 0..3);
    let creds = (canary(), canary(), canary(), canary(), canary());
    (
        axes,
        open,
        secrets,
        creds,
        prop::option::of("[a-z0-9][a-z0-9-]{0,9}"),
        (
            1..=4u16,
            0..4usize,
            0..3usize,
            0..4usize,
            prop::collection::vec("[a-z]{3}", 0..3),
        ),
    )
        .prop_map(
            |(
                (cloud, multi, s3, pg, auth),
                (id, app, endpoint, issuer, jwks, profile, port),
                secrets,
                creds,
                region,
                (scale, size, auto_stop, strategy, regions),
            )| {
                let place = if cloud { Place::Cloud } else { Place::Local };
                let mut d = Deployment::new(&id, place);
                d.tenancy = if multi {
                    Tenancy::Multi
                } else {
                    Tenancy::Single
                };
                d.storage = if s3 { Storage::S3 } else { Storage::LocalFs };
                d.database = if pg || multi {
                    Database::Postgres
                } else {
                    Database::Sqlite
                };
                d.auth = [Auth::Trusted, Auth::BetterAuth, Auth::Clerk, Auth::Oidc][auth];
                if multi && d.auth == Auth::Trusted {
                    d.auth = Auth::Oidc;
                }
                if d.auth != Auth::Trusted {
                    d.issuer = Some(issuer);
                    d.jwks_url = jwks;
                }
                if s3 {
                    d.storage_endpoint = Some(endpoint);
                    d.storage_bucket = Some(format!("{app}-bucket"));
                }
                if cloud {
                    d.app = Some(app);
                    d.region = Some(region.unwrap_or_else(|| "iad".into()));
                }
                d.profile = profile;
                d.port = port;
                // Scale-out only where it can work: shared stores (§12).
                let shared =
                    d.database == Database::Postgres && (d.storage == Storage::S3 || !cloud);
                d.scale = if shared { scale } else { 1 };
                if d.scale > 1 {
                    let primary = d.region.clone();
                    let mut extra: Vec<String> = Vec::new();
                    for r in regions {
                        if Some(&r) != primary.as_ref() && !extra.contains(&r) {
                            extra.push(r);
                        }
                    }
                    d.regions = extra;
                }
                d.size = [None, Some(Size::T2), Some(Size::T3), Some(Size::T4)][size];
                d.auto_stop = [AutoStop::Stop, AutoStop::Suspend, AutoStop::Off][auto_stop];
                d.strategy = [
                    Rollout::Rolling,
                    Rollout::Immediate,
                    Rollout::BlueGreen,
                    Rollout::Canary,
                ][strategy];
                if d.needs_volume() && matches!(d.strategy, Rollout::BlueGreen | Rollout::Canary) {
                    d.strategy = Rollout::Rolling;
                }
                let mut env = vec![
                    ("WB_S3_KEY".to_string(), creds.0),
                    ("WB_S3_SECRET".to_string(), creds.1),
                    ("WB_DATABASE_URL".to_string(), creds.2),
                    ("WB_PUBLIC_BEARER".to_string(), creds.3),
                    ("WB_SIGNING_KEY".to_string(), creds.4),
                ];
                for (n, v) in secrets {
                    if !d.secrets.contains(&n) && !env.iter().any(|(e, _)| *e == n) {
                        d.secrets.push(n.clone());
                        env.push((n, v));
                    }
                }
                (d, env)
            },
        )
}

/// Lines an operator (or a fuzzer) might put in a file, to build org-ish documents.
fn org_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "ENGINE_PLACE",
        "TENANCY_MODE",
        "STORAGE",
        "DATABASE",
        "AUTH",
        "APP",
        "REGION",
        "PORT",
        "ID",
        "PROVIDER",
        "ISSUER",
        "IMAGE",
        "WB_S3_KEY",
        "api_token",
        "X-Y",
    ]);
    let values = prop::sample::select(vec![
        "local",
        "cloud",
        "multi",
        "single",
        "s3",
        "local-fs",
        "sqlite",
        "postgres",
        "clerk",
        "trusted",
        "Local",
        "",
        "my-app",
        "<fill>",
        "https://a.example.com",
        "http://x:y@z",
        "70000",
        "../x",
        " ",
    ]);
    prop_oneof![
        Just(":PROPERTIES:".to_string()),
        Just(":END:".to_string()),
        Just(":LOGBOOK:".to_string()),
        Just("* headline".to_string()),
        Just("#+BEGIN_SRC".to_string()),
        Just("#+END_SRC".to_string()),
        (keys.clone(), values.clone()).prop_map(|(k, v)| format!(":{k}: {v}")),
        (keys, values).prop_map(|(k, v)| format!("#+DEPLOY_{k}: {v}")),
        "#\\+DEPLOY_SECRETS:( [A-Za-z0-9_]{1,6}){0,3}",
        ".{0,30}",
    ]
}

fn org_document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(org_line(), 0..25),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
    )
        .prop_map(|(lines, nl, bom)| {
            format!("{}{}", if bom { "\u{feff}" } else { "" }, lines.join(nl))
        })
}

proptest! {
    // Failing seeds go to tests/proptest-regressions/properties.txt (tests run in tests/).
    #![proptest_config(Config {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/properties.txt"))),
        ..Config::default()
    })]

    /// The reader and validator never panic, on arbitrary text or org-shaped text, and
    /// their answer is consistent: a deployment exactly when there is no error, and an
    /// invalid file's report names the file at each error.
    #[test]
    fn reader_never_panics(text in any::<String>(), doc in org_document()) {
        let env = DeployEnv::default();
        for t in [&text, &doc] {
            let checked = check(t, &env);
            let report = render_report("d.org", Some(t), &checked.diagnostics, false);
            prop_assert_eq!(checked.valid(), checked.deployment.is_some());
            let errors = checked.errors().count();
            prop_assert_eq!(report.contains("invalid deployment:\n- d.org"), errors > 0);
            prop_assert_eq!(report.matches("\n- d.org").count() + usize::from(report.starts_with("- d.org")), checked.diagnostics.len());
        }
    }

    /// render → read → check gives back the very same deployment.
    #[test]
    fn render_read_round_trips((d, env) in deployment()) {
        let deploy_env = DeployEnv::new(env, std::iter::empty());
        let text = d.to_org();
        let checked = check(&text, &deploy_env);
        prop_assert!(checked.valid(), "{text}\n{:?}", checked.diagnostics);
        prop_assert_eq!(checked.deployment.as_ref(), Some(&d));
    }

    /// Multi-tenant on SQLite, or multi-tenant with `trusted`, is never valid, whatever
    /// else the file says and whatever the deploy env holds.
    #[test]
    fn multi_tenant_refusals_hold((d, env) in deployment(), sqlite in any::<bool>()) {
        let mut bad = d.clone();
        bad.tenancy = Tenancy::Multi;
        if sqlite { bad.database = Database::Sqlite } else { bad.auth = Auth::Trusted }
        let checked = check(&bad.to_org(), &DeployEnv::new(env, std::iter::empty()));
        prop_assert!(!checked.valid());
        let expected = if sqlite { "TENANCY_MODE: multi on DATABASE: sqlite" } else { "TENANCY_MODE: multi with AUTH: trusted" };
        prop_assert!(checked.errors().any(|e| e.message.starts_with(expected)));
    }

    /// Every valid deployment's engine env starts with the five always-present variables.
    #[test]
    fn engine_env_always_has_the_five((d, env) in deployment()) {
        let engine = engine_env(&d, &DeployEnv::new(env, std::iter::empty()));
        let names = engine.names();
        prop_assert_eq!(&names[..5], &["WB_WEB", "PORT", "WB_DATA", "WB_EMBED", "WB_REGISTRY"]);
        prop_assert_eq!(engine.get("WB_REGISTRY").unwrap().to_string(), "/data/registry.db");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), names.len(), "a name appears twice: {:?}", names);
    }

    /// No secret value ever appears in anything the kit renders from a deployment.
    #[test]
    fn no_secret_in_any_output((d, env) in deployment()) {
        let deploy_env = DeployEnv::new(env.clone(), std::iter::empty());
        let text = d.to_org();
        let checked = check(&text, &deploy_env);
        let engine = engine_env(&d, &deploy_env);
        let outputs = [
            render_report("d.org", Some(&text), &checked.diagnostics, false),
            d.summary(),
            engine.render(),
            engine.to_json().to_string(),
            format!("{engine:?} {deploy_env:?} {checked:?}"),
            fly_toml::render(&d, false).unwrap_or_default(),
        ];
        for (name, value) in &env {
            for out in &outputs {
                prop_assert!(!out.contains(value.as_str()), "{name}'s value leaked into: {out}");
            }
        }
    }

    /// fly.toml is a serializer's output: any string stays one string value, no injection.
    #[test]
    fn fly_toml_cannot_be_injected(app in any::<String>(), region in any::<String>(), image in any::<String>()) {
        let mut d = Deployment::new("x", Place::Cloud);
        d.app = Some(app.clone());
        d.region = Some(region.clone());
        d.image = image.clone();
        let text = fly_toml::render(&d, false).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        let keys: Vec<&str> = parsed.keys().map(String::as_str).collect();
        prop_assert_eq!(keys, vec!["app", "primary_region", "build", "deploy", "mounts", "http_service"]);
        prop_assert_eq!(parsed["app"].as_str(), Some(app.as_str()));
        prop_assert_eq!(parsed["primary_region"].as_str(), Some(region.as_str()));
        prop_assert_eq!(parsed["build"]["image"].as_str(), Some(image.as_str()));
    }
}

/// One drawer line per §12 key, each from a set of legal and illegal spellings.
fn scale_drawer() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["sqlite", "postgres"]),
        prop::sample::select(vec!["local-fs", "s3"]),
        prop::sample::select(vec!["local", "cloud"]),
        prop::sample::select(vec!["1", "2", "3", "100", "0", "101", "3x", "-1", "1e3", "03"]),
        prop::sample::select(vec!["rolling", "immediate", "bluegreen", "canary", "blue-green"]),
        prop::option::of(prop::sample::select(vec!["ams", "iad ams", "iad", "ams ams", "AMS"])),
    )
        .prop_map(|(db, storage, place, scale, strategy, regions)| {
            let mut text = format!(
                "* d :deployment:\n:PROPERTIES:\n:ID: d\n:ENGINE_PLACE: {place}\n:APP: wb-d\n:REGION: iad\n:DATABASE: {db}\n:STORAGE: {storage}\n:STORAGE_ENDPOINT: https://s3.example.com\n:STORAGE_BUCKET: b\n:SCALE: {scale}\n:STRATEGY: {strategy}\n"
            );
            if let Some(r) = regions {
                text.push_str(&format!(":REGIONS: {r}\n"));
            }
            text.push_str(":END:\n");
            text
        })
}

proptest! {
    #![proptest_config(Config {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/properties.txt"))),
        ..Config::default()
    })]

    /// No valid deployment runs several engines on one SQLite file or (in the cloud) one
    /// machine's disk, runs two machines at once on one volume, or lists REGION again.
    #[test]
    fn no_valid_deployment_shares_what_cannot_be_shared(text in scale_drawer()) {
        let env = DeployEnv::new(
            [("WB_DATABASE_URL".to_string(), "postgres://x".to_string()),
             ("WB_S3_KEY".to_string(), "k".to_string()),
             ("WB_S3_SECRET".to_string(), "s".to_string()),
             ("WB_PUBLIC_BEARER".to_string(), "b".to_string())],
            std::iter::empty(),
        );
        let checked = check(&text, &env);
        if let Some(d) = &checked.deployment {
            prop_assert!((1..=100).contains(&d.scale));
            if d.scale > 1 {
                prop_assert_eq!(d.database, Database::Postgres);
                if d.place == Place::Cloud {
                    prop_assert_eq!(d.storage, Storage::S3);
                }
            }
            if d.needs_volume() {
                prop_assert!(!matches!(d.strategy, Rollout::BlueGreen | Rollout::Canary));
            }
            prop_assert!(!d.regions.iter().any(|r| Some(r) == d.region.as_ref()));
            let mut sorted = d.regions.clone();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), d.regions.len());
        } else {
            prop_assert!(checked.errors().count() > 0);
        }
    }
}
