//! The container backends: one implementation for the docker and podman CLIs.
//!
//! `run -d --name wb-<id> -p 127.0.0.1:<free port>:<PORT> -v <data>:/data
//! -v <disco>:/disco -e NAME … <image>`: every engine variable is passed as `-e NAME`
//! (the name only) with its value in the client process's environment, so no value —
//! secret or not — is ever in an argv. On podman a secret value goes further: it is
//! handed to `podman secret create wb-<id>-<NAME> -` on stdin and the container gets
//! `--secret wb-<id>-<NAME>,type=env,target=<NAME>` (SPEC §18 "Secrets on backends");
//! `down` removes those secrets. docker keeps `-e` values in its container config
//! (`docker inspect` shows them) — see README "Security notes".
//!
//! The image is the deployment's IMAGE when the tool has it locally. The default IMAGE
//! (`ghcr.io/workbooks-sh/runtime:latest`) is never pulled implicitly (`--pull never`):
//! when the tool does not have it, the reference engine image `localhost/wb-engine:dev`
//! is used instead, built from the workspace on first use. Any other IMAGE the tool does
//! not have is pulled by the tool as it runs it.
//!
//! Deciding costs one `image inspect` (~50 ms with podman). Once the decision is
//! remembered (`<state dir>/image`), `run -d` starts that image at once while the same
//! lookup confirms it beside it; should the answer differ (the runtime image was pulled
//! since), the container is replaced right away.

use super::image::{self, REFERENCE_IMAGE};
use super::registry::docker_reachable;
use super::{Backend, Failure, Instance, Kind, Parts, Presence, Spec};
use crate::core::deployment::DEFAULT_IMAGE;
use crate::core::engine_env::DATA_DIR;
use crate::edge::Edge;
use crate::report::Report;

pub struct Container {
    kind: Kind,
    edge: Edge,
    /// The image `run` starts: resolved, or the one resolved last time (speculative).
    image: Option<String>,
    /// The lookup confirming a speculative image, running beside `run -d`.
    pending: Option<std::thread::JoinHandle<Vec<(String, String)>>>,
    /// The image to run and its id, once certain.
    resolved: Option<(String, String)>,
}

/// The id placeholder of an image the tool pulls as it runs it.
const PULLED: &str = "pulled on run";

/// The file remembering what the default IMAGE resolved to last time.
const REMEMBERED: &str = "image";

fn to_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Whether a tool's error says the image is not there (with `--pull never`).
fn says_no_image(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("image not known")
        || t.contains("no such image")
        || t.contains("unable to find image")
}

impl Container {
    pub fn new(kind: Kind, edge: &Edge) -> Container {
        assert!(kind.is_container());
        Container {
            kind,
            edge: edge.clone(),
            image: None,
            pending: None,
            resolved: None,
        }
    }

