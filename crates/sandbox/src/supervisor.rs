//! The worker's side: children started ahead of time, one per item, with the item's wall-clock
//! budget enforced by killing the child.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStdout, Command};
use tracing::{debug, warn};

use mediagate_media::MediaClass;

use crate::lockdown::Layers;
use crate::server::{Identified, Reply, READY, SYNC_MARK};
use crate::{execute, frame, Input, Report, Request, SandboxError, SERVER_ARG};

/// Where media work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A fresh, locked-down child process per item (the default).
    Process,
    /// On a blocking thread of the worker itself: no isolation from crashes, hangs or exploits.
    InProcess,
}

/// How the worker runs its sandboxes.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Process or in-process.
    pub mode: Mode,
    /// The program to start (the `mediagate` binary); it must call [`crate::server::serve`] when
    /// its first argument is [`SERVER_ARG`].
    pub program: PathBuf,
    /// The child's whole environment (it starts from an empty one: no credentials).
    pub env: Vec<(OsString, OsString)>,
    /// Children kept started and waiting for an item.
    pub servers: usize,
    /// Largest report accepted from a child.
    pub max_report_bytes: u64,
}

impl SandboxConfig {
    /// Process mode running `program`, keeping `servers` children ready, with the variables of
    /// `pass_env` copied from this process when they are set.
    pub fn process(program: PathBuf, servers: usize, pass_env: &[&str]) -> SandboxConfig {
        let mut env: Vec<(OsString, OsString)> =
            pass_env.iter().filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v))).collect();
        // Few malloc arenas: the memory limit counts reserved heap, and media work has few threads.
        env.push(("MALLOC_ARENA_MAX".into(), "2".into()));
        // Resolve every symbol once in the server, not lazily again in each forked child.
        env.push(("LD_BIND_NOW".into(), "1".into()));
        env.push(("GLIBC_TUNABLES".into(), "glibc.malloc.hugetlb=1".into()));
        SandboxConfig { mode: Mode::Process, program, env, servers, max_report_bytes: 2 << 30 }
    }
}

/// A fork server, started and waiting for requests.
struct Server {
    child: Child,
    /// The server's stdin, a Unix socket: each request travels with its input's sealed memfd.
    stdin: UnixStream,
    stdout: ChildStdout,
    /// The last lines it (and its children) wrote to stderr, for crash reports.
    tail: Arc<Mutex<Tail>>,
}

/// The end of a server's stderr.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    /// [`SYNC_MARK`] lines seen: the server writes one after a child dies, so once the count
    /// moves, everything the dead child wrote has been read.
    marks: u64,
}

/// Runs media work in sandboxes. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: SandboxConfig,
    idle: Mutex<Vec<Server>>,
    refilling: AtomicBool,
    /// What the last server that started said it entered.
    layers: Mutex<Option<Layers>>,
}

/// How one attempt ended, before the crash policy.
enum Attempt {
    Done(Box<Report>),
    Crashed {
        how: String,
        out_of_memory: bool,
    },
    /// Killed at its budget: the file's class when the child had said it, and that budget.
    TimedOut {
        class: Option<MediaClass>,
        budget: Duration,
    },
}

const GRACE: Duration = Duration::from_secs(5);
/// How long a new server may take to load and lock itself down.
const READY_WITHIN: Duration = Duration::from_secs(20);
const TAIL_LINES: usize = 20;

impl Sandbox {
    /// A sandbox; in process mode, checks that the program exists.
    pub fn new(cfg: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if cfg.mode == Mode::Process && !cfg.program.is_file() {
            return Err(SandboxError::Spawn { message: format!("{} is not a file", cfg.program.display()) });
        }
        Ok(Sandbox {
            inner: Arc::new(Inner {
                cfg,
                idle: Mutex::new(Vec::new()),
                refilling: false.into(),
                layers: Mutex::new(None),
            }),
        })
    }

    /// The mode this sandbox runs in.
    pub fn mode(&self) -> Mode {
        self.inner.cfg.mode
    }

