//! The sandbox against real processes: this test binary is its own fork server (it calls
//! `server::serve` when started with `SERVER_ARG`, as the `mediagate` binary does), so the media
//! work, the limits, the seccomp filter and the crash handling are the real ones.
//!
//! A custom harness (`harness = false`) because the binary must answer to `SERVER_ARG` before
//! any test machinery starts. It prints libtest's summary line so `make test` counts it.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagate_media::{Format, MediaSettings};
use mediagate_sandbox::{
    server, Admit, ChildLimits, Done, Outcome, Request, Sandbox, SandboxConfig, SandboxError, Task, SERVER_ARG,
};

/// Which tests to run, from libtest's arguments: name filters (substrings, or whole names
/// with `--exact`), `--skip NAME` (repeatable, same matching), `--list`; the other flags cargo
/// may pass (`--nocapture`, `--test-threads N`, `-q`…) are accepted and change nothing here.
#[derive(Debug, Default, PartialEq)]
struct Selection {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
}

impl Selection {
    fn parse(args: &[String]) -> Selection {
        let mut s = Selection::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--skip" => s.skips.extend(it.next().cloned()),
                "--exact" => s.exact = true,
                "--list" => s.list = true,
                // Flags that take a value: the value is not a filter.
                "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" | "--report-time" => {
                    it.next();
                }
                flag if flag.starts_with('-') => {}
                filter => s.filters.push(filter.to_string()),
            }
        }
        s
    }

    fn matches(&self, name: &str, pattern: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    fn runs(&self, name: &str) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(name, f)))
            && !self.skips.iter().any(|s| self.matches(name, s))
    }
}

fn harness_selects() {
    let args = |a: &[&str]| Selection::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let all = args(&["--test-threads", "1", "--nocapture"]);
    assert!(all.runs("a_server_that_hangs_is_killed_at_the_budget"), "{all:?}: a flag's value is no filter");
    let skip = args(&["--skip", "hangs"]);
    assert!(!skip.runs("a_server_that_hangs_is_killed_at_the_budget"));
    assert!(skip.runs("a_server_that_dies_is_retried_once_then_a_crash"), "--skip's value is not a filter");
    let exact = args(&["--exact", "dies"]);
    assert!(!exact.runs("a_server_that_dies_is_retried_once_then_a_crash"));
    assert!(args(&["--exact", "a_server_that_dies_is_retried_once_then_a_crash"])
        .runs("a_server_that_dies_is_retried_once_then_a_crash"));
    assert!(args(&["server", "--skip", "dies"]).runs("a_server_that_hangs_is_killed_at_the_budget"));
    assert!(args(&["--list"]).list);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(SERVER_ARG) => return server::serve(&args[1..]),
        Some("lockdown-probe") => return lockdown_probe(args.get(1).map(String::as_str) == Some("fork-server")),
        _ => {}
    }
    let selection = Selection::parse(&args);
    let tests: &[(&str, fn())] = &[
        ("the_harness_selects_tests_as_libtest_does", harness_selects),
        ("a_photo_is_processed_in_a_fresh_child_with_the_same_outputs_as_in_process", photo_in_a_child),
        ("a_grid_heic_and_an_avif_decode_in_a_locked_down_child", heif_in_a_child),
        ("a_child_can_open_create_connect_and_exec_nothing_but_can_run_threads", filter_refuses),
        ("the_fork_server_reports_its_layers_and_its_test_childs_refusals_truly", layers_in_force),
        ("a_decoder_out_of_memory_is_a_crash_and_the_sandbox_carries_on", out_of_memory),
        ("a_server_that_hangs_is_killed_at_the_budget", hang),
        ("a_server_that_dies_is_retried_once_then_a_crash", dies),
        ("a_server_that_cannot_lock_down_is_a_setup_error_not_the_files_fault", cannot_start),
    ];
    if selection.list {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    for (name, test) in tests {
        if !selection.runs(name) {
            filtered += 1;
            continue;
        }
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1
        } else {
            failed += 1
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn sandbox(program: PathBuf) -> Sandbox {
    Sandbox::new(SandboxConfig::process(program, 1, &[])).expect("sandbox")
}

fn own_sandbox() -> Sandbox {
    sandbox(std::env::current_exe().expect("test binary"))
}

fn request(task: Task, memory_mb: u64) -> Request {
    Request {
        job_id: "j-test".into(),
        item_id: "0".into(),
        task,
        limits: ChildLimits { memory_bytes: memory_mb << 20, cpu_seconds: 60, file_bytes: 1 << 30 },
    }
}

/// Any task: the stand-in servers below never look at it.
fn probe_task() -> Task {
    Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: false }
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode jpeg");
    out.into_inner()
}

fn photo_in_a_child() {
    let rt = runtime();
    let sb = own_sandbox();
    let bytes = input(jpeg(1600, 1200));
    let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: true };
    let (a, b) = rt.block_on(async {
        sb.warm_up().await.expect("warm up");
        let a = sb.run(request(task.clone(), 512), bytes.clone(), Duration::from_secs(30)).await.expect("first run");
        let b = sb.run(request(task.clone(), 512), bytes.clone(), Duration::from_secs(30)).await.expect("second run");
        (a, b)
    });
    let me = std::process::id();
    assert!(a.stats.pid != me && b.stats.pid != me && a.stats.pid != b.stats.pid, "{:?} {:?}", a.stats, b.stats);
    assert!(a.stats.peak_rss_bytes > 1 << 20 && a.stats.cpu > Duration::ZERO, "{:?}", a.stats);
    let (
        Ok(Done { format: Format::Jpeg, outcome: Outcome::Photo { out, tensors: t } }),
        Ok(Done { outcome: Outcome::Photo { out: out2, .. }, .. }),
    ) = (a.result, b.result)
    else {
        panic!("not a photo outcome");
    };
    assert_eq!(t.len(), 1, "an opaque photo is scored once");
    assert_eq!(t[0].0.len(), 224 * 224 * 3);
    assert_eq!((out.width, out.height, out.full.width), (1600, 1200, 1600));
    assert_eq!(out, out2, "two children, same bytes");
    // The same work in-process gives the same bytes and tensor.
    let (local, _) = mediagate_sandbox::execute(&task, &bytes, &mut |_| ());
    let Ok(Done { outcome: Outcome::Photo { out: out3, tensors: t3 }, .. }) = local else {
        panic!("in-process run failed")
    };
    assert_eq!(out, out3);
    assert_eq!(t, t3);
}