    fn tool(&self) -> &'static str {
        self.kind.name()
    }

    /// `<tool> args…`, capturing both streams, never failing on a non-zero exit.
    fn call(&self, args: &[&str]) -> Result<std::process::Output, String> {
        duct::cmd(self.tool(), args)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("cannot run {}: {e}", self.tool()))
    }

    /// What `image inspect` is asked about: IMAGE, and for the default IMAGE the
    /// reference image too.
    fn refs(spec: &Spec) -> Vec<String> {
        if spec.image == DEFAULT_IMAGE {
            vec![DEFAULT_IMAGE.into(), REFERENCE_IMAGE.into()]
        } else {
            vec![spec.image.clone()]
        }
    }

    /// Makes the image certain: waits for the lookup running beside `run`, or looks up
    /// (and builds) now.
    fn settle(&mut self, report: &dyn Report, spec: &Spec) -> Result<(String, String), String> {
        if let Some(resolved) = &self.resolved {
            return Ok(resolved.clone());
        }
        let (found, speculative) = match self.pending.take() {
            Some(handle) => (handle.join().unwrap_or_default(), true),
            None => (
                image::image_ids(self.tool(), &to_strs(&Self::refs(spec))),
                false,
            ),
        };
        // A confirmed speculative choice was explained the first time: no repeat.
        let quiet = speculative.then_some(self.image.as_deref()).flatten();
        let resolved = self.resolve_image(report, spec, &found, quiet)?;
        self.resolved = Some(resolved.clone());
        Ok(resolved)
    }

    /// The image to run and its id, given what `image inspect` found.
    fn resolve_image(
        &self,
        report: &dyn Report,
        spec: &Spec,
        found: &[(String, String)],
        quiet: Option<&str>,
    ) -> Result<(String, String), String> {
        let tool = self.tool();
        let id_of = |r: &str| found.iter().find(|(t, _)| t == r).map(|(_, id)| id.clone());
        if let Some(id) = id_of(&spec.image) {
            return Ok((spec.image.clone(), id));
        }
        if spec.image != DEFAULT_IMAGE {
            // An IMAGE given by id or digest has no tag to match: one answer is its own.
            if let [(_, id)] = found {
                return Ok((spec.image.clone(), id.clone()));
            }
            report.info(&format!(
                "image {} is not present locally — {tool} will pull it",
                spec.image
            ));
            return Ok((spec.image.clone(), PULLED.into()));
        }
        if quiet != Some(REFERENCE_IMAGE) {
            report.info(&format!(
                "image {DEFAULT_IMAGE} is not present locally (the kit never pulls it implicitly) — using the reference engine image {REFERENCE_IMAGE}"
            ));
        }
        if let Some(id) = id_of(REFERENCE_IMAGE) {
            return Ok((REFERENCE_IMAGE.into(), id));
        }
        report.info(&format!(
            "{REFERENCE_IMAGE} is not built yet — building it (once; `cargo xtask engine image` rebuilds it)"
        ));
        image::build_image(&self.edge, report, tool, REFERENCE_IMAGE)
            .map_err(|e| format!("{e}\n(or `{tool} pull {DEFAULT_IMAGE}` and apply again)"))?;
        let id = image::image_id(tool, REFERENCE_IMAGE)
            .ok_or_else(|| format!("{tool} built {REFERENCE_IMAGE} but cannot find it"))?;
        Ok((REFERENCE_IMAGE.into(), id))
    }

    /// `<tool> run -d … image`; a leftover container of the same name is removed and
    /// the run tried once more.
    fn run_image(&self, spec: &Spec, port: u16, image: &str) -> Result<Instance, Failure> {
        let by_secret = self.kind == Kind::Podman;
        if by_secret {
            self.create_secrets(spec)?;
        }
        let args = run_args(spec, port, image, by_secret);
        let name = spec.name();
        let mut last_err = String::new();
        for _ in 0..2 {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = duct::cmd(self.tool(), &argv)
                .stdout_capture()
                .stderr_capture()
                .unchecked();
            for (n, value) in &spec.env.0 {
                if by_secret && value.is_secret() {
                    continue; // delivered as a podman secret
                }
                // The child env boundary: the one place a value is exposed.
                cmd = cmd.env(n, value.expose());
            }
            let out = cmd
                .run()
                .map_err(|e| format!("cannot run {}: {e}", self.tool()))?;
            if out.status.success() {
                let mut inst = Instance::new(self.kind, port);
                inst.container = Some(name);
                inst.image = Some(image.to_string());
                return Ok(inst);
            }
            last_err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let lower = last_err.to_ascii_lowercase();
            if super::says_port_taken(&last_err) {
                // A created-but-not-started container is left behind: clear it.
                self.remove(&name)?;
                return Err(Failure::PortTaken(last_err));
            }
            if lower.contains("already in use") && lower.contains("name") {
                self.remove(&name)?;
                continue;
            }
            break;
        }
        let _ = self.remove(&name);
        Err(Failure::Other(format!(
            "`{} run` failed: {last_err}{}",
            self.tool(),
            rlimit_hint(&last_err)
                .map(|h| format!("\n  {h}"))
                .unwrap_or_default()
        )))
    }

    fn inspect(&self, name: &str) -> Option<(String, Option<u32>, Option<i64>)> {
        let out = self
            .call(&[
                "inspect",
                "--type",
                "container",
                "--format",
                "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
                name,
            ])
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let status = words.next()?.to_string();
        let pid = words
            .next()
            .and_then(|p| p.parse().ok())
            .filter(|p| *p != 0);
        let code = words.next().and_then(|c| c.parse().ok());
        Some((status, pid, code))
    }

    /// podman: each secret value into `podman secret create NAME -` (value on stdin,
    /// never in an argv or the client's env), replacing one left from before.
    fn create_secrets(&self, spec: &Spec) -> Result<(), String> {
        for (name, value) in spec.env.0.iter().filter(|(_, v)| v.is_secret()) {
            let id = secret_id(spec, name);
            let _ = self.call(&["secret", "rm", &id]);
            let out = duct::cmd(self.tool(), ["secret", "create", id.as_str(), "-"])
                .stdin_bytes(value.expose().as_bytes().to_vec())
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .map_err(|e| format!("cannot run {}: {e}", self.tool()))?;
            if !out.status.success() {
                return Err(format!(
                    "`{} secret create {id}` failed: {}",
                    self.tool(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(())
    }

    /// podman: removes every `wb-<id>-*` secret (those of names since undeclared too).
    fn remove_secrets(&self, spec: &Spec) -> Result<(), String> {
        let out = self.call(&["secret", "ls", "--format", "{{.Name}}"])?;
        let prefix = secret_id(spec, "");
        for id in String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(&prefix))
        {
            let gone = self.call(&["secret", "rm", id])?;
            if !gone.status.success() {
                return Err(format!(
                    "`{} secret rm {id}` failed: {}",
                    self.tool(),
                    String::from_utf8_lossy(&gone.stderr).trim()
                ));
            }
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let out = self.call(&["rm", "-f", name])?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || err.to_ascii_lowercase().contains("no such container") {
            Ok(())
        } else {
            Err(format!(
                "`{} rm -f {name}` failed: {}",
                self.tool(),
                err.trim()
            ))
        }
    }
}

/// The argv after the tool's name: names only, never a value.
/// What to do when the OCI runtime could not set a resource limit (`error setting rlimit
/// type 7`: a rootless or nested podman whose default ulimits exceed the host's hard
/// limit). `None` for any other failure.
pub fn rlimit_hint(text: &str) -> Option<String> {
    let rest =
        &text[text.find("error setting rlimit type ")? + "error setting rlimit type ".len()..];
    let number: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let limit = match number.as_str() {
        "7" => "nofile=1024:1024",
        "6" => "nproc=1024:1024",
        _ => "nofile=1024:1024\", \"nproc=1024:1024",
    };
    Some(format!(
        "the container runtime may not raise resource limit {number} on this host (rootless or nested) — set `default_ulimits = [\"{limit}\"]` under [containers] in ~/.config/containers/containers.conf (or the file CONTAINERS_CONF names), or use docker (WB_VMM_BACKEND=docker)"
    ))
}

/// The podman secret holding `name`'s value for this deployment.
fn secret_id(spec: &Spec, name: &str) -> String {
    format!("{}-{name}", spec.name())
}

/// `by_secret` (podman): secret values are referenced as podman secrets, not `-e`.
pub fn run_args(spec: &Spec, port: u16, image: &str, by_secret: bool) -> Vec<String> {
    let mut args = vec!["run".to_string(), "-d".into()];
    if image == DEFAULT_IMAGE || image == REFERENCE_IMAGE {
        // Never a network pull for these: resolved locally (or built) beforehand.
        args.extend(["--pull".into(), "never".into()]);
    }
    args.extend([
        "--name".into(),
        spec.name(),
        "--label".into(),
        format!("sh.workbooks.deployment={}", spec.id),
        "-p".into(),
        format!("127.0.0.1:{port}:{}", spec.guest_port),
        "-v".into(),
        format!("{}:{DATA_DIR}", spec.data.display()),
        "-v".into(),
        format!("{}:/disco", spec.disco.display()),
    ]);
    if let Some(dir) = spec
        .env
        .0
        .iter()
        .find(|(n, _)| n == "WB_DATABASE_URL")
        .and_then(|(_, v)| socket_dir(v.expose()))
    {
        // A DSN on a unix socket: the engine in the container reaches it at the same
        // path (SPEC §18 "Local SCALE"). The path is not a secret; the DSN stays in env.
        args.extend(["-v".into(), format!("{dir}:{dir}")]);
    }
    if let Some((memory_mb, cpus)) = spec.limits {
        args.extend([
            "--memory".into(),
            format!("{memory_mb}m"),
            "--cpus".into(),
            cpus.to_string(),
        ]);
    }
    for (name, value) in &spec.env.0 {
        if by_secret && value.is_secret() {
            args.push("--secret".into());
            args.push(format!("{},type=env,target={name}", secret_id(spec, name)));
        } else {
            args.push("-e".into());
            args.push(name.to_string());
        }
    }
    args.push(image.to_string());
    args
}

/// The unix-socket directory a PostgreSQL DSN names as its host, if any: `host=/dir`
/// in a URL's query or among key=value words (libpq's two spellings).
pub fn socket_dir(dsn: &str) -> Option<String> {
    let dsn = dsn.trim();
    let words: Vec<&str> = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        dsn.split_once('?')?.1.split('&').collect()
    } else {
        dsn.split_whitespace().collect()
    };
    words.iter().find_map(|w| {
        let value = w.strip_prefix("host=")?;
        let value = value.replace("%2F", "/").replace("%2f", "/");
        (value.starts_with('/') && !value.contains(':') && !value.contains(',')).then_some(value)
    })
}

impl Backend for Container {
    /// Checks the tool and decides the image: the remembered one (or a non-default
    /// IMAGE) is started at once while its lookup runs beside `run -d`; otherwise the
    /// image is resolved (and the reference image built) first.
    fn ensure(&mut self, report: &dyn Report, spec: &Spec) -> Result<(), String> {
        let tool = self.tool();
        if self.edge.vars.which(tool).is_none() {
            return Err(format!(
                "{tool} is not on PATH — install it, or pick another backend with WB_VMM_BACKEND (docker, podman, krunvm, process)"
            ));
        }
        if self.kind == Kind::Docker && !docker_reachable(&self.edge) {
            return Err("the docker daemon is not reachable (`docker info` fails) — start it, or pick another backend with WB_VMM_BACKEND".into());
        }
        let remembered = std::fs::read_to_string(spec.dir.join(REMEMBERED))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|r| r == DEFAULT_IMAGE || r == REFERENCE_IMAGE);
        let speculative = if spec.image != DEFAULT_IMAGE {
            Some(spec.image.clone())
        } else {
            remembered
        };
        match speculative {
            Some(image) => {
                let refs = Self::refs(spec);
                self.pending = Some(std::thread::spawn(move || {
                    image::image_ids(tool, &to_strs(&refs))
                }));
                self.image = Some(image);
            }
            None => self.image = Some(self.settle(report, spec)?.0),
        }
        Ok(())
    }

    fn parts(&mut self, report: &dyn Report, spec: &Spec) -> Result<Parts, String> {
        let (image, id) = self.settle(report, spec)?;
        Ok(vec![("local:image".into(), format!("{image}@{id}"))])
    }

    /// Nothing to do ahead: `run -d` creates and starts in one call of the tool (one
    /// round trip fewer than `create` + `start`); a leftover container of the same name
    /// is removed when `run` meets it.
    fn create(&mut self, _spec: &Spec, _port: u16) -> Result<(), Failure> {
        Ok(())
    }

    fn run(&mut self, report: &dyn Report, spec: &Spec, port: u16) -> Result<Instance, Failure> {
        let image = self.image.clone().expect("ensure ran");
        let inst = match self.run_image(spec, port, &image) {
            Err(Failure::Other(e)) if self.resolved.is_none() && says_no_image(&e) => {
                // The remembered image is gone: resolve (and build) for real.
                let (image, _) = self.settle(report, spec)?;
                self.image = Some(image.clone());
                self.run_image(spec, port, &image)?
            }
            other => other?,
        };
        // Confirm a speculative start: when the answer differs (the runtime image was
        // pulled since, say), run what it is now.
        let (resolved, _) = self.settle(report, spec)?;
        let used = self.image.clone().unwrap_or_default();
        let inst = if resolved == used {
            inst
        } else {
            report.info(&format!(
                "switching to {resolved}: it is present locally now"
            ));
            self.remove(&spec.name())?;
            self.image = Some(resolved.clone());
            self.run_image(spec, port, &resolved)?
        };
        // An image the tool pulled while running it has an id only now.
        let tool = self.tool();
        if let Some((image, id)) = &mut self.resolved
            && id == PULLED
            && let Some(now) = image::image_id(tool, image)
        {
            *id = now;
        }
        let _ = crate::state::atomic_write(
            &spec.dir.join(REMEMBERED),
            format!("{resolved}\n").as_bytes(),
            0o600,
        );
        Ok(inst)
    }

    fn status(&self, spec: &Spec, inst: &Instance) -> Presence {
        let name = inst.container.clone().unwrap_or_else(|| spec.name());
        match self.inspect(&name) {
            Some((status, pid, _)) if status == "running" => Presence::Running { pid },
            Some((status, _, code)) => Presence::Stopped {
                why: match code {
                    Some(code) if status == "exited" => {
                        format!("container {name} exited with code {code}")
                    }
                    _ => format!("container {name} is {status}"),
                },
            },
            None => Presence::Absent,
        }
    }

    fn down(&self, spec: &Spec, inst: &Instance) -> Result<(), String> {
        let name = inst.container.clone().unwrap_or_else(|| spec.name());
        if let Presence::Running { .. } = self.status(spec, inst) {
            // SIGTERM first: the engine removes runtime.json and exits 0.
            let _ = self.call(&["stop", "-t", "5", &name]);
        }
        self.remove(&name)?;
        if self.kind == Kind::Podman {
            self.remove_secrets(spec)?;
        }
        Ok(())
    }

    /// Stopped, not removed: the tool keeps the container's log for `logs`.
    fn stop(&self, spec: &Spec, inst: &Instance) -> Result<(), String> {
        let name = inst.container.clone().unwrap_or_else(|| spec.name());
        self.call(&["stop", "-t", "5", &name]).map(|_| ())
    }

    /// The whole log from the tool, cut to the last `tail` lines here: podman 4.3's own
    /// `logs --tail` loses a line the engine wrote in two pieces (conmon records a
    /// partial `P` entry, then an `F` entry holding only the newline) and answers a
    /// blank line instead — a crash at boot then showed an empty log.
    fn logs(&self, spec: &Spec, inst: &Instance, tail: Option<usize>) -> Result<String, String> {
        let name = inst.container.clone().unwrap_or_else(|| spec.name());
        let out = duct::cmd(self.tool(), ["logs", name.as_str()])
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("cannot run {}: {e}", self.tool()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(match tail {
                Some(n) => super::tail(&text, n),
                None => text,
            })
        } else {
            Err(format!(
                "`{} logs {name}` failed: {}",
                self.tool(),
                text.trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_dsn_names_its_directory_and_others_none() {
        for (dsn, want) in [
            (
                "postgres://wb@/wb?host=/tmp/pg/sock&port=5433",
                Some("/tmp/pg/sock"),
            ),
            (
                "postgresql://wb@/wb?port=1&host=%2Frun%2Fpg",
                Some("/run/pg"),
            ),
            ("host=/tmp/s port=5432 user=wb dbname=wb", Some("/tmp/s")),
            ("postgres://wb:pw@127.0.0.1:5432/wb", None),
            ("host=db.example.com user=wb", None),
            ("postgres://wb@/wb?host=/a,/b", None),
        ] {
            assert_eq!(socket_dir(dsn).as_deref(), want, "{dsn}");
        }
    }

    #[test]
    fn instances_size_and_socket_shape_the_run() {
        let mut spec = super::super::test_spec("demo", None).instance(2);
        spec.limits = Some((2048, 2));
        let args = run_args(&spec, 41002, REFERENCE_IMAGE, false).join(" ");
        assert!(args.contains("--name wb-demo.2 "), "{args}");
        assert!(
            args.contains("-v /st/demo/data:/data -v /st/demo/instances/2/disco:/disco"),
            "{args}"
        );
        assert!(args.contains("--memory 2048m --cpus 2"), "{args}");
        assert!(!args.contains("/tmp/pg"), "{args}");
        spec.env.0.push((
            "WB_DATABASE_URL".into(),
            crate::core::engine_env::EnvValue::Secret(crate::core::secret::Secret::new(
                "postgres://wb@/wb?host=/tmp/pg/sock",
            )),
        ));
        let args = run_args(&spec, 41002, REFERENCE_IMAGE, false).join(" ");
        assert!(args.contains("-v /tmp/pg/sock:/tmp/pg/sock"), "{args}");
        assert!(!args.contains("postgres://"), "{args}");
    }

    #[test]
    fn run_args_carry_names_never_values() {
        let spec = super::super::test_spec("demo", Some("canary-42"));
        let args = run_args(&spec, 41001, REFERENCE_IMAGE, false);
        let line = args.join(" ");
        assert!(
            line.starts_with("run -d --pull never --name wb-demo "),
            "{line}"
        );
        assert!(line.contains("-p 127.0.0.1:41001:4000"), "{line}");
        assert!(
            line.contains("-v /st/demo/data:/data -v /st/demo/disco:/disco"),
            "{line}"
        );
        assert!(line.contains("-e CANARY_SECRET"), "{line}");
        assert!(line.contains("-e PORT -e WB_DATA"), "{line}");
        assert!(!line.contains("canary-42"), "{line}");
        let env_args: Vec<_> = args
            .windows(2)
            .filter(|w| w[0] == "-e")
            .map(|w| &w[1])
            .collect();
        assert_eq!(env_args.len(), spec.env.0.len());
        assert!(env_args.iter().all(|a| !a.contains('=')), "{line}");
        assert_eq!(args.last().map(String::as_str), Some(REFERENCE_IMAGE));
    }

    #[test]
    fn podman_run_args_reference_secrets_by_name() {
        let spec = super::super::test_spec("demo", Some("canary-42"));
        let line = run_args(&spec, 41001, REFERENCE_IMAGE, true).join(" ");
        assert!(
            line.contains("--secret wb-demo-CANARY_SECRET,type=env,target=CANARY_SECRET"),
            "{line}"
        );
        assert!(!line.contains("-e CANARY_SECRET"), "{line}");
        assert!(line.contains("-e PORT"), "{line}");
        assert!(!line.contains("canary-42"), "{line}");
    }
}
