//! The sandbox side: a fork server. The worker starts it (the `mediagate` binary with
//! [`crate::SERVER_ARG`]); it locks itself down, then forks one child per request, ahead of
//! time. The child locks itself down further, reads the request from stdin (a Unix socket; the
//! input's sealed memfd comes with it), takes its limits, maps the input read-only, lets go of stdin and stdout, does the media work and writes its
//! [`crate::Report`] into a pipe; the server relays that report (or how the child died) to the
//! worker on stdout. Logs go to stderr, which the worker forwards.
//!
//! Why a fork server: loading Debian's FFmpeg and the ~160 libraries it links costs ~70 ms of
//! CPU per `exec`, more than a small photo's whole media work; a `fork` of an already-loaded,
//! single-threaded server costs about a millisecond, and still gives each item a fresh process
//! that nothing of an earlier item's survives in (the server never parses input).

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tracing::{debug, error, info_span};

use crate::{execute, frame, lockdown, Input, Report, Request};

/// Written alone on a line to stderr by the server after a child dies: the worker's forwarder
/// swallows it and then knows it has read all the child wrote.
pub(crate) const SYNC_MARK: &str = "\u{1e}mediagate-sandbox-sync";

/// Exit status of a server or child that could not lock itself down or talk to its parent.
const EXIT_SETUP: u8 = 70;

/// What the fork server tells the worker about one request: at most one `Identified`, then one
/// of the others.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The child knows what the file is and is about to process it: an [`Identified`], as the
    /// child encoded it.
    Identified(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The child's [`Report`], as the child encoded it.
    Report(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The child ended without a whole report: how ("was killed by signal 11 (SIGSEGV)").
    Died(String),
    /// No child could be made.
    ForkFailed(String),
}

/// The child's first word (its first frame to the server), once it knows what the file is and
/// that the job takes it: from then on the item's budget is that class's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identified {
    /// What the file is.
    pub class: mediagate_media::MediaClass,
    /// The wall-clock budget of that class's work.
    pub budget: std::time::Duration,
}

/// The server's first frame on stdout, once it has locked itself down, followed in the same
/// frame by the [`lockdown::Layers`] it entered.
pub(crate) const READY: &[u8] = b"ready";

/// Exit status of a child that found stdin closed before any request: the worker is done with
/// this server.
const EXIT_NO_REQUEST: i32 = 75;

/// Runs the fork server until its stdin closes. `args` are the command-line arguments after
/// [`crate::SERVER_ARG`]: the worker's pid.
///
/// The next child is forked as soon as the previous one has answered, before its request
/// arrives: it locks itself down and waits on stdin, so neither the fork nor the previous
/// child's teardown is on an item's critical path. The child reads the request and the input
/// from stdin itself; the server only relays its report.
pub fn serve(args: &[String]) -> ExitCode {
    let parent = args.first().and_then(|a| a.parse::<u32>().ok());
    // Before the seccomp filter: libraries that read files or set themselves up on first use
    // (libheif registers its decoders at initialisation) do it here, once, for every child.
    mediagate_media::prepare();
    if let Err(e) = lockdown::open_dev_null() {
        error!(error = %e, "media sandbox: cannot open /dev/null; refusing to process anything");
        return ExitCode::from(EXIT_SETUP);
    }
    // Namespaces and Landlock where the host allows them, inherited by every child.
    let mut layers = lockdown::isolate();
    if let Err(e) = lockdown::lock_down(parent, lockdown::Filter::ForkServer) {
        error!(error = %e, "media sandbox: cannot lock down; refusing to process anything");
        return ExitCode::from(EXIT_SETUP);
    }
    // Proof, on this host, before any input: a child locked down as an item's child is, tries
    // to get out. Fail closed if anything it tried worked.
    match test_child(std::process::id()) {
        Ok(attempts) => layers.attempts = attempts,
        Err(e) => {
            error!(error = %e, "media sandbox: the confinement test child failed; refusing to process anything");
            return ExitCode::from(EXIT_SETUP);
        }
    }
    if let Some(got) = layers.attempts.iter().find(|a| a.refused.is_none()) {
        error!(attempt = %got.what, "media sandbox: a locked-down child could {}; refusing to process anything", got.what);
        return ExitCode::from(EXIT_SETUP);
    }
    let ready = {
        let mut out = io::stdout().lock();
        let mut hello = READY.to_vec();
        match postcard::to_extend(&layers, Vec::new()) {
            Ok(said) => {
                hello.extend(said);
                frame::write_sync(&mut out, &hello).and_then(|()| out.flush())
            }
            Err(e) => Err(io::Error::other(e)),
        }
    };
    if let Err(e) = ready {
        error!(error = %e, "media sandbox: cannot talk to the worker");
        return ExitCode::from(EXIT_SETUP);
    }
    let server_pid = std::process::id();
    loop {
        let (reply, pending) = match fork_one(server_pid) {
            Ok(Some(r)) => r,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => (Reply::ForkFailed(e.to_string()), None),
        };
        // After a child died its request may be half read: stdin is out of step, so this server
        // stops after saying so, and the worker starts another.
        let keep_going = matches!(reply, Reply::Report(_));
        if let Err(e) = relay(&reply) {
            error!(error = %e, "media sandbox: cannot answer the worker");
            return ExitCode::from(EXIT_SETUP);
        }
        if let Some(pid) = pending {
            wait(pid);
        }
        if !keep_going {
            return ExitCode::SUCCESS;
        }
    }
}

