//! The item's bytes, held once: a sealed `memfd` that the worker fills straight from the S3 body
//! and maps read-only, and that the sandbox child receives as a descriptor and maps read-only
//! too, so the input is never copied through a pipe nor held twice.
//!
//! Sealing (`F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL`) is what makes handing the
//! descriptor to an untrusted child safe: a compromised decoder cannot change the bytes the
//! worker has hashed and may still quarantine, nor unseal them.
//!
//! Elsewhere than Linux the bytes live in an ordinary allocation (there is no process sandbox
//! there either).

use std::io;
use std::ops::Deref;

/// The bytes of one item, immutable once made. Cheap to share behind an `Arc`.
pub struct Input {
    inner: Inner,
}

enum Inner {
    /// Allocated memory (non-Linux, or bytes made in memory).
    Heap(Vec<u8>),
    /// A sealed memfd and its read-only mapping (`map` is null when `len` is 0).
    #[cfg(target_os = "linux")]
    Sealed { fd: std::os::fd::OwnedFd, map: *const u8, len: usize },
}

// SAFETY: the mapping is read-only and sealed against writes by anyone, and it lives as long as
// the value; sharing a pointer to immutable bytes between threads is sound.
unsafe impl Send for Input {}
// SAFETY: as above: nothing can change the bytes behind `map` while the value lives.
unsafe impl Sync for Input {}

impl Input {
    /// A new input, to be written chunk by chunk.
    pub fn writer() -> io::Result<InputWriter> {
        InputWriter::new()
    }

    /// An input holding a copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> io::Result<Input> {
        let mut w = InputWriter::new()?;
        w.write(bytes)?;
        w.finish()
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Heap(v) => v,
            #[cfg(target_os = "linux")]
            Inner::Sealed { map, len, .. } => {
                if *len == 0 {
                    &[]
                } else {
                    // SAFETY: `map` is a live read-only mapping of `len` bytes of a memfd sealed
                    // against writes and shrinking, unmapped only when `self` drops.
                    unsafe { std::slice::from_raw_parts(*map, *len) }
                }
            }
        }
    }

    /// The sealed descriptor to hand to a sandbox child (`None` for heap bytes).
    #[cfg(target_os = "linux")]
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match &self.inner {
            Inner::Heap(_) => None,
            Inner::Sealed { fd, .. } => Some(fd.as_fd()),
        }
    }

    /// Maps a descriptor received from the worker (the child's side): read-only, private.
    #[cfg(target_os = "linux")]
    pub(crate) fn from_received(fd: std::os::fd::OwnedFd) -> io::Result<Input> {
        use std::os::fd::AsRawFd;
        // The size from the end offset, not fstat: the child's seccomp filter allows no call
        // that takes a path, and the C library's fstat is `newfstatat(fd, "")`. The seals keep
        // the size from changing.
        // SAFETY: lseek on a descriptor we own; it only moves this descriptor's offset.
        let end = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_END) };
        if end < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = usize::try_from(end).map_err(|_| io::Error::other("input larger than the address space"))?;
        let map = map_read_only(&fd, len, libc::MAP_PRIVATE)?;
        Ok(Input { inner: Inner::Sealed { fd, map, len } })
    }
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for Input {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("len", &self.bytes().len()).finish()
    }
}

