//! What sandbox processes do to themselves before any input is parsed: tie their life to their
//! parent's, give up privileges, install a seccomp filter, then (in the forked child, once the
//! request says how much) take resource limits. Linux only; elsewhere [`lock_down`] fails and
//! the worker must run with `MEDIAGATE_SANDBOX=off`.

use std::io;

use crate::ChildLimits;

/// Syscalls the fork server's filter refuses with `EPERM`: the network (no socket can be made,
/// and none is inherited), starting programs, inspecting other processes, and the kernel
/// interfaces exploits use to escalate. The server parses no input; its children, which do, get
/// the much narrower [`child_allowed`] list on top.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn server_denied() -> Vec<libc::c_long> {
    vec![
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_personality,
    ]
}

/// The only syscalls a media child may make, each allowed because the decoders (FFmpeg,
/// libheif with libde265 and dav1d, libjpeg-turbo, libpng, libwebp), the Rust runtime or the
/// child's own plumbing make it on inputs that are not hostile; anything else fails with `EPERM`.
/// Nothing here takes a path: the input arrives as a sealed memfd, the outputs leave over the
/// report pipe, and the video muxer writes to memory. So there is no `open`/`openat`, `stat` of
/// a path, `creat`/`mkdir`/`unlink`/`rename`, no socket of any kind, no `exec`, no new process.
/// Some are allowed only with certain arguments ([`filter_program`]): `clone` for threads only,
/// `mmap`/`mprotect` never executable, `prlimit64` on itself, `tgkill` within itself, `prctl`
/// to name a thread.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn child_allowed() -> Vec<libc::c_long> {
    #[allow(unused_mut)]
    let mut v = vec![
        // Memory: the heap, anonymous mappings (frames, thread stacks), the input's mapping.
        libc::SYS_brk,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        // Threads (decoder, scaler and encoder pools) and their synchronisation.
        libc::SYS_futex,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_set_tid_address,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_membarrier,
        // Signals: handlers, masks, the alternate stack Rust's threads install, `abort()`.
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        // Time: deadlines, budgets, waits.
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_nanosleep,
        libc::SYS_clock_nanosleep,
        // Descriptors already open: the request socket (with the input's memfd attached), the
        // report pipe, stderr (logs), the memfd. No call here opens anything new.
        libc::SYS_read,
        libc::SYS_readv,
        libc::SYS_write,
        libc::SYS_writev,
        libc::SYS_lseek,
        libc::SYS_close,
        libc::SYS_fstat,
        libc::SYS_fcntl,
        libc::SYS_dup3,
        libc::SYS_recvmsg,
        libc::SYS_ppoll,
        // Resource use and limits (the report's peak memory and CPU time; lowering its own CPU
        // limit once the file's class is known).
        libc::SYS_getrusage,
        libc::SYS_sysinfo,
        // Randomness (Rust's hash maps), leaving.
        libc::SYS_getrandom,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_dup2, libc::SYS_poll, libc::SYS_time]);
    v
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

// Classic BPF, as seccomp takes it: BPF_LD | BPF_W | BPF_ABS, BPF_JMP | BPF_JEQ | BPF_K, …
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_JSET_K: u16 = 0x05 | 0x40;
const BPF_RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
// Offsets in `struct seccomp_data`: nr, arch, then the arguments, 64 bits each (little-endian:
// the low word first).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}
const CLONE_THREAD: u32 = 0x0001_0000;
const PROT_EXEC: u32 = 0x4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Which filter a process installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// The fork server's: the [`server_denied`] calls refused, everything else (fork included)
    /// allowed.
    ForkServer,
    /// A media child's: only [`child_allowed`] and the argument-checked calls, for the process
    /// `pid` (its own).
    Child {
        /// The child's own pid: `tgkill` may only signal its own threads.
        pid: u32,
    },
}

