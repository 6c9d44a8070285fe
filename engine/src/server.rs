//! A small HTTP/1.1 server on `std::net`, built to survive a flood.
//!
//! Why our own and not tiny_http: tiny_http's accept loop panics (or ends) on
//! `EMFILE` and on a failed thread spawn, which left a live process with a
//! dead listener; it has no read timeouts, so idle connections were held
//! forever. Here:
//! - one thread per connection, at most `max_connections` of them; when full,
//!   the connection that has waited longest for a request head is shed to
//!   make room (a flood of idle sockets cannot lock legitimate clients out);
//! - a request head must arrive whole within `idle_timeout` (slow-loris
//!   trickling does not reset it) and a body may not stall for longer than
//!   `body_timeout`;
//! - accept errors from exhausted resources (EMFILE, ENFILE, ENOBUFS, ENOMEM)
//!   and failed thread spawns shed an idle connection and back off briefly;
//!   the listener never dies while the process lives. If nothing can be
//!   served for `give_up` (failures all along), or the listener breaks, `run`
//!   returns an error and the engine exits non-zero for its supervisor;
//! - buffered request bodies share an `upload_budget`: an upload that does
//!   not fit is refused with 503 and `Retry-After` before it is read.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The limits a server runs with (from `WB_HTTP_*`, see config.rs).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub upload_budget: usize,
    /// How long accept may fail (or threads fail to start), with no
    /// connection served in between, before the engine exits non-zero.
    pub give_up: Duration,
}

/// Largest request head (request line and headers).
const HEAD_LIMIT: usize = 16 * 1024;
/// Largest chunk-size line or trailer section of a chunked body.
const LINE_LIMIT: usize = 4 * 1024;
/// Connection threads only parse HTTP and call the registry; the default
/// 2 MiB of stack per thread is address space a flood would multiply.
const WORKER_STACK: usize = 512 * 1024;
/// A failure streak ends after this long without a failure (an engine that
/// had trouble and then simply got no traffic has not failed).
const QUIET: Duration = Duration::from_secs(5);
/// After a response that leaves a request body unread, how long the rest is
/// read and discarded so the client sees the response rather than a reset.
const LINGER: Duration = Duration::from_secs(2);
/// An unread body at most this long is drained to keep the connection.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// Connections taken per wake-up of the accept loop.
const ACCEPT_BATCH: usize = 64;
/// Idle connections shed per EMFILE-class accept error.
const SHED_BATCH: usize = 8;
/// How often the accept loop looks at the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

// ------------------------------------------------------------ requests