/// Forks a child that locks itself down exactly as an item's child does, has it try
/// [`lockdown::escape_attempts`], and returns what it reports.
fn test_child(server_pid: u32) -> io::Result<Vec<lockdown::Escape>> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::other(format!("pipe: {}", io::Error::last_os_error())));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the server is single-threaded, so the child may run Rust code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::other(format!("fork: {}", io::Error::last_os_error())));
    }
    if pid == 0 {
        drop(read_end);
        let code = match lockdown::lock_down(Some(server_pid), lockdown::Filter::Child { pid: std::process::id() }) {
            Ok(()) => {
                let attempts = lockdown::escape_attempts();
                let mut out = std::fs::File::from(write_end);
                match postcard::to_allocvec(&attempts).map_err(io::Error::other).and_then(|b| {
                    frame::write_sync(&mut out, &b)?;
                    out.flush()
                }) {
                    Ok(()) => 0,
                    Err(_) => EXIT_SETUP as libc::c_int,
                }
            }
            Err(e) => {
                error!(error = %e, "media sandbox test child: cannot lock down");
                EXIT_SETUP as libc::c_int
            }
        };
        // SAFETY: _exit ends the child without running the server's exit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut from_child = std::fs::File::from(read_end);
    let read = frame::read_sync(&mut from_child, frame::MAX_HEADER);
    let status = wait(pid);
    let bytes = read.map_err(|e| {
        io::Error::other(format!("no answer ({e}); it {}", status.map(describe).unwrap_or_else(|| "vanished".into())))
    })?;
    postcard::from_bytes(&bytes).map_err(io::Error::other)
}

/// Sends one reply to the worker.
fn relay(reply: &Reply) -> io::Result<()> {
    let bytes = postcard::to_allocvec(reply).map_err(io::Error::other)?;
    let mut out = io::stdout().lock();
    frame::write_sync(&mut out, &bytes)?;
    out.flush()
}

/// Forks a child for the next request and returns its report as soon as it is complete, with
/// the child's pid still to be waited for. `Ok(None)`: stdin closed, no more requests.
fn fork_one(server_pid: u32) -> io::Result<Option<(Reply, Option<libc::pid_t>)>> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::other(format!("pipe: {}", io::Error::last_os_error())));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    frame::widen_pipe(fds[0]);
    // SAFETY: this process is single-threaded (the server never starts a thread), so the child
    // may go on running Rust code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::other(format!("fork: {}", io::Error::last_os_error())));
    }
    if pid == 0 {
        drop(read_end);
        let code = child(server_pid, write_end);
        // SAFETY: _exit ends the child without running the server's exit handlers or flushing
        // buffers it shares with the server.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut report = std::fs::File::from(read_end);
    // The child's first frame says what the file is (empty when it never got that far); it is
    // relayed at once, so the worker's clock for the item becomes that class's budget.
    let first = frame::read_sync(&mut report, frame::MAX_HEADER);
    let read = match first {
        Ok(identified) => {
            if !identified.is_empty() {
                relay(&Reply::Identified(identified))?;
            }
            frame::read_sync(&mut report, u64::MAX)
        }
        Err(e) => Err(e),
    };
    drop(report);
    if let Ok(bytes) = read {
        // Answer first; the child's exit (unmapping its memory) is off the item's critical path.
        return Ok(Some((Reply::Report(bytes), Some(pid))));
    }
    let status = wait(pid);
    match status {
        Some(s) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == EXIT_NO_REQUEST => Ok(None),
        // The child could not lock down or take its limits: the host's doing, not the file's.
        Some(s) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == EXIT_SETUP as libc::c_int => {
            Ok(Some((Reply::ForkFailed("a sandbox child could not set itself up (see the log)".into()), None)))
        }
        _ => {
            let _ = writeln!(io::stderr().lock(), "{SYNC_MARK}");
            Ok(Some((Reply::Died(status.map(describe).unwrap_or_else(|| "could not be waited for".into())), None)))
        }
    }
}

/// Waits for our own child; its wait status.
fn wait(pid: libc::pid_t) -> Option<libc::c_int> {
    let mut status: libc::c_int = 0;
    // SAFETY: waits for our own child, writing its status into a live local.
    (unsafe { libc::waitpid(pid, &mut status, 0) } == pid).then_some(status)
}

