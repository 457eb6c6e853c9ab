//! What sandbox processes do to themselves before any input is parsed: tie their life to their
//! parent's, give up privileges, install a seccomp filter, then (in the forked child, once the
//! request says how much) take resource limits. Linux only; elsewhere [`lock_down`] fails and
//! the worker must run with `MEDIAGATE_SANDBOX=off`.

use std::io;

use crate::ChildLimits;

/// Syscalls the filter refuses with `EPERM`: the network (no socket can be made, and none is
/// inherited), starting programs, inspecting other processes, and the kernel interfaces exploits
/// use to escalate. Making processes is refused too, except in the fork server (see
/// [`filter_program`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied(allow_fork: bool) -> Vec<libc::c_long> {
    let mut v = vec![
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
    ];
    #[cfg(target_arch = "x86_64")]
    if !allow_fork {
        v.extend([libc::SYS_fork, libc::SYS_vfork]);
    }
    let _ = allow_fork;
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
// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;
const CLONE_THREAD: u32 = 0x0001_0000;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program: kill on a foreign architecture (and x32 on x86_64), `EPERM` for the
/// [`denied`] calls, `ENOSYS` for `clone3` (so the C library falls back to `clone`, whose flags
/// a filter can read) and, unless `allow_fork`, `EPERM` for a `clone` that would make a process
/// rather than a thread. Filters stack: a forked child adds the stricter one to its parent's.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn filter_program(allow_fork: bool) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    p.extend([jump(BPF_JGE_K, 0x4000_0000, 0, 1), stmt(BPF_RET_K, RET_KILL_PROCESS)]);
    for nr in denied(allow_fork) {
        p.extend([jump(BPF_JEQ_K, nr as u32, 0, 1), stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32)]);
    }
    p.extend([jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1), stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32)]);
    if !allow_fork {
        p.extend([
            jump(BPF_JEQ_K, libc::SYS_clone as u32, 0, 3),
            stmt(BPF_LD_W_ABS, OFF_ARG0),
            jump(BPF_JSET_K, CLONE_THREAD, 1, 0),
            stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32),
        ]);
    }
    p.push(stmt(BPF_RET_K, RET_ALLOW));
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
/// first is noticed), drops privileges for good, disables core dumps and installs the seccomp
/// filter ([`filter_program`]). Call while the process has one thread: first thing in the fork
/// server (`allow_fork`), and again in each forked child (not `allow_fork`).
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn lock_down(parent_pid: Option<u32>, allow_fork: bool) -> io::Result<()> {
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
        let program = filter_program(allow_fork);
        let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
        let rc = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_long,
            libc::SECCOMP_FILTER_FLAG_TSYNC as libc::c_long,
            &prog as *const libc::sock_fprog,
        );
        check("seccomp", if rc == 0 { 0 } else { -1 })?;
    }
    Ok(())
}

/// See the Linux version: there is no sandbox on other platforms.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn lock_down(_parent_pid: Option<u32>, _allow_fork: bool) -> io::Result<()> {
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

/// Points stdin and stdout at `/dev/null` (stderr, the log, stays).
pub fn detach_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in [0, 1] {
        // SAFETY: dup2 onto the standard descriptors, from a descriptor we own.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// This process's peak resident memory (`VmHWM`) in bytes, 0 when unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).map(|kb| kb * 1024))
        })
        .unwrap_or(0)
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
