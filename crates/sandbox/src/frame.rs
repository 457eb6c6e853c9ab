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

pub(crate) async fn write_async(w: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8]) -> io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes()).await?;
    w.write_all(bytes).await
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
}
