//! The PostgreSQL registry (`WB_DATABASE_URL`) against a real server started
//! by the test (see `common/pg.rs`). Without PostgreSQL installed the tests
//! skip with a printed reason, except under `WB_REQUIRE_TOOLS=1` (CI).

mod common;

use common::pg::{self, Pg};
use common::*;
use tempfile::TempDir;

#[test]
fn two_engines_share_one_postgres_registry() {
    let Some(pg) = Pg::start() else { return };
    // The two DSN spellings a unix socket can take; WB_REGISTRY is what the
    // kit always sets, and must be ignored once WB_DATABASE_URL is there.
    let url = pg.socket_url();
    let keywords = pg.socket_keywords();
    let mut a = start(&[
        ("WB_DATABASE_URL", &url),
        ("WB_REGISTRY", "/nonexistent/registry.db"),
    ]);
    let b = start(&[("WB_DATABASE_URL", &keywords)]);

    let bytes: Vec<u8> = (0..=255u8).chain(*b"\r\n\0end").collect();
    assert_eq!(
        a.call("PUT", "/workbooks/shared.wb", Some(&bytes)).status,
        201
    );
    let got = b.call("GET", "/workbooks/shared.wb", None);
    assert_eq!(got.status, 200, "{}", b.stderr());
    assert_eq!(got.body, bytes);

    // Replacing through the other engine is a replace (204), seen by both.
    assert_eq!(
        b.call("PUT", "/workbooks/shared.wb", Some(b"v2")).status,
        204
    );
    assert_eq!(a.call("GET", "/workbooks/shared.wb", None).body, b"v2");
    for name in ["zeta", "Alpha", "alpha", "_x"] {
        assert_eq!(
            b.call("PUT", &format!("/workbooks/{name}"), Some(b"x"))
                .status,
            201
        );
    }
    // Bytewise order, as with SQLite.
    assert_eq!(
        names(&a.call("GET", "/workbooks", None)),
        ["Alpha", "_x", "alpha", "shared.wb", "zeta"]
    );
    assert_eq!(a.call("DELETE", "/workbooks/zeta", None).status, 204);
    assert_eq!(b.call("GET", "/workbooks/zeta", None).status, 404);
    assert_eq!(b.call("DELETE", "/workbooks/zeta", None).status, 404);

    // A restart of PostgreSQL cuts every connection: the engines reconnect
    // on their own, and the request that found the connection gone is
    // retried rather than failed.
    pg.restart();
    assert_eq!(b.call("GET", "/workbooks/shared.wb", None).body, b"v2");
    assert_eq!(
        a.call("PUT", "/workbooks/after-restart", Some(b"r")).status,
        201
    );
    assert_eq!(b.call("GET", "/workbooks/after-restart", None).body, b"r");
    assert!(b.stderr().contains("reconnecting"), "{}", b.stderr());

    // Data outlives an engine: stop one, start a new one, read it back.
    a.stop();
    let c = start(&[("WB_DATABASE_URL", &url)]);
    assert_eq!(c.call("GET", "/workbooks/shared.wb", None).body, b"v2");

    let log = a.stderr();
    assert!(log.contains("registry PostgreSQL"), "{log}");
    assert!(log.contains("WB_REGISTRY is not used"), "{log}");
    for engine_log in [log, b.stderr(), c.stderr()] {
        assert!(!engine_log.contains(&url), "DSN in the log:\n{engine_log}");
        assert!(
            !engine_log.contains(&keywords),
            "DSN in the log:\n{engine_log}"
        );
        assert!(
            !engine_log.contains(pg.socket_dir.to_str().unwrap()),
            "the DSN's host in the log:\n{engine_log}"
        );
    }
}

#[test]
fn password_dsn_works_and_a_failing_dsn_exits_without_its_password() {
    let Some(pg) = Pg::start() else { return };
    let dir = TempDir::new().unwrap();

    // The right password over TCP (SCRAM) works, and is not logged.
    let good = pg.tcp_url(pg::PASSWORD);
    let mut engine = start(&[("WB_DATABASE_URL", &good)]);
    assert_eq!(engine.call("PUT", "/workbooks/p", Some(b"1")).status, 201);
    engine.stop();
    assert!(
        !engine.stderr().contains(pg::PASSWORD),
        "{}",
        engine.stderr()
    );

    // Each failure: exit 1, the driver's reason, never the password.
    let secret = "Wrong-Secret-4e1f";
    let cases = [
        (pg.tcp_url(secret), "password authentication failed"),
        (
            format!(
                "postgres://{}:{secret}@/{}?host={}/absent&port={}",
                pg::USER,
                pg::DB,
                pg.path().display(),
                pg.port
            ),
            "error connecting to server",
        ),
        (
            format!(
                "host={} port={} user={} password='{secret}' dbname=no_such_db",
                pg.socket_dir.display(),
                pg.port,
                pg::USER
            ),
            "does not exist",
        ),
    ];
    for (dsn, reason) in &cases {
        let (status, stdout, stderr) = run_to_exit_output(
            &[("WB_WEB", "1"), ("PORT", "0"), ("WB_DATABASE_URL", dsn)],
            &dir.path().join("disco"),
        );
        assert_eq!(status.code(), Some(1), "{dsn}: {stderr}");
        assert!(stderr.contains(reason), "{reason:?} not in:\n{stderr}");
        assert!(stderr.contains("WB_DATABASE_URL"), "{stderr}");
        for out in [&stdout, &stderr] {
            assert!(!out.contains(secret), "password leaked:\n{out}");
        }
        assert!(!dir.path().join("disco/runtime.json").exists());
    }
}

#[test]
fn unusable_database_urls_are_refused_with_exit_2() {
    // No server needed: these never get as far as connecting.
    let dir = TempDir::new().unwrap();
    let secret = "Refused-Secret-77aa";
    for (dsn, reason) in [
        (
            format!("postgres://wb:{secret}@db.example:5432/wb?sslmode=require"),
            "without TLS",
        ),
        (
            format!("postgres://wb:{secret}@db.example:notaport/wb"),
            "not a PostgreSQL connection string",
        ),
        (
            format!("host=db.example password={secret} sslmode=verify-full"),
            "without TLS",
        ),
        (format!("user=wb password={secret}"), "names no host"),
        (
            format!("host=/run/pg password={secret} dbname=wb"),
            "names no user",
        ),
    ] {
        let (status, stdout, stderr) = run_to_exit_output(
            &[("WB_WEB", "1"), ("WB_DATABASE_URL", &dsn)],
            &dir.path().join("disco"),
        );
        assert_eq!(status.code(), Some(2), "{dsn}: {stderr}");
        assert!(stderr.contains(reason), "{reason:?} not in:\n{stderr}");
        for out in [&stdout, &stderr] {
            assert!(!out.contains(secret), "password leaked:\n{out}");
        }
    }
}