pub struct Request {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    headers: Vec<(String, String)>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

impl Request {
    /// The values of every header called `name` (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path for routing and logging: no query string, no fragment.
    pub fn path(&self) -> &str {
        let end = self.target.find(['?', '#']).unwrap_or(self.target.len());
        &self.target[..end]
    }
}

/// A response before it is written.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply {
            content_type: Some("text/plain; charset=utf-8"),
            body: format!("{text}\n").into_bytes(),
            ..Reply::new(status)
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Reply {
        self.headers.push((name, value));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

// ---------------------------------------------------------- the upload budget

/// Bytes of request bodies that may be held in memory at once.
pub struct Budget {
    available: Mutex<usize>,
}

/// Bytes taken from the budget, given back on drop (once the body is stored).
pub struct Permit {
    budget: Arc<Budget>,
    held: usize,
}

impl Budget {
    pub fn new(bytes: usize) -> Arc<Budget> {
        Arc::new(Budget {
            available: Mutex::new(bytes),
        })
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        self.available.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Permit {
    fn grow(&mut self, bytes: usize) -> bool {
        let mut available = self.budget.lock();
        if *available < bytes {
            return false;
        }
        *available -= bytes;
        self.held += bytes;
        true
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.budget.lock() += self.held;
    }
}

// ------------------------------------------------------------ request bodies

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the handler's limit (declared or sent).
    TooLarge,
    /// The upload budget is spent: refused before reading.
    Busy,
    /// The client stopped sending for longer than the body timeout.
    Timeout,
    /// Malformed framing, or the connection ended early.
    Bad(String),
}

/// The body of the request being handled, read on demand by the handler.
pub struct Body<'a, 's> {
    reader: &'a mut BufReader<&'s TcpStream>,
    stream: &'s TcpStream,
    framing: Framing,
    expect_continue: bool,
    /// Set once the body has been read whole (or there was none).
    done: bool,
    timeout: Duration,
    budget: &'a Arc<Budget>,
}

impl Body<'_, '_> {
    /// Reads the whole body, at most `limit` bytes, under the upload budget;
    /// keep the permit until the bytes are no longer needed.
    pub fn read_to_vec(&mut self, limit: usize) -> Result<(Vec<u8>, Permit), BodyError> {
        let mut permit = Permit {
            budget: Arc::clone(self.budget),
            held: 0,
        };
        match self.framing {
            Framing::None => {
                self.done = true;
                Ok((Vec::new(), permit))
            }
            Framing::Length(n) => {
                let n = usize::try_from(n).map_err(|_| BodyError::TooLarge)?;
                if n > limit {
                    return Err(BodyError::TooLarge);
                }
                if !permit.grow(n) {
                    return Err(BodyError::Busy);
                }
                self.send_continue()?;
                let mut body = vec![0u8; n];
                self.read_exact(&mut body)?;
                self.done = true;
                Ok((body, permit))
            }
            Framing::Chunked => {
                self.send_continue()?;
                let mut body = Vec::new();
                loop {
                    let line = self.read_line()?;
                    let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size_text)
                        .ok()
                        .map(str::trim)
                        // Hex digits only (from_str_radix would take a sign).
                        .filter(|t| (1..=15).contains(&t.len()))
                        .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()))
                        .and_then(|t| usize::from_str_radix(t, 16).ok())
                        .ok_or_else(|| BodyError::Bad("bad chunk size in a chunked body".into()))?;
                    if size == 0 {
                        // Trailers, up to the empty line; ignored.
                        let mut total = 0;
                        loop {
                            let line = self.read_line()?;
                            total += line.len();
                            if line.is_empty() {
                                break;
                            }
                            if total > LINE_LIMIT {
                                return Err(BodyError::Bad("chunked trailers too long".into()));
                            }
                        }
                        self.done = true;
                        return Ok((body, permit));
                    }
                    if body.len().saturating_add(size) > limit {
                        return Err(BodyError::TooLarge);
                    }
                    if !permit.grow(size) {
                        return Err(BodyError::Busy);
                    }
                    let start = body.len();
                    body.resize(start + size, 0);
                    self.read_exact(&mut body[start..])?;
                    if !self.read_line()?.is_empty() {
                        return Err(BodyError::Bad("chunk data longer than its size".into()));
                    }
                }
            }
        }
    }

    fn send_continue(&mut self) -> Result<(), BodyError> {
        if std::mem::take(&mut self.expect_continue) {
            let mut stream = self.stream;
            stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|e| BodyError::Bad(format!("cannot send 100 Continue: {e}")))?;
        }
        Ok(())
    }

    fn set_timeout(&self) {
        let _ = self.stream.set_read_timeout(Some(self.timeout));
    }

    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), BodyError> {
        self.set_timeout();
        while !buf.is_empty() {
            match self.reader.read(buf) {
                Ok(0) => {
                    return Err(BodyError::Bad(
                        "request body shorter than declared (the connection closed)".into(),
                    ));
                }
                Ok(n) => buf = &mut buf[n..],
                Err(e) => return Err(io_to_body(e)),
            }
        }
        Ok(())
    }

    /// One CRLF- (or LF-) terminated line, without its terminator.
    fn read_line(&mut self) -> Result<Vec<u8>, BodyError> {
        self.set_timeout();
        let mut line = Vec::new();
        loop {
            let buf = self.reader.fill_buf().map_err(io_to_body)?;
            if buf.is_empty() {
                return Err(BodyError::Bad(
                    "chunked body cut short (the connection closed)".into(),
                ));
            }
            let (used, end) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..used]);
            self.reader.consume(used);
            if line.len() > LINE_LIMIT {
                return Err(BodyError::Bad("chunk-size line too long".into()));
            }
            if end {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    /// After the handler: true when the connection can carry another request
    /// (the body was read, or was short enough to drain now).
    fn finish(&mut self) -> bool {
        if self.done {
            return true;
        }
        match self.framing {
            Framing::None => true,
            // A client waiting for 100 Continue will not send the body.
            // The whole drain has one short deadline: the body of a request
            // that was refused (401 included) must not let a trickling,
            // unauthenticated client hold a connection slot.
            Framing::Length(n) if n <= DRAIN_LIMIT && !self.expect_continue => {
                let deadline = Instant::now() + LINGER.min(self.timeout);
                let mut left = n;
                let mut sink = [0u8; 8 * 1024];
                while left > 0 {
                    let time = deadline.saturating_duration_since(Instant::now());
                    if time.is_zero() {
                        return false;
                    }
                    let _ = self.stream.set_read_timeout(Some(time));
                    let want = sink.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    match self.reader.read(&mut sink[..want]) {
                        Ok(0) | Err(_) => return false,
                        Ok(got) => left -= got as u64,
                    }
                }
                true
            }
            _ => false,
        }
    }
}