/// The filter program. Both kill on a foreign architecture (and x32 on x86_64) and answer
/// `clone3` with `ENOSYS` (so the C library falls back to `clone`, whose flags a filter can
/// read). Filters stack: a child's allowlist comes on top of the server's denylist.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn filter_program(filter: Filter) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    p.extend([jump(BPF_JGE_K, 0x4000_0000, 0, 1), stmt(BPF_RET_K, RET_KILL_PROCESS)]);
    p.extend([jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1), stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32)]);
    let pid = match filter {
        Filter::ForkServer => {
            for nr in server_denied() {
                p.extend([jump(BPF_JEQ_K, nr as u32, 0, 1), stmt(BPF_RET_K, RET_EPERM)]);
            }
            p.push(stmt(BPF_RET_K, RET_ALLOW));
            return p;
        }
        Filter::Child { pid } => pid,
    };
    for nr in child_allowed() {
        p.extend([jump(BPF_JEQ_K, nr as u32, 0, 1), stmt(BPF_RET_K, RET_ALLOW)]);
    }
    // Each checked call: when the number matches, load the argument's low word, test it, and
    // allow or refuse; otherwise skip to the next check with the number still loaded.
    let mut checked = |nr: libc::c_long, arg: u32, test: libc::sock_filter, allow_if_true: bool| {
        let (jt, jf) = if allow_if_true { (0, 1) } else { (1, 0) };
        p.extend([
            jump(BPF_JEQ_K, nr as u32, 0, 4),
            stmt(BPF_LD_W_ABS, arg),
            jump(test.code, test.k, jt, jf),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, RET_EPERM),
        ]);
    };
    // A thread, never a process.
    checked(libc::SYS_clone, off_arg(0), jump(BPF_JSET_K, CLONE_THREAD, 0, 0), true);
    // Mappings and protections never executable: an exploit cannot make memory it wrote
    // runnable (every library was mapped before the fork).
    checked(libc::SYS_mmap, off_arg(2), jump(BPF_JSET_K, PROT_EXEC, 0, 0), false);
    checked(libc::SYS_mprotect, off_arg(2), jump(BPF_JSET_K, PROT_EXEC, 0, 0), false);
    // Signals to its own threads only (`abort()`, thread cancellation).
    checked(libc::SYS_tgkill, off_arg(0), jump(BPF_JEQ_K, pid, 0, 0), true);
    // Naming a thread (dav1d and FFmpeg name their workers), nothing else prctl does.
    checked(libc::SYS_prctl, off_arg(0), jump(BPF_JEQ_K, libc::PR_SET_NAME as u32, 0, 0), true);
    // Its own limits (pid 0): reading them, and lowering the CPU limit. Raising a hard limit
    // needs CAP_SYS_RESOURCE, which a child does not have ([`lock_down`] drops it).
    checked(libc::SYS_prlimit64, off_arg(0), jump(BPF_JEQ_K, 0, 0, 0), true);
    p.push(stmt(BPF_RET_K, RET_EPERM));
    p
}

fn check(what: &str, rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Ties the process to its parent (`parent_pid`, checked after the fact so a parent that died
/// first is noticed), drops privileges for good (no capabilities, `no_new_privs`, no core
/// dumps) and installs the seccomp `filter` ([`filter_program`]). Call while the process has one
/// thread: first thing in the fork server, and again in each forked child.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn lock_down(parent_pid: Option<u32>, filter: Filter) -> io::Result<()> {
    // SAFETY: prctl/getppid/setrlimit/syscall with plain integer arguments or pointers to live,
    // correctly typed locals; none of them retains a pointer past the call.
    unsafe {
        check("PR_SET_PDEATHSIG", libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0))?;
        if let Some(pid) = parent_pid {
            if libc::getppid() as u32 != pid {
                return Err(io::Error::other("the process that started this sandbox is gone"));
            }
        }
        let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        check("RLIMIT_CORE", libc::setrlimit(libc::RLIMIT_CORE, &none))?;
        check("PR_SET_DUMPABLE", libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0))?;
        check("PR_SET_NO_NEW_PRIVS", libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    drop_capabilities()?;
    let program = filter_program(filter);
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `prog` points at `program`, both alive for the call, which copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_long,
            libc::SECCOMP_FILTER_FLAG_TSYNC as libc::c_long,
            &prog as *const libc::sock_fprog,
        )
    };
    check("seccomp", if rc == 0 { 0 } else { -1 })
}

/// Empties this process's capability sets (effective, permitted, inheritable), so a sandbox
/// started as root (the host's CI, a container without `user:`) keeps no privilege: it cannot
/// raise a hard limit, override file permissions or use raw sockets, whatever else fails.
/// Giving capabilities up is always allowed; a process that has none is unchanged.
#[cfg(target_os = "linux")]
fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header { version: VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset reads a version-3 header and two data structs, all live locals.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    check("capset", if rc == 0 { 0 } else { -1 })
}

/// The isolation the fork server enters before its seccomp filter, where the kernel and the
/// container allow it; every child inherits it. Seccomp, `no_new_privs` and the resource limits
/// are not listed: without them no sandbox starts at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layers {
    /// Namespaces entered: `net` (no interface but a loopback that is down: nothing to connect
    /// to), `ipc` (no System V IPC or POSIX queues shared with the host), `mount` (private).
    pub namespaces: Vec<String>,
    /// The Landlock ABI of the ruleset in force (no path may be opened, created or removed; from
    /// ABI 4 no TCP bind or connect; from ABI 6 no signals or abstract sockets outside the
    /// sandbox), or `None`.
    pub landlock: Option<u32>,
    /// Why a layer is off ("net namespace: Operation not permitted").
    pub missing: Vec<String>,
    /// What a test child of the fork server, locked down exactly as an item's child, got when
    /// it tried what a compromised decoder would ([`escape_attempts`]). Every one must fail: a
    /// server whose test child got anywhere refuses to start.
    pub attempts: Vec<Escape>,
}