/// libheif is initialised in the fork server before its seccomp filter; a child, locked down
/// further, decodes a grid HEIC (HEVC tiles, libde265 threads) and an AVIF (dav1d) with it.
fn heif_in_a_child() {
    use mediagate_testkit::heif::photo;
    let rt = runtime();
    let sb = own_sandbox();
    let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: true };
    for (kind, args, format) in
        [("heic", &["--grid", "256", "--orientation", "6"][..], Format::Heic), ("avif", &["--alpha"][..], Format::Avif)]
    {
        let bytes = input(photo(kind, 1024, 768, args));
        let report = rt
            .block_on(async { sb.run(request(task.clone(), 512), bytes.clone(), Duration::from_secs(30)).await })
            .expect("run");
        assert_ne!(report.stats.pid, std::process::id(), "decoded in a child");
        match report.result {
            Ok(Done { format: f, outcome: Outcome::Photo { out, tensors } }) => {
                assert_eq!(f, format);
                assert_eq!((out.width, out.height), (1024, 768), "{kind}: displayed size");
                // The alpha AVIF is scored as shown on black and on white.
                assert_eq!(tensors.len(), if kind == "avif" { 2 } else { 1 }, "{kind}: renderings scored");
                assert!(tensors.iter().all(|t| t.0.len() == 224 * 224 * 3), "{kind}: scored from the shared decode");
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
    // Peak memory of the child on a 48 MP (8064×6048) iPhone-shaped grid HEIC.
    let big = input(photo("heic", 8064, 6048, &["--grid", "512", "--quality", "60"]));
    let report = rt
        .block_on(async { sb.run(request(task.clone(), 2048), big.clone(), Duration::from_secs(120)).await })
        .expect("run 48 MP");
    assert!(report.result.is_ok(), "48 MP HEIC: {:?}", report.result.err());
    println!(
        "48 MP grid HEIC ({} kB): child peak RSS {} MB, {:.0} ms of work",
        big.len() / 1024,
        report.stats.peak_rss_bytes >> 20,
        report.stats.work.as_secs_f64() * 1e3
    );
}

/// Re-run of this binary: locks itself down, then tries what a compromised decoder would.
fn lockdown_probe(fork_server: bool) -> ExitCode {
    use mediagate_sandbox::lockdown::{lock_down, Filter};
    let filter = if fork_server { Filter::ForkServer } else { Filter::Child { pid: std::process::id() } };
    lock_down(None, filter).expect("lock down");
    let err = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let errno = |rc: i64| if rc < 0 { std::io::Error::last_os_error().raw_os_error().unwrap_or(0) } else { 0 };
    // SAFETY: plain syscalls with integer arguments; a forked child exits at once.
    let socket = errno(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) } as i64);
    let exec = match Command::new("/bin/true").status() {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    };
    // SAFETY: this probe process is single-threaded here; the child only calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the forked child at once, running nothing of the parent's.
        unsafe { libc::_exit(0) };
    }
    let fork = errno(pid as i64);
    let thread = std::thread::spawn(|| 7).join().map(|v| v == 7).unwrap_or(false);
    let passwd = err(std::fs::read("/etc/passwd").map(drop));
    let dir = std::env::temp_dir().join(format!("mediagate-probe-{}", std::process::id()));
    let create = err(std::fs::write(&dir, b"x"));
    let _ = std::fs::remove_file(&dir);
    let connect = err(std::net::TcpStream::connect(("127.0.0.1", 9)).map(drop));
    // SAFETY: an anonymous mapping asked to be executable; unmapped if it was made.
    let exec_map = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            libc::munmap(p, 4096);
            0
        }
    };
    println!(
        "socket={socket} exec={exec} fork={fork} thread={thread} passwd={passwd} create={create} connect={connect} \
         exec_map={exec_map}"
    );
    ExitCode::SUCCESS
}

