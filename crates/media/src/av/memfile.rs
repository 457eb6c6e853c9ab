//! The MP4 is muxed into memory, not a file: a sandbox child may not open any path. FFmpeg's
//! fast-start rewrite re-opens the output by name to read it back while it shifts the media
//! data up; [`MemFile`] answers that through the format context's `io_open`/`io_close2`
//! callbacks with a second reader over the same bytes, exactly as a second descriptor on the
//! same file would see them.

use std::ffi::{c_char, c_int};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use ffmpeg::ffi;
use ffmpeg::format::context::{Output, StreamIo};
use ffmpeg_next as ffmpeg;

use crate::MediaError;

/// The bytes of the file being written.
type Bytes = Arc<Mutex<Vec<u8>>>;

fn lock(b: &Bytes) -> MutexGuard<'_, Vec<u8>> {
    b.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A position in the shared bytes: writes overwrite or extend them, reads see what has been
/// written (FFmpeg flushes its write buffer before it seeks, as it must for a real file).
struct Cursor {
    bytes: Bytes,
    pos: u64,
}

impl Write for Cursor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut v = lock(&self.bytes);
        let start = usize::try_from(self.pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let end = start.checked_add(data.len()).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if end > v.len() {
            v.resize(end, 0);
        }
        v[start..end].copy_from_slice(data);
        self.pos = end as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Cursor {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let v = lock(&self.bytes);
        let start = usize::try_from(self.pos).unwrap_or(usize::MAX).min(v.len());
        let n = out.len().min(v.len() - start);
        out[..n].copy_from_slice(&v[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = lock(&self.bytes).len() as i128;
        let pos = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => len + d as i128,
        };
        self.pos = u64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// What the callbacks reach through the format context's `opaque`: the bytes, and the readers
/// they opened (each freed by `io_close2`, or with this at the latest).
struct State {
    bytes: Bytes,
    readers: Mutex<Vec<StreamIo>>,
}

/// The in-memory output file of one MP4 mux; keep it alive as long as the [`Output`] it made.
pub(crate) struct MemFile {
    state: Box<State>,
}

impl MemFile {
    /// An MP4 output context writing into memory.
    pub(crate) fn mp4() -> Result<(Output, MemFile), MediaError> {
        let state = Box::new(State { bytes: Bytes::default(), readers: Mutex::new(Vec::new()) });
        let io = StreamIo::from_write_seek(Cursor { bytes: state.bytes.clone(), pos: 0 })
            .map_err(|e| MediaError::internal(format!("FFmpeg output I/O: {e}")))?;
        // The name is never opened: `io_open` below serves every open the muxer asks for.
        let mut octx = ffmpeg::format::output_to_stream(io, Some("memory.mp4"), Some("mp4"))
            .map_err(|e| MediaError::internal(format!("MP4 muxer: {e}")))?;
        // SAFETY: `octx` owns a live AVFormatContext. `opaque` is ours to set (libavformat never
        // reads it) and points at `state`, which the returned MemFile keeps at a fixed heap
        // address for as long as the caller keeps the pair; the callbacks match libavformat's
        // `io_open`/`io_close2` signatures.
        unsafe {
            let s = octx.as_mut_ptr();
            (*s).opaque = (&*state as *const State).cast_mut().cast();
            (*s).io_open = Some(io_open);
            (*s).io_close2 = Some(io_close2);
        }
        Ok((octx, MemFile { state }))
    }

    /// The bytes written, once the output context is gone.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.state.readers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        std::mem::take(&mut *lock(&self.state.bytes))
    }
}

/// libavformat's `io_open`: a reader over the bytes written so far (fast start reads its own
/// output back); anything else, such as a second file to write, is refused.
///
/// # Safety
/// Only for libavformat to call, on the context MemFile::mp4 set up: `s` is live and its
/// `opaque` points at that MemFile's State, which is still alive; `pb` is writable.
unsafe extern "C" fn io_open(
    s: *mut ffi::AVFormatContext,
    pb: *mut *mut ffi::AVIOContext,
    _url: *const c_char,
    flags: c_int,
    _options: *mut *mut ffi::AVDictionary,
) -> c_int {
    if flags & ffi::AVIO_FLAG_WRITE as c_int != 0 {
        return ffi::AVERROR(libc::EPERM);
    }
    // SAFETY: libavformat calls this with the context whose `opaque` MemFile::mp4 set to a live
    // State, and a valid place to store the new context.
    let state = unsafe { &*((*s).opaque as *const State) };
    let Ok(mut io) = StreamIo::from_read_seek(Cursor { bytes: state.bytes.clone(), pos: 0 }) else {
        return ffi::AVERROR(libc::ENOMEM);
    };
    // SAFETY: see above; the StreamIo (and so the AVIOContext) lives in `readers` until closed.
    unsafe { *pb = io.as_mut_ptr() };
    state.readers.lock().unwrap_or_else(|p| p.into_inner()).push(io);
    0
}

/// libavformat's `io_close2`: frees a reader `io_open` made.
///
/// # Safety
/// As for [`io_open`]: `s` is the live context MemFile::mp4 set up, its State still alive.
unsafe extern "C" fn io_close2(s: *mut ffi::AVFormatContext, pb: *mut ffi::AVIOContext) -> c_int {
    // SAFETY: as in `io_open`.
    let state = unsafe { &*((*s).opaque as *const State) };
    let mut readers = state.readers.lock().unwrap_or_else(|p| p.into_inner());
    readers.retain_mut(|r| r.as_mut_ptr() != pb);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_writes_reads_and_seeks_like_a_file() {
        let bytes = Bytes::default();
        let mut w = Cursor { bytes: bytes.clone(), pos: 0 };
        let mut r = Cursor { bytes: bytes.clone(), pos: 0 };
        w.write_all(b"hello world").unwrap();
        w.seek(SeekFrom::Start(6)).unwrap();
        w.write_all(b"WORLD!").unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello WORLD!");
        // Past the end: the gap reads as zeros, as a sparse file does.
        w.seek(SeekFrom::End(2)).unwrap();
        w.write_all(b"x").unwrap();
        assert_eq!(&lock(&bytes)[12..], b"\0\0x");
        assert!(w.seek(SeekFrom::Current(-100)).is_err());
    }
}
