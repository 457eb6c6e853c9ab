//! Length-prefixed frames on the child's pipes: a little-endian `u64` length, then the bytes.

use std::io::{self, Read, Write};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Asks for a 1 MiB pipe buffer (Linux's unprivileged maximum by default) instead of 64 KiB, so
/// megabytes of input and output cross in fewer context switches. Best effort.
pub(crate) fn widen_pipe(fd: std::os::fd::RawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a descriptor the caller owns, with an integer argument.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Largest request header (settings and ids; the input travels in its own frame).
pub(crate) const MAX_HEADER: u64 = 1 << 20;

pub(crate) fn write_sync(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)
}

/// Reads one frame of at most `max` bytes.
pub(crate) fn read_sync(r: &mut impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes, limit {max}")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

pub(crate) async fn read_async(r: &mut (impl AsyncReadExt + Unpin), max: u64) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len).await?;
    let len = u64::from_le_bytes(len);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes, limit {max}")));
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(len as usize).map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e.to_string()))?;
    buf.resize(len as usize, 0);
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Sends one frame on a Unix socket with `fd` attached to its first byte (`SCM_RIGHTS`): how the
/// worker hands a child its request and the sealed input together.
#[cfg(target_os = "linux")]
pub(crate) async fn write_with_fd(
    w: &mut tokio::net::UnixStream,
    bytes: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = (bytes.len() as u64).to_le_bytes();
    let sent = loop {
        w.writable().await?;
        match w.try_io(tokio::io::Interest::WRITABLE, || send_fd(w.as_raw_fd(), &len, fd.as_raw_fd())) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    w.write_all(&len[sent..]).await?;
    w.write_all(bytes).await
}

/// One `sendmsg` of (the start of) `data` with `fd` as ancillary data; the bytes it sent.
#[cfg(target_os = "linux")]
fn send_fd(sock: std::os::fd::RawFd, data: &[u8], fd: std::os::fd::RawFd) -> io::Result<usize> {
    const SPACE: usize = 64;
    // SAFETY: CMSG_SPACE of one descriptor is far below SPACE; every pointer handed to sendmsg
    // points into live locals for the duration of the call.
    unsafe {
        let mut control = [0u8; SPACE];
        let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
        let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// Reads one frame of at most `max` bytes from the (blocking) Unix socket `sock`, with the
/// descriptor [`write_with_fd`] attached to it. `UnexpectedEof` when the socket closed first.
#[cfg(target_os = "linux")]
pub(crate) fn read_with_fd(sock: std::os::fd::RawFd, max: u64) -> io::Result<(Vec<u8>, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    const SPACE: usize = 64;
    let mut len = [0u8; 8];
    let mut received: Option<std::os::fd::OwnedFd> = None;
    let mut got = 0;
    while got < len.len() {
        // SAFETY: as in `send_fd`: pointers into live locals; the descriptors the kernel writes
        // into `control` are taken over (and so closed) below.
        let n = unsafe {
            let mut control = [0u8; SPACE];
            let mut iov = libc::iovec { iov_base: len[got..].as_mut_ptr().cast(), iov_len: len.len() - got };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = SPACE as _;
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let count = ((*cmsg).cmsg_len as usize - (data as usize - cmsg as usize))
                        / std::mem::size_of::<libc::c_int>();
                    for i in 0..count {
                        let fd = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
                        if received.is_none() {
                            received = Some(owned);
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            n as usize
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the socket closed before a request"));
        }
        got += n;
    }
    let len = u64::from_le_bytes(len);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes, limit {max}")));
    }
    let Some(fd) = received else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a request without its input's descriptor"));
    };
    let mut buf = vec![0u8; len as usize];
    // SAFETY: the socket stays open for the whole read; ManuallyDrop keeps the File from closing it.
    let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(sock) });
    io::Read::read_exact(&mut *file, &mut buf)?;
    Ok((buf, fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused() {
        let mut buf = Vec::new();
        write_sync(&mut buf, b"hello").unwrap();
        write_sync(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(read_sync(&mut r, 5).unwrap(), b"hello");
        assert_eq!(read_sync(&mut r, 5).unwrap(), b"");
        let mut r = &buf[..];
        assert_eq!(read_sync(&mut r, 4).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut short = &buf[..10];
        assert_eq!(read_sync(&mut short, 5).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_frame_carries_its_descriptor_across_a_socket() {
        use std::os::fd::{AsFd, AsRawFd};
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut a = tokio::net::UnixStream::from_std(a).unwrap();
        let input = crate::Input::copy_of(b"the input").unwrap();
        let header = vec![7u8; 300_000];
        let reader = std::thread::spawn(move || {
            let (got, fd) = read_with_fd(b.as_raw_fd(), 1 << 20).unwrap();
            let eof = read_with_fd(b.as_raw_fd(), 1 << 20).unwrap_err().kind();
            (got, crate::Input::from_received(fd).unwrap().bytes().to_vec(), eof)
        });
        write_with_fd(&mut a, &header, input.fd().unwrap().as_fd()).await.unwrap();
        drop(a);
        let (got, bytes, eof) = reader.join().unwrap();
        assert_eq!(got, header);
        assert_eq!(bytes, b"the input");
        assert_eq!(eof, io::ErrorKind::UnexpectedEof);
    }
}