impl From<Vec<u8>> for Input {
    /// Heap bytes: fine in-process; a process sandbox copies them into a memfd when it runs them.
    fn from(v: Vec<u8>) -> Input {
        Input { inner: Inner::Heap(v) }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Input {
    fn drop(&mut self) {
        if let Inner::Sealed { map, len, .. } = &self.inner {
            if *len > 0 {
                // SAFETY: unmaps the mapping this value made; no slice of it outlives `self`.
                unsafe { libc::munmap(*map as *mut libc::c_void, *len) };
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn map_read_only(fd: &std::os::fd::OwnedFd, len: usize, flags: libc::c_int) -> io::Result<*const u8> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(std::ptr::null());
    }
    // SAFETY: a new read-only mapping of `len` bytes of a file we hold open; the kernel picks
    // the address.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, flags, fd.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *const u8)
}

/// An input being written (from a download, chunk by chunk); [`InputWriter::finish`] seals it.
pub struct InputWriter {
    #[cfg(target_os = "linux")]
    file: std::fs::File,
    #[cfg(not(target_os = "linux"))]
    buf: Vec<u8>,
    len: u64,
}

impl InputWriter {
    #[cfg(target_os = "linux")]
    fn new() -> io::Result<InputWriter> {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create with a NUL-terminated name; the descriptor it returns is ours.
        let fd =
            unsafe { libc::memfd_create(c"mediagate-input".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        Ok(InputWriter { file, len: 0 })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> io::Result<InputWriter> {
        Ok(InputWriter { buf: Vec::new(), len: 0 })
    }

    /// Appends `chunk`.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        io::Write::write_all(&mut self.file, chunk)?;
        #[cfg(not(target_os = "linux"))]
        self.buf.extend_from_slice(chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Throws away what was written (a download that starts again).
    pub fn clear(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::io::Seek;
            self.file.set_len(0)?;
            self.file.seek(io::SeekFrom::Start(0))?;
        }
        #[cfg(not(target_os = "linux"))]
        self.buf.clear();
        self.len = 0;
        Ok(())
    }

    /// Seals the bytes against any change and maps them read-only.
    #[cfg(target_os = "linux")]
    pub fn finish(self) -> io::Result<Input> {
        use std::os::fd::{AsRawFd, OwnedFd};
        let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        if unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let len = usize::try_from(self.len).map_err(|_| io::Error::other("input larger than the address space"))?;
        let fd = OwnedFd::from(self.file);
        let map = map_read_only(&fd, len, libc::MAP_SHARED)?;
        Ok(Input { inner: Inner::Sealed { fd, map, len } })
    }

    /// See the Linux version.
    #[cfg(not(target_os = "linux"))]
    pub fn finish(self) -> io::Result<Input> {
        Ok(Input { inner: Inner::Heap(self.buf) })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_sealed_input_reads_back_and_cannot_be_changed_or_unsealed() {
        let mut w = Input::writer().unwrap();
        w.write(b"hello ").unwrap();
        w.write(b"world").unwrap();
        assert_eq!(w.len(), 11);
        let input = w.finish().unwrap();
        assert_eq!(input.bytes(), b"hello world");
        let fd = input.fd().unwrap().as_raw_fd();
        // SAFETY: fcntl/pwrite/ftruncate on a descriptor the input holds open.
        unsafe {
            assert_eq!(libc::pwrite(fd, b"X".as_ptr().cast(), 1, 0), -1, "a write must be refused");
            assert_eq!(libc::ftruncate(fd, 1), -1, "shrinking must be refused");
            assert_eq!(libc::ftruncate(fd, 100), -1, "growing must be refused");
            assert_eq!(libc::fcntl(fd, libc::F_ADD_SEALS, 0), -1, "the seals themselves are sealed");
            let writable = libc::mmap(std::ptr::null_mut(), 11, libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
            assert_eq!(writable, libc::MAP_FAILED, "a writable shared mapping must be refused");
        }
        assert_eq!(input.bytes(), b"hello world");
    }

    #[test]
    fn a_received_descriptor_maps_the_same_bytes_and_clear_starts_over() {
        let mut w = Input::writer().unwrap();
        w.write(b"first attempt, cut off").unwrap();
        w.clear().unwrap();
        assert!(w.is_empty());
        w.write(b"second").unwrap();
        let input = w.finish().unwrap();
        let dup = input.fd().unwrap().try_clone_to_owned().unwrap();
        let child = Input::from_received(dup).unwrap();
        assert_eq!(child.bytes(), b"second");
        let empty = Input::writer().unwrap().finish().unwrap();
        assert!(empty.bytes().is_empty());
        assert_eq!(Input::copy_of(b"abc").unwrap().bytes(), b"abc");
    }
}
