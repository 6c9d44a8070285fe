//! The ssh + docker recipe, for real (SPEC §13.5, §18 "ssh"): Debian's OpenSSH server on
//! a loopback port with a throwaway host key, user key and known_hosts, in front of the
//! real dockerd. apply → verify 200 through the published port → PUT a workbook → down
//! (volume kept) → apply → the same bytes; the env file on the "host" is 0600; no canary
//! secret in any process's argv on either side (`/proc/*/cmdline` sampled throughout);
//! `recipe check ssh --live` has no findings. `WB_REQUIRE_TOOLS=1` makes a missing sshd
//! or dockerd a failure.

#[path = "local_support/mod.rs"]
mod local_support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use local_support::{http, workbook_bytes};
use wb_tests::{Sandbox, repo_root};

const IMAGE: &str = "localhost/wb-engine:dev";

fn required(what: &str, ok: bool) -> bool {
    if !ok {
        if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{what} is required (WB_REQUIRE_TOOLS=1) — see .ci/run");
        }
        eprintln!("SKIPPED: {what} is not available");
    }
    ok
}

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// sshd, ssh, a reachable dockerd and the engine image in it (loaded from podman when
/// only podman has it).
fn ready() -> bool {
    if !required(
        "/usr/sbin/sshd (openssh-server)",
        Path::new("/usr/sbin/sshd").is_file(),
    ) || !required(
        "ssh and ssh-keygen",
        sh("command -v ssh && command -v ssh-keygen"),
    ) || !required("a running dockerd (docker info)", sh("docker info"))
    {
        return false;
    }
    if !sh(&format!("docker image inspect {IMAGE}")) {
        // Built by the kit itself, with docker (as CI does on a fresh machine).
        let built = Command::new(wb_tests::kit_bin())
            .args(["engine", "image"])
            .current_dir(repo_root())
            .env("WB_VMM_BACKEND", "docker")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !built {
            sh(&format!("podman save {IMAGE} | docker load"));
        }
    }
    required(
        &format!("the engine image {IMAGE} in docker (cargo xtask engine image)"),
        sh(&format!("docker image inspect {IMAGE}")),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway sshd on 127.0.0.1, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen");
}

/// Starts sshd with keys in `dir` and writes `home/.ssh/config` for the client.
fn start_sshd(dir: &Path, home: &Path) -> Sshd {
    std::fs::create_dir_all("/run/sshd").ok();
    keygen(&dir.join("host_key"));
    keygen(&dir.join("id"));
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let d = dir.display();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\n"
        ),
    )
    .unwrap();
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    std::fs::write(
        dir.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host 127.0.0.1\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stderr(Stdio::null())
        .spawn()
        .expect("sshd starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sshd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port }
}

/// Samples every process's argv until stopped; returns the distinct command lines.
fn sample_argv(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<BTreeSet<String>> {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(entries) = std::fs::read_dir("/proc") {
                for e in entries.flatten() {
                    if let Ok(raw) = std::fs::read(e.path().join("cmdline"))
                        && !raw.is_empty()
                    {
                        seen.insert(String::from_utf8_lossy(&raw).replace('\0', " "));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

fn bearer(sb: &Sandbox, id: &str) -> String {
    let store = std::fs::read_to_string(sb.wb_home().join(id).join("secrets.env")).unwrap();
    store
        .lines()
        .find_map(|l| l.strip_prefix("WB_PUBLIC_BEARER="))
        .expect("the bearer is stored")
        .trim_matches('"')
        .to_string()
}

fn get_until_ok(port: u16, token: &str, path: &str) -> (u16, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = std::panic::catch_unwind(|| http("GET", port, path, token, b""));
        match answer {
            Ok(a) if a.0 != 503 => return a,
            _ if Instant::now() > deadline => panic!("{path} never answered on {port}"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn the_ssh_recipe_deploys_over_a_real_sshd_onto_a_real_dockerd() {
    if !ready() {
        return;
    }
    let mut sb = Sandbox::new();
    let keys = sb.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let sshd = start_sshd(&keys, &sb.home());
    let publish = free_port();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("{:x}{nanos:x}", std::process::id());
    let app = format!("wb-ssh-{tag}");
    let canary = format!("ssh-cnry-{tag}-S1");
    let file = sb
        .write(
            "work/ssh.org",
            &format!(
                "* ssh :deployment:\n:PROPERTIES:\n:ID: sshtest\n:ENGINE_PLACE: cloud\n:PROVIDER: ssh\n:APP: {app}\n:HOST: root@127.0.0.1:{}\n:PUBLISH: 127.0.0.1:{publish}\n:IMAGE: {IMAGE}\n:END:\n#+DEPLOY_SECRETS: SSH_CANARY\n",
                sshd.port
            ),
        )
        .display()
        .to_string();
    sb.set("SSH_CANARY", canary.clone());
    sb.set(
        "WB_PROVIDERS_DIR",
        repo_root().join("recipes").display().to_string(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_argv(stop.clone());
    let cleanup = Cleanup {
        sb: &sb,
        file: file.clone(),
    };

    let run = sb.deploy(&["apply", &file]);
    run.expect_code(0);
    assert_eq!(run.stdout, format!("url: http://127.0.0.1:{publish}\n"));
    let env_file = PathBuf::from(format!("/root/.wb/{app}.env"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", env_file.display());
    let token = bearer(&sb, "sshtest");
    assert_eq!(get_until_ok(publish, &token, "/health").0, 200);
    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(0);
    let book = workbook_bytes();
    assert_eq!(
        http("PUT", publish, "/workbooks/keep.wb", &token, &book).0,
        201
    );

    let down = sb.deploy(&["down", &file]);
    down.expect_code(0);
    assert!(
        down.stderr.contains(&format!("kept: volume {app}-data")),
        "{}",
        down.stderr
    );
    assert!(sh(&format!("docker volume inspect {app}-data")));
    assert!(!sh(&format!("docker container inspect {app}")));

    sb.deploy(&["apply", &file]).expect_code(0);
    let (code, body) = get_until_ok(publish, &token, "/workbooks/keep.wb");
    assert_eq!(code, 200);
    assert!(body == book, "the workbook came back changed");
    // A second apply changes nothing: the container is the same one.
    let id = |name: &str| {
        let out = Command::new("docker")
            .args(["inspect", "-f", "{{.Id}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let before = id(&app);
    sb.deploy(&["apply", &file, "--force"]).expect_code(0);
    assert_eq!(
        id(&app),
        before,
        "an unchanged image and env replaced the container"
    );
    // SIZE (the recipe's `# wb-supports:`) is a change: the container is replaced with
    // docker's memory and cpu limits.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(":END:", ":SIZE: t2\n:END:")).unwrap();
    sb.deploy(&["apply", &file]).expect_code(0);
    assert_ne!(id(&app), before, "a new SIZE replaced the container");
    let limits = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            &app,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&limits.stdout).trim(),
        "536870912 1000000000"
    );
    assert_eq!(get_until_ok(publish, &token, "/workbooks/keep.wb").1, book);

    // Without the throwaway config, ssh would have to ask about an unknown host key:
    // BatchMode makes it fail at once with its own message, and the recipe says what to do.
    let config = sb.home().join(".ssh/config");
    std::fs::rename(&config, sb.home().join(".ssh/config.off")).unwrap();
    let prompt = sb.deploy(&["status", &file]);
    std::fs::rename(sb.home().join(".ssh/config.off"), &config).unwrap();
    prompt.expect_code(255);
    assert!(
        prompt.stderr.contains("Host key verification failed")
            || prompt.stderr.contains("Permission denied"),
        "{}",
        prompt.stderr
    );
    assert!(prompt.stderr.contains("never prompts"), "{}", prompt.stderr);

    sb.deploy(&["down", &file]).expect_code(0);
    let check = sb.deploy(&[
        "recipe", "check", "ssh", "--live", "--file", &file, "--json",
    ]);
    assert_eq!(
        check.json()["findings"],
        serde_json::json!([]),
        "{}",
        check.stderr
    );
    check.expect_code(0);

    stop.store(true, Ordering::SeqCst);
    let seen = sampler.join().unwrap();
    assert!(
        seen.iter().any(|c| c.contains("docker run -d --name")),
        "the sampler saw the host side"
    );
    for line in &seen {
        assert!(
            !line.contains(&canary) && !line.contains(&token),
            "a secret reached an argv: {line}"
        );
    }
    drop(cleanup);
}

/// `down --purge --yes` when dropped: nothing is left on the "host".
struct Cleanup<'a> {
    sb: &'a Sandbox,
    file: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.sb.deploy(&["down", &self.file, "--purge", "--yes"]);
    }
}

#[test]
fn a_bad_host_and_a_prompting_ssh_are_refused_with_what_to_do() {
    let mut sb = Sandbox::new();
    sb.set(
        "WB_PROVIDERS_DIR",
        repo_root().join("recipes").display().to_string(),
    );
    let file = sb
        .write(
            "work/bad.org",
            "* d :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: cloud\n:PROVIDER: ssh\n:APP: wb-bad\n:HOST: example.com\n:END:\n",
        )
        .display()
        .to_string();
    let run = sb.deploy(&["validate", &file]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "HOST `example.com` is not an ssh target `user@host[:port]` — a `ssh` provider property of type ssh-target"
        ),
        "{}",
        run.stderr
    );
    if !required("ssh", sh("command -v ssh")) {
        return;
    }
    // Nothing listens there: ssh fails (exit 255) with its own message, and the recipe
    // says what to do; BatchMode means no prompt could ever hang the run.
    let file = sb
        .write(
            "work/nohost.org",
            &format!(
                "* d :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: cloud\n:PROVIDER: ssh\n:APP: wb-nohost\n:HOST: root@127.0.0.1:{}\n:END:\n",
                free_port()
            ),
        )
        .display()
        .to_string();
    // A value docker's env file cannot carry is refused by name before any ssh call.
    sb.set("MULTI", "line one\nline two");
    let multi = sb
        .write(
            "work/multi.org",
            &format!(
                "* d :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: cloud\n:PROVIDER: ssh\n:APP: wb-multi\n:HOST: root@127.0.0.1:{}\n:END:\n#+DEPLOY_SECRETS: MULTI\n",
                free_port()
            ),
        )
        .display()
        .to_string();
    let run = sb.deploy(&["apply", &multi]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("MULTI holds a line break; docker --env-file carries one line per variable"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("line two") && !run.stderr.contains("Connection refused"));

    let run = sb.deploy(&["apply", &file]);
    run.expect_code(255);
    assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ssh runs with BatchMode=yes and never prompts"),
        "{}",
        run.stderr
    );
}
