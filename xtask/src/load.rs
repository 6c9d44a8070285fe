//! Loading a deployment: FILE → path, the file's bytes, the drawer, the deploy env
//! captured from the edge and the deployment's store, and the validator's answer — the
//! one way every verb gets a deployment.

use std::path::{Path, PathBuf};

use crate::core::diagnostic::{self, Diagnostic};
use crate::core::drawer::{self, Drawer};
use crate::core::names;
use crate::core::secret::DeployEnv;
use crate::core::validate::{self, Checked};
use crate::edge::Edge;
use crate::providers::resolve::Recipes;
use crate::state::{self, Paths, store};
use crate::ui::Ui;

/// FILE → a path: default `./deployment.org`; a bare name also finds
/// `deployments/<name>` and `deployments/<name>.org`.
pub fn resolve_file(cwd: &Path, file: Option<&Path>) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let Some(file) = file else {
        return PathBuf::from("deployment.org");
    };
    let given = file.to_path_buf();
    if cwd.join(&given).exists() || file.as_os_str().as_bytes().contains(&b'/') {
        return given;
    }
    let mut with_org = file.as_os_str().to_os_string();
    with_org.push(".org");
    for candidate in [
        Path::new("deployments").join(file),
        Path::new("deployments").join(with_org),
    ] {
        if cwd.join(&candidate).is_file() {
            return candidate;
        }
    }
    given
}

/// A deployment file, read and checked, with everything captured at the edge.
pub struct Loaded {
    pub path: PathBuf,
    /// The path as shown in messages.
    pub shown: String,
    pub text: Option<String>,
    pub drawer: Drawer,
    pub checked: Checked,
    pub deploy_env: DeployEnv,
    pub recipes: Result<Recipes, String>,
    pub app_dir: PathBuf,
    /// The deployment's ID (`:ID:`, else the file's stem), whatever its validity.
    pub id: String,
}

impl Loaded {
    pub fn deployment(&self) -> Option<&crate::core::deployment::Deployment> {
        self.checked.deployment.as_ref()
    }

    /// Where the deployment's state lives.
    pub fn paths(&self) -> Paths {
        Paths::for_id(&self.app_dir, &self.id)
    }

    /// The human report: every problem with its source line, then the summary if valid.
    pub fn report(&self, ui: &Ui) {
        if self.text.is_none() {
            // Not a deployment's problem: the file could not be read at all (SPEC §18).
            for d in self.checked.diagnostics.iter().filter(|d| d.is_error()) {
                ui.say(&format!(
                    "{} {}",
                    ui.paint("1;31", "error:"),
                    d.located(&self.shown)
                ));
            }
            return;
        }
        let text = diagnostic::render_report(
            &self.shown,
            self.text.as_deref(),
            &self.checked.diagnostics,
            ui.color,
        );
        if !text.is_empty() {
            crate::ui::err(&text);
        }
        if let Some(d) = self.deployment() {
            ui.say(&ui.green(&format!("valid — {}", d.summary())));
        }
    }
}

/// What checking a file's text needs beyond the text: the edge's part, captured.
pub struct Inputs<'a> {
    /// The file as shown in messages.
    pub shown: &'a str,
    /// The file's stem (the default ID).
    pub stem: &'a str,
    /// `--id`: one drawer among several.
    pub id: Option<&'a str>,
    pub program: &'a str,
    pub deploy_env: &'a DeployEnv,
    pub recipe_for: &'a dyn Fn(&str) -> Result<crate::core::contract::Contract, String>,
    pub require_secrets: bool,
}

/// The file's text → the drawer and the validator's answer: the path every verb and
/// every golden file takes.
pub fn check_file(read: &FileText, inputs: &Inputs) -> (Drawer, Checked) {
    let drawer = match &read.text {
        Some(text) => drawer::read(text, inputs.id),
        None => Drawer::default(),
    };
    check_drawer(read, drawer, inputs)
}

/// [`check_file`] for a drawer already read from `read.text` (a 1 MiB file is read once).
fn check_drawer(read: &FileText, mut drawer: Drawer, inputs: &Inputs) -> (Drawer, Checked) {
    let mut diagnostics = read.diagnostics.clone();
    diagnostics.append(&mut drawer.diagnostics);
    drawer.diagnostics = diagnostics;
    if read.text.is_none() {
        let checked = Checked {
            deployment: None,
            diagnostics: drawer.diagnostics.clone(),
        };
        return (drawer, checked);
    }
    let cx = validate::Context {
        file: inputs.shown,
        file_stem: inputs.stem,
        program: inputs.program,
        deploy_env: inputs.deploy_env,
        recipe_for: inputs.recipe_for,
        require_secrets: inputs.require_secrets,
    };
    let checked = validate::check(&drawer, &cx);
    (drawer, checked)
}

/// Reads, checks and captures. `require_secrets`: see
/// [`validate::Context::require_secrets`].
pub fn load(
    edge: &Edge,
    file: Option<&Path>,
    id: Option<&str>,
    require_secrets: bool,
) -> Result<Loaded, String> {
    let path = resolve_file(&edge.cwd, file);
    let shown = path.display().to_string();
    let read = read_file(&edge.cwd.join(&path), &edge.program);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("deployment")
        .to_string();
    load_read(
        edge,
        (edge.cwd.join(&path), shown, stem),
        read,
        id,
        require_secrets,
    )
}

/// How messages name the zero-config deployment.
pub const ZERO_CONFIG_SHOWN: &str = "(zero-config)";