fn probe(fork_server: bool) -> String {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.arg("lockdown-probe");
    if fork_server {
        cmd.arg("fork-server");
    }
    let out = cmd.output().expect("run probe");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn filter_refuses() {
    let e = libc::EPERM;
    // A child: threads, and nothing else a compromised decoder would want.
    assert_eq!(
        probe(false),
        format!("socket={e} exec={e} fork={e} thread=true passwd={e} create={e} connect={e} exec_map={e}")
    );
    // The fork server may fork and open files (it parses nothing); no network, no exec.
    assert_eq!(probe(true), format!("socket={e} exec={e} fork=0 thread=true passwd=0 create=0 connect={e} exec_map=0"));
}

/// The layers a server reports, checked from outside: its namespaces against `/proc/PID/ns`,
/// Landlock against what the kernel offers, and its test child's attempts each refused.
fn layers_in_force() {
    let rt = runtime();
    let sb = own_sandbox();
    rt.block_on(sb.warm_up()).expect("warm up");
    let layers = sb.layers().expect("a started server reports its layers");
    println!("layers: {layers}");
    let whats: Vec<&str> = layers.attempts.iter().map(|a| a.what.as_str()).collect();
    assert_eq!(whats.len(), 5, "{whats:?}");
    for a in &layers.attempts {
        let why = a.refused.as_deref().unwrap_or_else(|| panic!("a locked-down child could {}", a.what));
        assert!(why.contains("Operation not permitted"), "{}: refused by something else than seccomp: {why}", a.what);
    }
    let me = std::process::id();
    let servers: Vec<u32> = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid …": the ppid follows the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me) && String::from_utf8_lossy(&cmdline).contains(SERVER_ARG)
        })
        .collect();
    assert!(!servers.is_empty(), "no fork server among this process's children");
    for (kind, name) in [("net", "net"), ("ipc", "ipc"), ("mnt", "mount")] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{kind}")).expect("own namespace");
        for pid in &servers {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
                .unwrap_or_else(|e| panic!("reading /proc/{pid}/ns/{kind} (run the tests as root): {e}"));
            let listed = layers.namespaces.iter().any(|n| n == name);
            assert_eq!(theirs != ours, listed, "{name} namespace: server {pid} says {listed}, /proc says otherwise");
        }
    }
    // SAFETY: the version query of landlock_create_ruleset takes a null attribute and size 0.
    let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1) };
    assert_eq!(layers.landlock, (abi > 0).then_some(abi as u32), "Landlock: the kernel offers ABI {abi}");
}