/// One thing a locked-down child tried, and what stopped it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Escape {
    /// What it tried: "open /etc/passwd".
    pub what: String,
    /// The error that stopped it ("Operation not permitted (os error 1)"), or `None` when it
    /// succeeded.
    pub refused: Option<String>,
}

/// Tries, from a locked-down child, what a compromised decoder would: read a file, create one,
/// connect to the host's loopback, start a program, make a process, map memory executable.
/// Called by the fork server's test child after [`lock_down`] with the child filter.
pub fn escape_attempts() -> Vec<Escape> {
    let refused = |r: io::Result<()>| r.err().map(|e| e.to_string());
    let mut v = Vec::new();
    v.push(Escape { what: "open /etc/passwd".into(), refused: refused(std::fs::read("/etc/passwd").map(drop)) });
    let path = std::env::temp_dir().join(format!("mediagate-escape-{}", std::process::id()));
    let created = std::fs::File::create(&path).map(drop);
    if created.is_ok() {
        let _ = std::fs::remove_file(&path);
    }
    v.push(Escape { what: format!("create {}", path.display()), refused: refused(created) });
    let connected = std::net::TcpStream::connect(("127.0.0.1", 5672)).map(drop);
    v.push(Escape { what: "connect to 127.0.0.1:5672".into(), refused: refused(connected) });
    let ran = std::process::Command::new("/bin/true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(drop);
    v.push(Escape { what: "run /bin/true".into(), refused: refused(ran) });
    // SAFETY: an anonymous mapping asked for as executable, unmapped at once if it was made.
    let mapped = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            Err(io::Error::last_os_error())
        } else {
            libc::munmap(p, 4096);
            Ok(())
        }
    };
    v.push(Escape { what: "map memory executable".into(), refused: refused(mapped) });
    v
}

impl std::fmt::Display for Layers {
    /// "seccomp allowlist, rlimits, net+ipc+mount namespaces, landlock ABI 6", then what is off.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seccomp allowlist, no capabilities, rlimits")?;
        if !self.namespaces.is_empty() {
            write!(f, ", {} namespaces", self.namespaces.join("+"))?;
        }
        if let Some(abi) = self.landlock {
            write!(f, ", landlock ABI {abi}")?;
        }
        if !self.missing.is_empty() {
            write!(f, " (off: {})", self.missing.join("; "))?;
        }
        let stopped = self
            .attempts
            .iter()
            .map(|a| match &a.refused {
                Some(why) => format!("{}: {why}", a.what),
                None => format!("{}: SUCCEEDED", a.what),
            })
            .collect::<Vec<_>>();
        if !stopped.is_empty() {
            write!(f, "; a locked-down child tried to {}", stopped.join(", "))?;
        }
        Ok(())
    }
}

/// Enters what [`Layers`] lists, each on its own: a layer the kernel or the container refuses
/// (an unprivileged user, Docker's default seccomp profile, a kernel without Landlock) is noted
/// in `missing` and the others still apply. Call in the fork server, single-threaded, after it
/// opened what it needs ([`open_dev_null`]) and before [`lock_down`].
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn isolate() -> Layers {
    let mut layers = Layers::default();
    for (flag, name) in [(libc::CLONE_NEWNET, "net"), (libc::CLONE_NEWIPC, "ipc"), (libc::CLONE_NEWNS, "mount")] {
        // SAFETY: unshare with a flag; the process is single-threaded, as these need.
        if unsafe { libc::unshare(flag) } == 0 {
            layers.namespaces.push(name.into());
        } else {
            layers.missing.push(format!("{name} namespace: {}", io::Error::last_os_error()));
        }
    }
    if layers.namespaces.iter().any(|n| n == "mount") {
        // Nothing mounted in here propagates out, and nothing from outside propagates in.
        // SAFETY: mount with a static path and null pointers for the unused arguments.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            layers.missing.push(format!("private mounts: {}", io::Error::last_os_error()));
        }
    }
    match landlock() {
        Ok(abi) => layers.landlock = Some(abi),
        Err(e) => layers.missing.push(format!("landlock: {e}")),
    }
    layers
}

/// See the Linux version.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn isolate() -> Layers {
    Layers { missing: vec!["namespaces and landlock: Linux only".into()], ..Layers::default() }
}