fn io_to_body(e: io::Error) -> BodyError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BodyError::Timeout,
        _ => BodyError::Bad(format!("cannot read the request body: {e}")),
    }
}

// ------------------------------------------------------------- connections

/// The open connections: for the cap, and for shedding the one that has
/// waited longest for a request head.
struct Slots {
    table: Mutex<SlotTable>,
    /// Signalled when a connection's thread ends (its slot is removed).
    freed: std::sync::Condvar,
}

#[derive(Default)]
struct SlotTable {
    next_id: u64,
    conns: HashMap<u64, Slot>,
    /// Shed, but their threads have not ended yet (still counted in `conns`).
    shedding: usize,
}

struct Slot {
    fd: RawFd,
    /// When it started waiting for a request head; `None` while a request is
    /// being handled (never shed mid-request) or once shed.
    idle_since: Option<Instant>,
    shed: bool,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than `max` connections (shed ones included: their
    /// threads still exist) are open, shedding the oldest idle one if none is
    /// on its way out. False if every connection is mid-request, or no slot
    /// freed within a second.
    fn make_room(&self, max: usize, troubles: &mut Troubles) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut table = self.lock();
        while table.conns.len() >= max {
            if table.shedding == 0 {
                drop(table);
                if !self.shed_oldest_idle() {
                    return false;
                }
                troubles.shed += 1;
                table = self.lock();
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            table = self
                .freed
                .wait_timeout(table, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    fn insert(&self, fd: RawFd) -> u64 {
        let mut table = self.lock();
        table.next_id += 1;
        let id = table.next_id;
        table.conns.insert(
            id,
            Slot {
                fd,
                idle_since: None,
                shed: false,
            },
        );
        id
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(slot) = self.lock().conns.get_mut(&id)
            && !slot.shed
        {
            slot.idle_since = idle.then(Instant::now);
        }
    }

    /// Must run before the connection's descriptor is closed: a shed works
    /// on the raw descriptor, which must still be this connection's.
    fn remove(&self, id: u64) {
        let mut table = self.lock();
        if let Some(slot) = table.conns.remove(&id)
            && slot.shed
        {
            table.shedding -= 1;
        }
        self.freed.notify_all();
    }

    /// Shuts down the connection that has waited longest for a request head;
    /// its thread sees end-of-file and ends. False if every connection is
    /// busy with a request.
    fn shed_oldest_idle(&self) -> bool {
        let mut table = self.lock();
        let oldest = table
            .conns
            .iter()
            .filter_map(|(id, slot)| slot.idle_since.map(|t| (t, *id)))
            .min();
        let Some((_, id)) = oldest else {
            return false;
        };
        let slot = table.conns.get_mut(&id).expect("just found");
        slot.shed = true;
        slot.idle_since = None;
        // SAFETY: the descriptor is open: its owner removes the slot (under
        // this lock) before closing it. shutdown(2) touches no memory.
        unsafe { libc::shutdown(slot.fd, libc::SHUT_RDWR) };
        table.shedding += 1;
        true
    }
}

/// Removes the slot when the connection's thread ends, also on a panic.
struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.remove(self.id);
    }
}

// ------------------------------------------------------------------ server

pub type Handler = dyn Fn(&Request, &mut Body<'_, '_>) -> Reply + Send + Sync;

pub struct Server {
    listener: TcpListener,
    limits: Limits,
    slots: Arc<Slots>,
    budget: Arc<Budget>,
}

/// What the accept loop counts between two log lines (one a second at most,
/// so a flood cannot fill the log).
#[derive(Default)]
struct Troubles {
    shed: u64,
    refused: u64,
    accept_errors: u64,
    spawn_errors: u64,
    last_error: String,
}

impl Server {
    pub fn bind(addr: std::net::SocketAddr, limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        // Accept only after poll(2) says a connection waits, and never block
        // in accept itself: the loop must keep seeing the stop flag.
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            budget: Budget::new(limits.upload_budget),
            limits,
            slots: Arc::new(Slots {
                freed: std::sync::Condvar::new(),
                table: Mutex::new(SlotTable::default()),
            }),
        })
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and serves until `stop` is set (then `Ok`), or until the
    /// engine can no longer serve (then `Err`, for a non-zero exit).
    pub fn run(&self, handler: Arc<Handler>, stop: &AtomicBool) -> Result<(), String> {
        let mut troubles = Troubles::default();
        let mut last_report = Instant::now();
        // A streak of failures to accept or start connections, with nothing
        // served in between: (first, latest).
        let mut failing: Option<(Instant, Instant)> = None;
        let fail = |failing: &mut Option<(Instant, Instant)>| {
            let now = Instant::now();
            *failing = Some((failing.map_or(now, |(first, _)| first), now));
        };
        let mut backoff = Duration::ZERO;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                report(&mut troubles, &self.limits);
                last_report = Instant::now();
            }
            if let Some((first, latest)) = failing {
                if latest.elapsed() >= QUIET {
                    failing = None;
                } else if first.elapsed() >= self.limits.give_up {
                    report(&mut troubles, &self.limits);
                    return Err(format!(
                        "cannot serve: no connection could be accepted or started for {:?} \
                         (last error: {}); exiting so a supervisor restarts the engine",
                        self.limits.give_up, troubles.last_error
                    ));
                }
            }
            if !readable(&self.listener, POLL_INTERVAL) {
                continue;
            }
            // Take what is waiting, in a batch bounded in count and time, so
            // the stop flag, the report and the give-up check above are
            // still looked at under a flood (a failing spawn takes ~1 s).
            let batch_started = Instant::now();
            for _ in 0..ACCEPT_BATCH {
                if batch_started.elapsed() >= POLL_INTERVAL {
                    break;
                }
                let e = match self.listener.accept() {
                    Ok((stream, _)) => {
                        match self.admit(stream, &handler, &mut troubles) {
                            Ok(()) => {
                                failing = None;
                                backoff = Duration::ZERO;
                            }
                            Err(_) => {
                                fail(&mut failing);
                            }
                        }
                        continue;
                    }
                    Err(e) => e,
                };
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    // Out of descriptors or memory: free some by shedding
                    // idle connections, and give their threads a moment
                    // to close them. The connection stays in the backlog.
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        troubles.accept_errors += 1;
                        troubles.last_error = format!("accept: {e}");
                        for _ in 0..SHED_BATCH {
                            if !self.slots.shed_oldest_idle() {
                                break;
                            }
                            troubles.shed += 1;
                        }
                        fail(&mut failing);
                        backoff = (backoff * 2)
                            .clamp(Duration::from_millis(1), Duration::from_millis(250));
                        thread::sleep(backoff);
                        break;
                    }
                    // The one connection went away before we took it, or
                    // a signal: not a listener problem.
                    Some(
                        libc::EINTR
                        | libc::ECONNABORTED
                        | libc::EPROTO
                        | libc::EPERM
                        | libc::ENETDOWN
                        | libc::ENOPROTOOPT
                        | libc::EHOSTDOWN
                        | libc::ENONET
                        | libc::EHOSTUNREACH
                        | libc::EOPNOTSUPP
                        | libc::ENETUNREACH,
                    ) => {}
                    // EBADF, EINVAL, ENOTSOCK…: the listener itself is gone.
                    _ => return Err(format!("the listener failed: {e}")),
                }
            }
        }
    }

    /// Starts a thread for a new connection, making room first when the cap
    /// is reached. A failed spawn sheds an idle connection (its thread frees
    /// a slot under an nproc limit) and retries for about a second.
    fn admit(
        &self,
        stream: TcpStream,
        handler: &Arc<Handler>,
        troubles: &mut Troubles,
    ) -> io::Result<()> {
        let _ = stream.set_nonblocking(false);
        // At the cap, the newcomer waits (in the backlog, in effect) for a
        // shed connection's thread to end: threads stay bounded even when
        // shed ones are slow to go, as on a saturated CPU.
        if !self.slots.make_room(self.limits.max_connections, troubles) {
            // Every connection is mid-request: say so and close — after
            // taking what the client already sent (without waiting), as
            // closing on unread bytes resets the connection and the client
            // might never see the 503.
            troubles.refused += 1;
            let drain = || {
                let mut sink = [0u8; 4096];
                let _ = stream.set_nonblocking(true);
                // Bounded: the accept loop must not be kept busy here.
                for _ in 0..16 {
                    if !matches!((&stream).read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                let _ = stream.set_nonblocking(false);
            };
            drain();
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = (&stream).write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.shutdown(Shutdown::Write);
            drain();
            return Ok(());
        }
        // The stream waits here across spawn attempts: a failed spawn drops
        // its closure, and must not close the connection with it.
        let cell = Arc::new(Mutex::new(Some(stream)));
        let started = Instant::now();
        let mut wait = Duration::from_millis(10);
        loop {
            let fd = match cell.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                Some(stream) => stream.as_raw_fd(),
                None => return Ok(()),
            };
            let id = self.slots.insert(fd);
            let conn = Conn {
                cell: Arc::clone(&cell),
                guard: SlotGuard {
                    slots: Arc::clone(&self.slots),
                    id,
                },
                limits: self.limits.clone(),
                budget: Arc::clone(&self.budget),
                handler: Arc::clone(handler),
            };
            let spawned = thread::Builder::new()
                .name("conn".into())
                .stack_size(WORKER_STACK)
                .spawn(move || conn.serve());
            // On failure the closure, with its slot guard, is already
            // dropped: the slot is gone, the stream still in `cell`.
            let Err(e) = spawned else { return Ok(()) };
            if started.elapsed() >= Duration::from_secs(1) {
                // Give up on this one; closing it frees a descriptor.
                return Err(e);
            }
            troubles.spawn_errors += 1;
            troubles.last_error = format!("cannot start a connection thread: {e}");
            if self.slots.shed_oldest_idle() {
                troubles.shed += 1;
            }
            thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }
}

fn report(troubles: &mut Troubles, limits: &Limits) {
    let t = std::mem::take(troubles);
    let mut parts = Vec::new();
    if t.shed > 0 {
        parts.push(format!("{} idle connection(s) shed", t.shed));
    }
    if t.refused > 0 {
        parts.push(format!(
            "{} refused with 503 (all {} connections mid-request)",
            t.refused, limits.max_connections
        ));
    }
    if t.accept_errors > 0 {
        parts.push(format!("{} accept error(s)", t.accept_errors));
    }
    if t.spawn_errors > 0 {
        parts.push(format!("{} thread start failure(s)", t.spawn_errors));
    }
    if !parts.is_empty() {
        let last = if t.last_error.is_empty() {
            String::new()
        } else {
            format!("; last: {}", t.last_error)
        };
        eprintln!(
            "wb-engine: under pressure in the last second: {}{last}",
            parts.join(", ")
        );
    }
    troubles.last_error = t.last_error;
}

/// Waits up to `timeout` for a connection to accept.
fn readable(listener: &TcpListener, timeout: Duration) -> bool {
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for the length we pass.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    // On an error (EINTR) report readable: accept then says what is wrong.
    n != 0
}

/// One connection's thread.
struct Conn {
    cell: Arc<Mutex<Option<TcpStream>>>,
    /// Dropped before the stream is closed (see `serve`).
    guard: SlotGuard,
    limits: Limits,
    budget: Arc<Budget>,
    handler: Arc<Handler>,
}

enum Head {
    Request(Vec<u8>),
    /// The client closed the connection between requests.
    Closed,
    /// No complete head in time; `partial` if some of it had arrived.
    TimedOut {
        partial: bool,
    },
    TooLarge,
    Failed,
}

impl Conn {
    fn serve(self) {
        let Conn {
            cell,
            guard,
            limits,
            budget,
            handler,
        } = self;
        let Some(stream) = cell.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        drop(cell);
        // Declared after `stream`, so dropped (slot removed) before the
        // descriptor is closed — also when a handler panics.
        let guard = guard;
        let _ = stream.set_nodelay(true);
        // A client that stops reading cannot hold a thread forever.
        let _ = stream.set_write_timeout(Some(limits.body_timeout));
        serve_requests(&stream, &guard, &limits, &budget, &*handler);
        drop(guard);
        drop(stream);
    }
}

fn serve_requests(
    stream: &TcpStream,
    guard: &SlotGuard,
    limits: &Limits,
    budget: &Arc<Budget>,
    handler: &Handler,
) {
    let mut reader = BufReader::with_capacity(8 * 1024, stream);
    loop {
        guard.slots.set_idle(guard.id, true);
        let head = read_head(&mut reader, stream, limits.idle_timeout);
        guard.slots.set_idle(guard.id, false);
        let request = match head {
            Head::Request(bytes) => match parse_head(&bytes) {
                Ok(request) => request,
                Err((status, message)) => {
                    let _ = write_reply(stream, false, Reply::text(status, message), false);
                    linger(stream, &mut reader);
                    return;
                }
            },
            Head::Closed | Head::Failed | Head::TimedOut { partial: false } => return,
            Head::TimedOut { partial: true } => {
                let reply = Reply::text(408, "request head not received in time");
                let _ = write_reply(stream, false, reply, false);
                return;
            }
            Head::TooLarge => {
                let reply = Reply::text(431, "request head too large (the limit is 16 KiB)");
                let _ = write_reply(stream, false, reply, false);
                linger(stream, &mut reader);
                return;
            }
        };
        let (reply, body_done) = {
            let mut body = Body {
                reader: &mut reader,
                stream,
                framing: request.framing,
                expect_continue: request.expect_continue,
                done: false,
                timeout: limits.body_timeout,
                budget,
            };
            let reply = handler(&request, &mut body);
            let done = body.finish();
            (reply, done)
        };
        let keep = request.keep_alive && body_done;
        let status = reply.status;
        let sent = write_reply(stream, request.method == "HEAD", reply, keep);
        match &sent {
            Ok(()) => eprintln!(
                "wb-engine: {} {} {status}",
                loggable(&request.method),
                loggable(request.path())
            ),
            Err(e) => eprintln!(
                "wb-engine: {} {} {status} (send failed: {e})",
                loggable(&request.method),
                loggable(request.path())
            ),
        }
        if sent.is_err() {
            return;
        }
        if !keep {
            if !body_done {
                linger(stream, &mut reader);
            }
            return;
        }
    }
}

/// Reads one request head (through the blank line) within `timeout` from
/// now: a total deadline, so trickling bytes does not extend it.
fn read_head(reader: &mut BufReader<&TcpStream>, stream: &TcpStream, timeout: Duration) -> Head {
    let deadline = Instant::now() + timeout;
    let mut head = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Head::TimedOut {
                partial: !head.is_empty(),
            };
        }
        let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Head::TimedOut {
                    partial: !head.is_empty(),
                };
            }
            Err(_) => return Head::Failed,
        };
        if buf.is_empty() {
            return if head.is_empty() {
                Head::Closed
            } else {
                Head::Failed
            };
        }
        let mut used = 0;
        let mut complete = false;
        for &b in buf {
            used += 1;
            // Empty lines before a request line are allowed (RFC 9112 §2.2).
            if head.is_empty() && (b == b'\r' || b == b'\n') {
                continue;
            }
            head.push(b);
            if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
                complete = true;
                break;
            }
            if head.len() > HEAD_LIMIT {
                reader.consume(used);
                return Head::TooLarge;
            }
        }
        reader.consume(used);
        if complete {
            return Head::Request(head);
        }
    }
}