    /// The isolation layers the fork servers entered (namespaces, Landlock) and those the host
    /// refused, as the last server to start reported them; `None` before one started (or
    /// in-process).
    pub fn layers(&self) -> Option<Layers> {
        self.inner.layers.lock().ok().and_then(|l| l.clone())
    }

    /// Starts the fork servers (`servers` of them: one per item that may run at once). Call once
    /// at start-up, inside the runtime, so the first items do not wait for them.
    pub async fn warm_up(&self) -> Result<(), SandboxError> {
        if self.inner.cfg.mode != Mode::Process {
            return Ok(());
        }
        let first = self.spawn().await?;
        self.lock_idle().push(first);
        self.refill();
        Ok(())
    }

    /// Runs `request` on `input` within `budget` of wall-clock time. A child that dies without
    /// an answer is retried once in a fresh child (the host may have killed it); a second death
    /// is the file's doing ([`SandboxError::Crashed`]). The child maps the input's sealed memfd:
    /// the bytes are not copied (heap bytes are first copied into one).
    pub async fn run(&self, request: Request, input: Arc<Input>, budget: Duration) -> Result<Report, SandboxError> {
        if self.inner.cfg.mode == Mode::InProcess {
            let (result, stats) = tokio::task::spawn_blocking(move || execute(&request.task, &input, &mut |_| ()))
                .await
                .map_err(|e| SandboxError::Spawn { message: format!("the media thread failed: {e}") })?;
            return Ok(Report { result, stats });
        }
        let header = postcard::to_allocvec(&request)
            .map_err(|e| SandboxError::Spawn { message: format!("encoding the request: {e}") })?;
        let copied;
        let fd = match input.fd() {
            Some(fd) => fd,
            None => {
                copied = Input::copy_of(&input)
                    .map_err(|e| SandboxError::Spawn { message: format!("cannot make a memfd for the input: {e}") })?;
                copied.fd().ok_or_else(|| SandboxError::Spawn { message: "the input's copy is not a memfd".into() })?
            }
        };
        let mut crashes = 0;
        loop {
            match self.attempt(&header, fd, budget).await? {
                Attempt::Done(mut report) => {
                    report.stats.crashes = crashes;
                    return Ok(*report);
                }
                Attempt::TimedOut { class, budget } => {
                    warn!(class = ?class, budget_s = budget.as_secs(), "media sandbox over its budget; killed it");
                    return Err(SandboxError::TimedOut { stage: stage(class), budget });
                }
                Attempt::Crashed { how, out_of_memory } => {
                    crashes += 1;
                    warn!(%how, out_of_memory, attempt = crashes, "media sandbox died without an answer");
                    if crashes >= 2 {
                        return Err(SandboxError::Crashed {
                            how,
                            out_of_memory,
                            memory_mb: request.limits.memory_bytes / (1024 * 1024),
                        });
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        header: &[u8],
        fd: std::os::fd::BorrowedFd<'_>,
        budget: Duration,
    ) -> Result<Attempt, SandboxError> {
        let mut server = self.take().await?;
        let marks = match server.tail.lock() {
            Ok(mut t) => {
                t.lines.clear();
                t.marks
            }
            Err(_) => 0,
        };
        let started = Instant::now();
        let max = self.inner.cfg.max_report_bytes;
        // Until the child says what the file is, the clock is the longest budget the job admits;
        // then it is that class's (counted from the request, so identifying counts too).
        let mut class = None;
        let mut limit = budget;
        let first = async {
            frame::write_with_fd(&mut server.stdin, header, fd).await?;
            frame::read_async(&mut server.stdout, max).await
        };
        let mut read = tokio::time::timeout_at((started + limit + GRACE).into(), first).await;
        let reply = loop {
            let bytes = match read {
                Err(_) => {
                    // The child is the server's; killing the server kills it too (PR_SET_PDEATHSIG).
                    self.discard(server).await;
                    return Ok(Attempt::TimedOut { class, budget: limit });
                }
                Ok(Err(e)) => {
                    let how = self.discard(server).await;
                    warn!(error = %e, %how, "media sandbox server broke down; starting another");
                    return Ok(Attempt::Crashed { how: format!("(its fork server {how})"), out_of_memory: false });
                }
                Ok(Ok(bytes)) => bytes,
            };
            let reply = match postcard::from_bytes::<Reply>(&bytes) {
                Ok(r) => r,
                Err(e) => {
                    self.discard(server).await;
                    return Err(SandboxError::Spawn { message: format!("garbled reply from the media sandbox: {e}") });
                }
            };
            let Reply::Identified(said) = reply else { break reply };
            match postcard::from_bytes::<Identified>(&said) {
                Ok(id) if class.is_none() => {
                    debug!(class = ?id.class, budget_s = id.budget.as_secs(), "media sandbox identified the file");
                    class = Some(id.class);
                    limit = id.budget.min(budget);
                }
                // A second word, or one that does not parse: a child that lies is a broken child.
                _ => {
                    let how = self.discard(server).await;
                    return Ok(Attempt::Crashed { how: format!("spoke out of turn ({how})"), out_of_memory: false });
                }
            }
            read =
                tokio::time::timeout_at((started + limit + GRACE).into(), frame::read_async(&mut server.stdout, max))
                    .await;
        };
        let tail = server.tail.clone();
        if matches!(reply, Reply::Report(_)) {
            self.give_back(server);
        } else {
            // A server whose child died stops (its stdin may be out of step); start another.
            self.discard(server).await;
        }
        match reply {
            Reply::Report(bytes) => match postcard::from_bytes::<Report>(&bytes) {
                Ok(report) => {
                    debug!(ms = started.elapsed().as_millis() as u64, "media sandbox answered");
                    Ok(Attempt::Done(Box::new(report)))
                }
                Err(e) => Ok(Attempt::Crashed { how: format!("sent a garbled report ({e})"), out_of_memory: false }),
            },
            Reply::Died(how) => {
                // Wait (briefly) until the child's last words have been read.
                let deadline = Instant::now() + Duration::from_secs(2);
                let last = loop {
                    let (seen, text) = match tail.lock() {
                        Ok(t) => (t.marks > marks, t.lines.iter().cloned().collect::<Vec<_>>().join("\n")),
                        Err(_) => (true, String::new()),
                    };
                    if seen || Instant::now() > deadline {
                        break text;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                };
                let out_of_memory = last.contains("memory allocation of") || last.contains("out of memory");
                Ok(Attempt::Crashed { how, out_of_memory })
            }
            Reply::ForkFailed(message) => Err(SandboxError::Spawn { message }),
            Reply::Identified(_) => unreachable!("the loop above reads past the identification"),
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Server>> {
        self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle server that is still alive, or a new one.
    async fn take(&self) -> Result<Server, SandboxError> {
        loop {
            let next = self.lock_idle().pop();
            match next {
                Some(mut s) => {
                    if matches!(s.child.try_wait(), Ok(None)) {
                        return Ok(s);
                    }
                    warn!("an idle media sandbox server exited on its own; starting another");
                }
                None => return self.spawn().await,
            }
        }
    }

    fn give_back(&self, server: Server) {
        let mut idle = self.lock_idle();
        if idle.len() < self.inner.cfg.servers.max(1) {
            idle.push(server);
        }
    }

    /// Kills a server and says how it ended; starts a replacement in the background.
    async fn discard(&self, mut server: Server) -> String {
        let how = end(&mut server).await;
        self.refill();
        how
    }

    /// Tops the idle servers up to `servers` in the background.
    fn refill(&self) {
        if self.inner.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            while this.lock_idle().len() < this.inner.cfg.servers {
                match this.spawn().await {
                    Ok(s) => this.lock_idle().push(s),
                    Err(e) => {
                        warn!(error = %e, "cannot start a media sandbox server");
                        break;
                    }
                }
                tokio::task::yield_now().await;
            }
            this.inner.refilling.store(false, Ordering::Release);
        });
    }

    /// Starts a server and waits for it to say it has locked itself down.
    async fn spawn(&self) -> Result<Server, SandboxError> {
        let cfg = &self.inner.cfg;
        let spawn_error = |what: &str, e: std::io::Error| SandboxError::Spawn { message: format!("{what}: {e}") };
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(|e| spawn_error("making the request socket", e))?;
        ours.set_nonblocking(true).map_err(|e| spawn_error("making the request socket", e))?;
        let stdin = UnixStream::from_std(ours).map_err(|e| spawn_error("making the request socket", e))?;
        let mut cmd = Command::new(&cfg.program);
        cmd.arg(SERVER_ARG)
            .arg(std::process::id().to_string())
            .env_clear()
            .envs(cfg.env.iter().map(|(k, v)| (k, v)))
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = cmd.spawn();
        // The child's end of the socket must not stay open here, or the server never sees it close.
        drop(cmd);
        let mut child = spawned.map_err(|e| SandboxError::Spawn {
            message: format!("starting {} {SERVER_ARG}: {e}", cfg.program.display()),
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(SandboxError::Spawn { message: "the sandbox's pipes were not set up".into() });
        };
        {
            use std::os::fd::AsRawFd;
            frame::widen_pipe(stdout.as_raw_fd());
        }
        let tail: Arc<Mutex<Tail>> = Arc::default();
        let sink = tail.clone();
        // The sandbox's log lines join the worker's own stderr, one whole line per write.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut lines).take(64 * 1024).read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !line.ends_with(b"\n") {
                            line.push(b'\n');
                        }
                        if line.strip_suffix(b"\n") == Some(SYNC_MARK.as_bytes()) {
                            if let Ok(mut t) = sink.lock() {
                                t.marks += 1;
                            }
                            continue;
                        }
                        let _ = std::io::stderr().lock().write_all(&line);
                        if let Ok(mut t) = sink.lock() {
                            if t.lines.len() == TAIL_LINES {
                                t.lines.pop_front();
                            }
                            t.lines.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                        }
                    }
                }
            }
        });
        let mut server = Server { child, stdin, stdout, tail };
        let ready = tokio::time::timeout(READY_WITHIN, frame::read_async(&mut server.stdout, 4096)).await;
        let layers = match &ready {
            Ok(Ok(frame)) => frame.strip_prefix(READY).and_then(|rest| postcard::from_bytes::<Layers>(rest).ok()),
            _ => None,
        };
        match layers {
            Some(layers) => {
                if let Ok(mut l) = self.inner.layers.lock() {
                    *l = Some(layers);
                }
                Ok(server)
            }
            _ => {
                let how = end(&mut server).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let last = server
                    .tail
                    .lock()
                    .map(|t| t.lines.iter().cloned().collect::<Vec<_>>().join(" | "))
                    .unwrap_or_default();
                Err(SandboxError::Spawn {
                    message: format!(
                        "the media sandbox did not start ({how}; its last words: {last}); where seccomp or \
                         no_new_privs is unavailable, run with MEDIAGATE_SANDBOX=off"
                    ),
                })
            }
        }
    }
}

/// Ends a server (killing it unless it has already exited) and says how it ended.
async fn end(server: &mut Server) -> String {
    if let Ok(Some(status)) = server.child.try_wait() {
        return describe(status);
    }
    let _ = server.child.start_kill();
    match server.child.wait().await {
        Ok(status) => describe(status),
        Err(e) => format!("could not be waited for ({e})"),
    }
}

fn stage(class: Option<MediaClass>) -> &'static str {
    match class {
        None => "identifying the file",
        Some(MediaClass::Image) => "processing the photo",
        Some(MediaClass::Audio) => "transcoding the voice note",
        Some(MediaClass::Video) => "transcoding the video",
    }
}

fn describe(status: ExitStatus) -> String {
    crate::server::describe(status.into_raw())
}