/// The forked child: lock down further, read the request, take the limits, read the input,
/// let go of the server's pipes, work, report. Returns the exit code.
fn child(server_pid: u32, out: OwnedFd) -> libc::c_int {
    if let Err(e) = lockdown::lock_down(Some(server_pid), lockdown::Filter::Child { pid: std::process::id() }) {
        error!(error = %e, "media sandbox child: cannot lock down");
        return EXIT_SETUP as libc::c_int;
    }
    // The request arrives on stdin (a Unix socket) with the input's sealed memfd attached.
    let (header, input_fd) = match frame::read_with_fd(0, frame::MAX_HEADER) {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return EXIT_NO_REQUEST,
        Err(e) => {
            error!(error = %e, "media sandbox child: cannot read the request");
            return EXIT_SETUP as libc::c_int;
        }
    };
    let request: Request = match postcard::from_bytes(&header) {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "media sandbox child: the request does not parse");
            return EXIT_SETUP as libc::c_int;
        }
    };
    if let Err(e) = lockdown::apply_limits(&request.limits) {
        error!(error = %e, "media sandbox child: cannot apply resource limits");
        return EXIT_SETUP as libc::c_int;
    }
    // Mapped read-only, not copied: the worker's input budget counts these bytes, not this
    // child's memory limit (a read-only mapping is outside `RLIMIT_DATA`).
    let input = match Input::from_received(input_fd) {
        Ok(b) => b,
        Err(e) => {
            error!(error = %e, "media sandbox child: cannot map the input");
            return EXIT_SETUP as libc::c_int;
        }
    };
    // The server's request and reply pipes are no business of the code that parses the input.
    if let Err(e) = lockdown::detach_stdio() {
        error!(error = %e, "media sandbox child: cannot detach from the server's pipes");
        return EXIT_SETUP as libc::c_int;
    }
    let span =
        info_span!("item", job_id = %request.job_id, item_id = %request.item_id, sandbox_pid = std::process::id());
    let _entered = span.enter();
    let mut out = std::fs::File::from(out);
    let settings = request.task.settings.clone();
    let mut told = false;
    let mut first_word = io::Result::Ok(());
    let (result, mut stats) = execute(&request.task, &input, &mut |class| {
        let budget = crate::budget_of(class, &settings);
        // The CPU backstop follows the class too: two busy cores for the whole budget, and some.
        lockdown::limit_cpu(budget.as_secs().saturating_mul(2).saturating_add(10));
        first_word = postcard::to_allocvec(&Identified { class, budget })
            .map_err(io::Error::other)
            .and_then(|b| frame::write_sync(&mut out, &b))
            .and_then(|()| out.flush());
        told = true;
    });
    drop(input);
    if let Err(e) = first_word {
        error!(error = %e, "media sandbox child: cannot tell the server what the file is");
        return EXIT_SETUP as libc::c_int;
    }
    if !told {
        if let Err(e) = frame::write_sync(&mut out, &[]) {
            error!(error = %e, "media sandbox child: cannot talk to the server");
            return EXIT_SETUP as libc::c_int;
        }
    }
    stats.peak_rss_bytes = lockdown::peak_rss_bytes();
    stats.cpu = lockdown::cpu_time();
    debug!(
        admit = ?request.task.admit,
        work_ms = stats.work.as_secs_f64() * 1e3,
        cpu_ms = stats.cpu.as_secs_f64() * 1e3,
        peak_rss_mb = stats.peak_rss_bytes / (1024 * 1024),
        ok = result.is_ok(),
        "media sandbox: done"
    );
    let report = Report { result, stats };
    let written = postcard::to_allocvec(&report).map_err(io::Error::other).and_then(|bytes| {
        frame::write_sync(&mut out, &bytes)?;
        out.flush()
    });
    match written {
        Ok(()) => 0,
        Err(e) => {
            error!(error = %e, "media sandbox child: cannot send the report");
            EXIT_SETUP as libc::c_int
        }
    }
}

/// "was killed by signal 11 (SIGSEGV)", "exited with status 70".
pub(crate) fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = match sig {
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGILL => "SIGILL",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGSYS => "SIGSYS",
            libc::SIGXCPU => "SIGXCPU: its CPU-time limit",
            libc::SIGXFSZ => "SIGXFSZ: its file-size limit",
            libc::SIGTERM => "SIGTERM",
            _ => "another signal",
        };
        format!("was killed by signal {sig} ({name})")
    } else if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => "exited without a report".to_string(),
            c => format!("exited with status {c}"),
        }
    } else {
        format!("ended with wait status {status}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_read_as_people_say_them() {
        // Linux encodings: signal in the low 7 bits; exit status in bits 8..16.
        assert_eq!(describe(libc::SIGSEGV), "was killed by signal 11 (SIGSEGV)");
        assert_eq!(describe(70 << 8), "exited with status 70");
        assert_eq!(describe(0), "exited without a report");
        assert!(describe(libc::SIGXCPU).contains("CPU-time limit"));
    }
}
