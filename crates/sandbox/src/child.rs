//! The sandbox side: a fork server. The worker starts it (the `mediagate` binary with
//! [`crate::CHILD_ARG`]); it locks itself down, then, for each request it reads from stdin,
//! reads the input bytes, forks a child that locks itself down further, takes its limits, does
//! the media work and writes its [`crate::Report`] into a pipe, and relays that report (or how
//! the child died) to the worker on stdout. Logs go to stderr, which the worker forwards.
//!
//! Why a fork server: loading Debian's FFmpeg and the ~160 libraries it links costs ~70 ms of
//! CPU per `exec`, more than a small photo's whole media work; a `fork` of an already-loaded,
//! single-threaded server costs about a millisecond, and still gives each item a fresh process
//! that nothing of an earlier item's survives in (the server never parses input).

use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tracing::{debug, error, info_span};

use crate::{execute, frame, lockdown, Report, Request};

/// Written alone on a line to stderr by the server after a child dies: the worker's forwarder
/// swallows it and then knows it has read all the child wrote.
pub(crate) const SYNC_MARK: &str = "\u{1e}mediagate-sandbox-sync";

/// Exit status of a server or child that could not lock itself down or talk to its parent.
const EXIT_SETUP: u8 = 70;

/// What the fork server tells the worker about one request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The child's [`Report`], as the child encoded it.
    Report(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The child ended without a whole report: how ("was killed by signal 11 (SIGSEGV)").
    Died(String),
    /// No child could be made.
    ForkFailed(String),
}

/// Runs the fork server until its stdin closes. `args` are the command-line arguments after
/// [`crate::CHILD_ARG`]: the worker's pid.
pub fn serve(args: &[String]) -> ExitCode {
    let parent = args.first().and_then(|a| a.parse::<u32>().ok());
    if let Err(e) = lockdown::lock_down(parent, true) {
        error!(error = %e, "media sandbox: cannot lock down; refusing to process anything");
        return ExitCode::from(EXIT_SETUP);
    }
    let server_pid = std::process::id();
    let mut stdin = io::stdin().lock();
    loop {
        let header = match frame::read_sync(&mut stdin, frame::MAX_HEADER) {
            Ok(h) => h,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return ExitCode::SUCCESS,
            Err(e) => {
                error!(error = %e, "media sandbox: cannot read a request");
                return ExitCode::from(EXIT_SETUP);
            }
        };
        let input = match frame::read_sync(&mut stdin, u64::MAX) {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "media sandbox: cannot read the input");
                return ExitCode::from(EXIT_SETUP);
            }
        };
        let reply = fork_one(server_pid, &header, &input);
        drop(input);
        let sent = postcard::to_allocvec(&reply).map_err(io::Error::other).and_then(|bytes| {
            let mut out = io::stdout().lock();
            frame::write_sync(&mut out, &bytes)?;
            out.flush()
        });
        if let Err(e) = sent {
            error!(error = %e, "media sandbox: cannot answer the worker");
            return ExitCode::from(EXIT_SETUP);
        }
    }
}

/// Forks a child for one request and waits for its report and its end.
fn fork_one(server_pid: u32, header: &[u8], input: &[u8]) -> Reply {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Reply::ForkFailed(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: this process is single-threaded (the server never starts a thread), so the child
    // may go on running Rust code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Reply::ForkFailed(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(read_end);
        let code = child(server_pid, header, input, write_end);
        // SAFETY: _exit ends the child without running the server's exit handlers or flushing
        // buffers it shares with the server.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut report = Vec::new();
    let read = std::fs::File::from(read_end).read_to_end(&mut report);
    let mut status: libc::c_int = 0;
    // SAFETY: waits for our own child, writing its status into a live local.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    let clean_exit = waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    match read {
        Ok(_) if clean_exit && report.len() >= 8 => {
            let mut r = &report[..];
            match frame::read_sync(&mut r, u64::MAX) {
                Ok(bytes) => Reply::Report(bytes),
                Err(e) => Reply::Died(format!("sent a broken report ({e})")),
            }
        }
        _ => {
            let _ = writeln!(io::stderr().lock(), "{SYNC_MARK}");
            if waited != pid {
                Reply::Died("could not be waited for".into())
            } else {
                Reply::Died(describe(status))
            }
        }
    }
}

/// The forked child: lock down further, take the limits, work, report. Returns the exit code.
fn child(server_pid: u32, header: &[u8], input: &[u8], out: OwnedFd) -> libc::c_int {
    if let Err(e) = lockdown::lock_down(Some(server_pid), false) {
        error!(error = %e, "media sandbox child: cannot lock down");
        return EXIT_SETUP as libc::c_int;
    }
    // The server's request and reply pipes are no business of the child's.
    if let Err(e) = lockdown::detach_stdio() {
        error!(error = %e, "media sandbox child: cannot detach from the server's pipes");
        return EXIT_SETUP as libc::c_int;
    }
    let request: Request = match postcard::from_bytes(header) {
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
    let span =
        info_span!("item", job_id = %request.job_id, item_id = %request.item_id, sandbox_pid = std::process::id());
    let _entered = span.enter();
    let (result, mut stats) = execute(&request.task, input);
    stats.peak_rss_bytes = lockdown::peak_rss_bytes();
    stats.cpu = lockdown::cpu_time();
    debug!(
        task = request.task.label(),
        work_ms = stats.work.as_secs_f64() * 1e3,
        cpu_ms = stats.cpu.as_secs_f64() * 1e3,
        peak_rss_mb = stats.peak_rss_bytes / (1024 * 1024),
        ok = result.is_ok(),
        "media sandbox: done"
    );
    let report = Report { result, stats };
    let written = postcard::to_allocvec(&report).map_err(io::Error::other).and_then(|bytes| {
        let mut f = std::fs::File::from(out);
        frame::write_sync(&mut f, &bytes)?;
        f.flush()
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