/// Parses a request head; an error is the status and message to answer with.
fn parse_head(bytes: &[u8]) -> Result<Request, (u16, &'static str)> {
    const BAD: (u16, &str) = (400, "malformed request");
    let text = std::str::from_utf8(bytes).map_err(|_| (400, "request head is not UTF-8"))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    let request_line = lines.next().ok_or(BAD)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(BAD);
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err((400, "the request target must be a path"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Err((505, "only HTTP/1.1 and HTTP/1.0")),
        _ => return Err(BAD),
    };
    let mut headers = Vec::new();
    for line in lines {
        // Folded continuation lines are obsolete and a smuggling vector.
        if line.starts_with([' ', '\t']) {
            return Err((400, "folded header lines are not accepted"));
        }
        let (name, value) = line.split_once(':').ok_or(BAD)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err((400, "malformed header name"));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        framing: Framing::None,
        keep_alive: false,
        expect_continue: false,
        headers,
    };

    let has_token = |name: &str, token: &str| {
        request
            .header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    // Both framings at once is how requests are smuggled: refuse.
    let te: Vec<&str> = request.header_values("Transfer-Encoding").collect();
    let cl: Vec<&str> = request.header_values("Content-Length").collect();
    let framing = if !te.is_empty() {
        if !cl.is_empty() {
            return Err((400, "both Transfer-Encoding and Content-Length"));
        }
        if !http11 {
            return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return Err((501, "only Transfer-Encoding: chunked is supported"));
        }
        Framing::Chunked
    } else if let Some(first) = cl.first() {
        let all: Vec<&str> = cl
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if all.iter().any(|v| v != &all[0]) {
            return Err((400, "conflicting Content-Length values"));
        }
        let n = all[0];
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || first.is_empty() {
            return Err((400, "bad Content-Length"));
        }
        Framing::Length(n.parse().map_err(|_| (413, "Content-Length too large"))?)
    } else {
        Framing::None
    };
    let keep_alive = http11 && !has_token("Connection", "close");
    let expect_continue = http11 && has_token("Expect", "100-continue");
    Ok(Request {
        framing,
        keep_alive,
        expect_continue,
        ..request
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Writes a response; always with Content-Length (bodies are in memory).
fn write_reply(stream: &TcpStream, head_only: bool, reply: Reply, keep: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    if let Some(ct) = reply.content_type {
        out.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut stream = stream;
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Before closing a connection whose request body was not read: stop
/// sending, then read and discard for a moment, so the client (still
/// sending) gets the response rather than a reset.
fn linger(stream: &TcpStream, reader: &mut BufReader<&TcpStream>) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let _ = stream.set_read_timeout(Some(left));
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Made safe for a one-line log: printable ASCII only, bounded length.
pub fn loggable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if text.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, (u16, &'static str)> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_parse() {
        let r =
            parse("PUT /workbooks/a?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.path()), ("PUT", "/workbooks/a"));
        assert_eq!(r.framing, Framing::Length(3));
        assert!(r.keep_alive && !r.expect_continue);
        let r = parse("GET / HTTP/1.0\nConnection: keep-alive\n\n").unwrap();
        assert!(!r.keep_alive, "HTTP/1.0 closes");
        let r = parse("PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\nConnection: Close\r\n\r\n").unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        assert!(r.expect_continue && !r.keep_alive);
        let r =
            parse("GET / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(r.framing, Framing::Length(5));
    }

    #[test]
    fn bad_heads_are_refused() {
        for (text, status) in [
            ("GET /\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 505),
            ("GET http://x/ HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            ("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            ("PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
            (
                "PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
            ),
            ("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                413,
            ),
        ] {
            assert_eq!(parse(text).err().map(|e| e.0), Some(status), "{text:?}");
        }
    }

    #[test]
    fn budget_permits_return_on_drop() {
        let budget = Budget::new(10);
        let mut a = Permit {
            budget: Arc::clone(&budget),
            held: 0,
        };
        assert!(a.grow(6));
        let mut b = Permit {
            budget: Arc::clone(&budget),
            held: 0,
        };
        assert!(!b.grow(5));
        assert!(b.grow(4));
        drop(a);
        assert!(b.grow(6));
        drop(b);
        assert_eq!(*budget.lock(), 10);
    }

    #[test]
    fn logs_are_sanitized() {
        assert_eq!(loggable("/a\u{1b}b"), "/a?b");
    }
}
