//! wb-engine: the reference workbook engine. See README.md for the contract.

mod config;
mod disco;
mod http;
mod server;
mod store;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use config::{Config, TokenSource};
use store::Store;

/// Exit code for a failure after the configuration was accepted.
const EXIT_RUNTIME: u8 = 1;

/// How long shutdown may take before the signal thread ends the process itself.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    // Handlers first: as PID 1 a signal with the default disposition is
    // simply dropped, so a SIGTERM during start-up must already be caught.
    let signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wb-engine: cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };

    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.message);
            return ExitCode::from(u8::try_from(e.code).unwrap_or(EXIT_RUNTIME));
        }
    };
    let names = config::wb_names();
    eprintln!(
        "wb-engine: WB_* variables present: {}",
        if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        }
    );

    match run(config, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wb-engine: {message}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn open_sqlite(config: &Config) -> Result<Store, String> {
    if let Some(path) = &config.registry
        && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "cannot create the directory of WB_REGISTRY {}: {e}",
                path.display()
            )
        })?;
    }
    let store =
        Store::open_sqlite(config.registry.as_deref()).map_err(|e| match &config.registry {
            Some(path) => format!("cannot open WB_REGISTRY {}: {e}", path.display()),
            None => format!("cannot open the in-memory registry: {e}"),
        })?;
    eprintln!(
        "wb-engine: registry {}",
        match &config.registry {
            Some(path) => path.display().to_string(),
            None => ":memory: (not persisted)".to_owned(),
        }
    );

    Ok(store)
}

fn run(config: Config, mut signals: Signals) -> Result<(), String> {
    std::fs::create_dir_all(&config.data)
        .map_err(|e| format!("cannot create WB_DATA {}: {e}", config.data.display()))?;

    let store = match &config.database {
        Some(db) => {
            if config.registry.is_some() {
                eprintln!("wb-engine: WB_DATABASE_URL is set, so WB_REGISTRY is not used");
            }
            // The DSN is never printed: the driver's message goes out with
            // every spelling of the password (and the DSN itself) redacted.
            let store = Store::open_postgres(db.config.clone()).map_err(|e| {
                format!(
                    "cannot use the PostgreSQL registry of WB_DATABASE_URL: {} \
                     (check that the server is up and reachable, and the user, password \
                     and database in WB_DATABASE_URL)",
                    db.redact(&e.to_string())
                )
            })?;
            eprintln!(
                "wb-engine: registry PostgreSQL (WB_DATABASE_URL; shared with other engines on it)"
            );
            store
        }
        None => open_sqlite(&config)?,
    };

    let addr = SocketAddr::new(config.bind, config.port);
    let server = server::Server::bind(addr, config.limits.clone())
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = server
        .local_addr()
        .map_err(|e| format!("the listener has no address: {e}"))?;

    let runtime = disco::write(
        &config.disco,
        bound.port(),
        std::process::id(),
        &config.token,
    )
    .map_err(|e| {
        format!(
            "cannot write {}/{}: {e}",
            config.disco.display(),
            disco::FILE_NAME
        )
    })?;

    {
        let runtime = runtime.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    eprintln!("wb-engine: {name} received, shutting down");
                    // The accept loop looks at this flag between polls.
                    SHUTTING_DOWN.store(true, Ordering::SeqCst);
                    // The main thread normally finishes first; if a request
                    // holds it up, leave anyway: SQLite commits are atomic.
                    thread::sleep(SHUTDOWN_GRACE);
                    runtime.remove();
                    eprintln!("wb-engine: shutdown forced after {SHUTDOWN_GRACE:?}");
                    std::process::exit(0);
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }

    let token_note = match config.token_source {
        TokenSource::Given => "token from WB_PUBLIC_BEARER",
        TokenSource::Generated => "token generated",
    };
    eprintln!(
        "wb-engine: {token_note}; runtime file {}",
        runtime.path().display()
    );
    eprintln!("wb-engine listening on {}:{}", bound.ip(), bound.port());

    let ctx = Arc::new(http::Ctx {
        token: config.token,
        store: Mutex::new(store),
    });

    let handler: Arc<server::Handler> = {
        let ctx = Arc::clone(&ctx);
        Arc::new(
            move |request: &server::Request, body: &mut server::Body<'_, '_>| {
                http::handle(request, body, &ctx)
            },
        )
    };
    if let Err(message) = server.run(handler, &SHUTTING_DOWN) {
        // Cannot serve any more: leave, non-zero, so a supervisor restarts
        // the engine rather than keeping a process that answers nothing.
        runtime.remove();
        return Err(message);
    }

    // Wait for any registry write in flight and keep the lock so no other
    // starts; every write is its own committed transaction, so nothing is
    // left to flush.
    let _registry = ctx.store.lock().unwrap_or_else(|p| p.into_inner());
    runtime.remove();
    eprintln!("wb-engine stopped");
    // Leave without joining connection threads (idle keep-alives).
    std::process::exit(0);
}