/// Restricts this process (and its future children) with a Landlock ruleset that handles every
/// access right the kernel knows and grants none: no path can be opened, created, renamed or
/// removed; from ABI 4, no TCP port bound or connected; from ABI 6, no signal to and no
/// abstract socket of a process outside the domain. Returns the ABI in force.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
fn landlock() -> io::Result<u32> {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: the version query takes a null attribute and size 0.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if abi < 1 {
        return Err(io::Error::last_os_error());
    }
    // Access rights per ABI: 13 file rights in v1, REFER in v2, TRUNCATE in v3, IOCTL_DEV in v5.
    let fs_bits = match abi {
        1 => 13,
        2 => 14,
        3 | 4 => 15,
        _ => 16,
    };
    let attr = RulesetAttr {
        handled_access_fs: (1u64 << fs_bits) - 1,
        handled_access_net: if abi >= 4 { 0b11 } else { 0 },
        scoped: if abi >= 6 { 0b11 } else { 0 },
    };
    // The attribute's size tells the kernel which fields this ABI reads.
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => 24,
    };
    // SAFETY: `attr` is a live, correctly laid out landlock_ruleset_attr of at least `size` bytes.
    let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: restricts this process with the ruleset just made (needs no_new_privs or
    // CAP_SYS_ADMIN: set no_new_privs first), then closes its descriptor.
    let rc = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        let rc = libc::syscall(libc::SYS_landlock_restrict_self, fd, 0);
        libc::close(fd as libc::c_int);
        rc
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(abi as u32)
}

/// See the Linux version: there is no sandbox on other platforms.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn lock_down(_parent_pid: Option<u32>, _filter: Filter) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "the media sandbox needs Linux on x86_64 or aarch64"))
}

/// Applies the request's limits (soft = hard, except CPU time: `SIGXCPU` at the soft limit,
/// `SIGKILL` 5 s later) and a small open-file limit.
#[cfg(target_os = "linux")]
pub fn apply_limits(l: &ChildLimits) -> io::Result<()> {
    let set = |what: &str, resource, soft: u64, hard: u64| {
        let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
        // SAFETY: a pointer to a live local of the right type, not retained.
        check(what, unsafe { libc::setrlimit(resource, &lim) })
    };
    set("RLIMIT_DATA", libc::RLIMIT_DATA, l.memory_bytes, l.memory_bytes)?;
    set("RLIMIT_CPU", libc::RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds.saturating_add(5))?;
    set("RLIMIT_FSIZE", libc::RLIMIT_FSIZE, l.file_bytes, l.file_bytes)?;
    set("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, 64, 64)?;
    Ok(())
}

/// Lowers the CPU-time limit to `seconds` (soft; `SIGKILL` 5 s later), once the child knows
/// which class of file it has. Raising a hard limit is not allowed, so a limit that is already
/// lower stays; either way the call cannot fail the item.
#[cfg(target_os = "linux")]
pub fn limit_cpu(seconds: u64) {
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: pointers to live locals of the right type, not retained.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CPU, &mut now) != 0 {
            return;
        }
        let hard = (seconds.saturating_add(5) as libc::rlim_t).min(now.rlim_max);
        let lim = libc::rlimit { rlim_cur: (seconds as libc::rlim_t).min(hard), rlim_max: hard };
        libc::setrlimit(libc::RLIMIT_CPU, &lim);
    }
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn limit_cpu(_seconds: u64) {}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn apply_limits(_l: &ChildLimits) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "the media sandbox needs Linux"))
}

/// `/dev/null`, opened by the fork server before it locks itself down: its children may open
/// nothing, and [`detach_stdio`] points their stdin and stdout at it.
static DEV_NULL: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// Opens `/dev/null` for [`detach_stdio`]; the fork server calls it before [`lock_down`].
pub fn open_dev_null() -> io::Result<()> {
    if DEV_NULL.get().is_none() {
        let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
        let _ = DEV_NULL.set(null);
    }
    Ok(())
}

/// Points stdin and stdout at `/dev/null` (stderr, the log, stays), from the descriptor
/// [`open_dev_null`] opened.
pub fn detach_stdio() -> io::Result<()> {
    let null = DEV_NULL.get().ok_or_else(|| io::Error::other("/dev/null was not opened before the lockdown"))?;
    for fd in [0, 1] {
        // SAFETY: dup3 onto the standard descriptors, from a descriptor we own (dup3 exists on
        // every architecture; dup2 not on aarch64).
        if unsafe { libc::dup3(std::os::fd::AsRawFd::as_raw_fd(null), fd, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// This process's peak resident memory (`ru_maxrss`, as `VmHWM`) in bytes, 0 when unknown.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the zeroed local it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0;
        }
        (u.ru_maxrss.max(0) as u64).saturating_mul(1024)
    }
}

/// CPU time (user + system, all threads) this process has used.
pub fn cpu_time() -> std::time::Duration {
    // SAFETY: getrusage writes into the zeroed local it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return std::time::Duration::ZERO;
        }
        u
    };
    let tv = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, (t.tv_usec as u32).saturating_mul(1000));
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
