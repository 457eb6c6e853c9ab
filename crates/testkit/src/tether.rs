//! Child processes tethered to the test process: a wrapper kills them when the test process
//! goes, however it goes (a panic, a kill, a timeout), so no worker or server outlives a run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Processes that die with the test binary: each runs under a bash wrapper that kills it when
/// our end of the wrapper's stdin pipe closes (the test process exited, however it exited),
/// forwards SIGTERM to it, and exits with its status when it exits by itself.
pub struct Tethered {
    pub child: Child,
}

const TETHER: &str = r#"exec 3<&0
"$@" </dev/null & child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit $?' TERM
cat <&3 >/dev/null & watcher=$!
wait -n $child $watcher; rc=$?
if kill -0 $child 2>/dev/null; then kill -KILL $child; wait $child; exit 137; fi
kill $watcher 2>/dev/null
exit $rc"#;

impl Tethered {
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, String)], log: &Path) -> Tethered {
        let logf = std::fs::File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(TETHER)
            .arg("tether")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(logf.try_clone().expect("log file"))
            .stderr(logf);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Tethered { child }
    }

    /// The wrapped process's own pid (the wrapper's child).
    pub fn inner_pid(&self) -> Option<u32> {
        let w = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{w}/task/{w}/children")).ok()?;
        children.split_whitespace().filter_map(|p| p.parse().ok()).find(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() != "cat").unwrap_or(false)
        })
    }

    /// SIGKILL to the wrapped process (a crash), then waits for the wrapper to exit.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.inner_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (forwarded to the process) and waits up to `timeout` for its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `cmd.output()`, but a command that has not exited within `limit` is killed and the test fails
/// with what it printed so far: a check that hangs must fail the run, not stall it.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let (o, e) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
                panic!(
                    "{cmd:?} did not exit within {limit:?}; it printed:\n{}{}",
                    String::from_utf8_lossy(&o),
                    String::from_utf8_lossy(&e)
                );
            }
        }
    };
    std::process::Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}