fn out_of_memory() {
    let rt = runtime();
    let sb = own_sandbox();
    // 7000×7000 RGBA decodes to 196 MB: far over a 64 MiB limit, though the PNG is small.
    let img = image::RgbaImage::from_pixel(7000, 7000, image::Rgba([10, 20, 30, 128]));
    let mut png = Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).expect("encode png");
    let png = input(png.into_inner());
    let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: false };
    rt.block_on(async {
        let err = sb.run(request(task.clone(), 64), png, Duration::from_secs(60)).await.expect_err("must not fit");
        match &err {
            SandboxError::Crashed { out_of_memory, memory_mb, how } => {
                assert!(*out_of_memory, "{err}");
                assert_eq!(*memory_mb, 64);
                assert!(how.contains("SIGABRT"), "{how}");
            }
            other => panic!("expected a crash, got {other:?}"),
        }
        // A crash is the input's doing (`input.corrupt`): the worker's codes.rs decides, and tests, that.
        assert!(err.to_string().contains("64 MiB"), "{err}");
        // The sandbox goes on with the next item (in a new fork server), under the same limit.
        let ok = sb.run(request(task, 64), input(jpeg(800, 600)), Duration::from_secs(30)).await.expect("next item");
        assert!(matches!(ok.result, Ok(Done { outcome: Outcome::Photo { .. }, .. })), "{:?}", ok.result);
    });
}

/// A stand-in fork server: says it is ready, as a real one does once locked down, then `body`.
fn script(dir: &Path, body: &str) -> PathBuf {
    // The ready frame: length 9, little-endian, then "ready" and the layers it entered (postcard:
    // no namespace, no Landlock, nothing missing, no attempts: four zero bytes).
    shell(dir, &format!("printf '\\011\\000\\000\\000\\000\\000\\000\\000ready\\000\\000\\000\\000'\n{body}"))
}

/// An executable shell script `fake-server` in `dir`.
fn shell(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("fake-server");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

fn hang() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(script(dir.path(), "exec sleep 600"));
    let started = Instant::now();
    let err = rt
        .block_on(sb.run(request(probe_task(), 64), input(vec![0; 1000]), Duration::from_secs(1)))
        .expect_err("must time out");
    // A timeout is not the input's fault (a requeue): the worker's codes.rs decides, and tests, that.
    assert!(matches!(err, SandboxError::TimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}

fn dies() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let count = dir.path().join("starts");
    let sb = sandbox(script(
        dir.path(),
        &format!("echo started >> {}; head -c 1 >/dev/null; kill -SEGV $$", count.display()),
    ));
    let err = rt
        .block_on(sb.run(request(probe_task(), 64), input(vec![0; 1000]), Duration::from_secs(10)))
        .expect_err("must crash");
    match &err {
        SandboxError::Crashed { how, .. } => assert!(how.contains("SIGSEGV"), "{how}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    let starts = std::fs::read_to_string(&count).unwrap_or_default().lines().count();
    assert!(starts >= 2, "retried in a fresh process: {starts} starts");
}

fn cannot_start() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    // What a server does where seccomp is refused: says why on stderr and exits 70, never ready.
    let path = shell(dir.path(), "echo 'cannot lock down: seccomp: Operation not permitted' >&2\nexit 70");
    let sb = sandbox(path);
    let err = rt.block_on(sb.warm_up()).expect_err("must not start");
    assert!(matches!(err, SandboxError::Spawn { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("status 70") && text.contains("seccomp") && text.contains("MEDIAGATE_SANDBOX=off"), "{text}");
    let err = rt
        .block_on(sb.run(request(probe_task(), 64), input(vec![0; 10]), Duration::from_secs(5)))
        .expect_err("must fail");
    assert!(matches!(err, SandboxError::Spawn { .. }), "{err:?}");
}

/// Bytes in a sealed memfd, as the worker hands them over.
fn input(bytes: Vec<u8>) -> Arc<mediagate_sandbox::Input> {
    Arc::new(mediagate_sandbox::Input::copy_of(&bytes).expect("a memfd for the input"))
}