/// The zero-config deployment's ID (`up-local`).
pub const ZERO_CONFIG_ID: &str = "local";

/// The zero-config deployment (`up-local`) as if it were a file: id `local`, every
/// default. Shown in messages as `(zero-config)`.
pub fn zero_config(edge: &Edge) -> Result<Loaded, String> {
    let text = format!(
        "* {ZERO_CONFIG_ID} :deployment:\n:PROPERTIES:\n:ID: {ZERO_CONFIG_ID}\n:ENGINE_PLACE: local\n:END:\n"
    );
    let read = FileText {
        text: Some(text),
        diagnostics: Vec::new(),
    };
    let named = (
        edge.cwd.join(ZERO_CONFIG_SHOWN),
        ZERO_CONFIG_SHOWN.to_string(),
        ZERO_CONFIG_ID.to_string(),
    );
    load_read(edge, named, read, None, false)
}

/// The rest of [`load`], from the text read: `(path, shown, stem)` name it.
fn load_read(
    edge: &Edge,
    (path, shown, stem): (PathBuf, String, String),
    read: FileText,
    id: Option<&str>,
    require_secrets: bool,
) -> Result<Loaded, String> {
    let app_dir = state::app_dir(&edge.vars)?;
    // The ID decides which store's secrets join the deploy env: read it first.
    let read_drawer = match &read.text {
        Some(text) => drawer::read(text, id),
        None => Drawer::default(),
    };
    let drawer_id = read_drawer.value("ID").map(str::to_string);
    let deploy_id = names::deployment_id(drawer_id.as_deref(), &stem).to_string();
    let mut store_problem = None;
    let deploy_env = if names::is_slug(&deploy_id) {
        let store = Paths::for_id(&app_dir, &deploy_id).store();
        store::capture(&edge.vars, &store).unwrap_or_else(|problem| {
            store_problem = Some(problem);
            store::env_only(&edge.vars)
        })
    } else {
        store::env_only(&edge.vars)
    };
    let recipes = Recipes::from_edge(edge, &app_dir);
    let providers_dir = edge.vars.os("WB_PROVIDERS_DIR").map(PathBuf::from);
    let spineless = |p: &str| Recipes::spineless(&edge.cwd, providers_dir.as_deref(), p);
    let recipe_for = |p: &str| match &recipes {
        Ok(r) if r.has(p) => r.header(p).map(|h| h.contract),
        Ok(r) => Err(spineless(p).unwrap_or_else(|| r.unknown(p))),
        Err(e) => Err(spineless(p).unwrap_or_else(|| e.clone())),
    };
    let inputs = Inputs {
        shown: &shown,
        stem: &stem,
        id,
        program: &edge.program,
        deploy_env: &deploy_env,
        recipe_for: &recipe_for,
        require_secrets,
    };
    let (drawer, mut checked) = check_drawer(&read, read_drawer, &inputs);
    if names::is_slug(&deploy_id) {
        for loose in state::loose_dirs(&Paths::for_id(&app_dir, &deploy_id)) {
            checked.diagnostics.push(Diagnostic::warning(None, loose));
        }
    }
    if let Some(problem) = store_problem {
        checked
            .diagnostics
            .insert(0, Diagnostic::error(None, problem));
        checked.deployment = None;
    }
    Ok(Loaded {
        path,
        shown,
        text: read.text,
        drawer,
        checked,
        deploy_env,
        recipes,
        app_dir,
        id: deploy_id,
    })
}

/// The result of loading a file from disk: its text (lossily decoded if it is not
/// UTF-8, so the rest of the report can still be made) and any problem with the bytes.
#[derive(Debug, Clone)]
pub struct FileText {
    pub text: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Deployment files are a few hundred bytes; anything past this is not one.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the file's bytes: the one place the kit touches a deployment file's bytes.
/// A FIFO, a device or a directory is refused without blocking (opened non-blocking,
/// then checked to be a regular file).
pub fn read_file(path: &Path, program: &str) -> FileText {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |message: String| FileText {
        text: None,
        diagnostics: vec![Diagnostic::error(None, message)],
    };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(format!(
                "no such file — create one with `{program} init local` (or `init cloud`)"
            ));
        }
        Err(e) => return fail(format!("cannot read the file: {e}")),
    };
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return fail("is a directory, not a deployment file".into());
        }
        if !meta.is_file() {
            return fail("is not a regular file (a FIFO, socket or device) — a deployment file is a regular Org file".into());
        }
        if meta.len() > MAX_FILE_BYTES {
            return fail(format!(
                "the file is {:.1} MB — a deployment file is a few hundred bytes; refusing to read more than 1 MiB",
                meta.len() as f64 / 1e6
            ));
        }
    }
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        return fail(format!("cannot read the file: {e}"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return fail(
            "the file is larger than 1 MiB — a deployment file is a few hundred bytes".into(),
        );
    }
    match String::from_utf8(bytes) {
        Ok(text) if text.contains('\0') => FileText {
            diagnostics: vec![Diagnostic::error(
                None,
                "the file holds NUL bytes — it is binary, not Org text",
            )],
            text: Some(text.replace('\0', "")),
        },
        Ok(text) => FileText {
            text: Some(text),
            diagnostics: Vec::new(),
        },
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).replace('\0', "");
            FileText {
                text: Some(text),
                diagnostics: vec![Diagnostic::error(
                    None,
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {at}) — save it as UTF-8 Org text"
                    ),
                )],
            }
        }
    }
}
