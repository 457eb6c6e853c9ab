//! Every direct FFmpeg call of this crate that `ffmpeg-next` does not make safe, each behind a
//! safe function whose argument types carry what makes the call sound, and each `unsafe` block
//! with a `// SAFETY:` comment saying why.
//!
//! The rest of `media` cannot hold `unsafe` code: the crate denies the `unsafe_code` lint and
//! allows it only here, in [`super::memfile`] (FFmpeg's custom-I/O callbacks for the in-memory
//! MP4), in `versions` (the C libraries' static version strings) and for one CPU-feature switch
//! in `raster`. Most functions here are a plain field read or write on a struct a safe wrapper
//! owns, which `ffmpeg-next` has no setter or getter for.

use std::ffi::{CStr, CString};
use std::io::Cursor;

use ffmpeg::ffi;
use ffmpeg::format::context::{Input, StreamIo};
use ffmpeg::packet::{Mut as _, Ref as _};
use ffmpeg_next as ffmpeg;

pub(crate) use ffi::{AVClassCategory, AVCodecParameters};

// ---------------------------------------------------------------------------------------------
// Process-wide settings and the log callback.

/// Sets FFmpeg's log level to warnings, routes its log lines to `record`, and caps any single
/// FFmpeg allocation at `max_alloc` bytes. Call once per process (`av::init` does, under a
/// `Once`), before FFmpeg work starts on other threads.
pub(super) fn configure_process(max_alloc: usize, record: Record) {
    // A second call would only set the same values again; `RECORD` keeps the first.
    let _ = RECORD.set(record);
    // SAFETY: process-wide settings: an integer level, a callback of the signature
    // av_log_set_callback takes (see `install_log_callback`), an integer cap. None has a
    // precondition beyond being made before other threads log, which the caller ensures.
    unsafe {
        ffi::av_log_set_level(ffi::AV_LOG_WARNING);
        install_log_callback();
        ffi::av_max_alloc(max_alloc);
    }
}

/// Where log records go: level, the logging context's `item_name`, its category, the line.
pub(super) type Record = fn(i32, String, AVClassCategory, String);

static RECORD: std::sync::OnceLock<Record> = std::sync::OnceLock::new();

fn forward(level: i32, source: String, category: AVClassCategory, text: String) {
    if let Some(record) = RECORD.get() {
        record(level, source, category, text);
    }
}

/// Routes FFmpeg's log to [`log_callback`].
///
/// # Safety
/// Call once, from `configure_process`, before FFmpeg logs from other threads.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe fn install_log_callback() {
    // SAFETY: `log_callback` has exactly the signature av_log_set_callback takes on this target.
    unsafe { ffi::av_log_set_callback(Some(log_callback)) };
}

/// Elsewhere the `va_list` argument has another type in the bindings (a structure on aarch64,
/// passed by reference by the C ABI as a pointer is). The callback never reads it there: it
/// records each line's level and context (all that decides damage) and the raw format string.
///
/// # Safety
/// As the x86_64 version.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe fn install_log_callback() {
    let f: unsafe extern "C" fn(
        *mut std::ffi::c_void,
        std::ffi::c_int,
        *const std::ffi::c_char,
        *mut std::ffi::c_void,
    ) = log_callback_plain;
    // SAFETY: the callback's fourth argument is a pointer-sized value it never touches; on the
    // supported targets (x86_64 is handled above, aarch64 passes its 32-byte va_list by
    // reference) a pointer parameter receives it unchanged, so the two signatures are
    // call-compatible.
    unsafe { ffi::av_log_set_callback(Some(std::mem::transmute(f))) };
}

/// FFmpeg's log callback where the va_list is not read.
///
/// # Safety
/// Called by FFmpeg only: `avcl` is null or a logging context, `fmt` null or a C string.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
unsafe extern "C" fn log_callback_plain(
    avcl: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    _vl: *mut std::ffi::c_void,
) {
    // SAFETY: FFmpeg passes its logging context (or null) and a NUL-terminated static format.
    let (text, (source, category)) = unsafe {
        if level > ffi::av_log_get_level() || fmt.is_null() {
            return;
        }
        (CStr::from_ptr(fmt).to_string_lossy().trim().to_string(), log_context(avcl))
    };
    forward(level, source, category, text);
}

/// FFmpeg's log callback.
///
/// # Safety
/// Called by FFmpeg only, with its logging context (or null), a C format string and the
/// matching va_list.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe extern "C" fn log_callback(
    avcl: *mut std::ffi::c_void,
    level: std::ffi::c_int,
    fmt: *const std::ffi::c_char,
    vl: *mut ffi::__va_list_tag,
) {
    // SAFETY: FFmpeg calls this with its logging context (or null), a NUL-terminated format and
    // the matching va_list, which av_log_format_line2 consumes once into our buffer; the buffer
    // is NUL-terminated by it whatever the length.
    let (text, (source, category)) = unsafe {
        if level > ffi::av_log_get_level() || fmt.is_null() {
            return;
        }
        let mut buf = [0 as std::ffi::c_char; 1024];
        let mut print_prefix: std::ffi::c_int = 0;
        let n = ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as std::ffi::c_int,
            &mut print_prefix,
        );
        if n < 0 {
            return;
        }
        (CStr::from_ptr(buf.as_ptr()).to_string_lossy().trim().to_string(), log_context(avcl))
    };
    forward(level, source, category, text);
}

/// The logging object's `item_name` ("mov,mp4,m4a,3gp,3g2,mj2", "h264", …) and category.
///
/// # Safety
/// `avcl` is null or points to a struct whose first member is a pointer to an `AVClass`, as
/// every object FFmpeg logs with is.
unsafe fn log_context(avcl: *mut std::ffi::c_void) -> (String, AVClassCategory) {
    let none = (String::new(), AVClassCategory::AV_CLASS_CATEGORY_NA);
    if avcl.is_null() {
        return none;
    }
    // SAFETY: by this function's contract; the class's callbacks take the object they describe.
    unsafe {
        let class = *(avcl as *const *const ffi::AVClass);
        if class.is_null() {
            return none;
        }
        let name = match (*class).item_name {
            Some(f) => f(avcl),
            None => (*class).class_name,
        };
        let category = match (*class).get_category {
            Some(f) => f(avcl),
            None => (*class).category,
        };
        let name = if name.is_null() { String::new() } else { CStr::from_ptr(name).to_string_lossy().into_owned() };
        (name, category)
    }
}

// ---------------------------------------------------------------------------------------------
// Opening an input from memory.

/// The bytes FFmpeg's custom I/O reads, by address: [`open_input`] ties the [`OpenInput`] that
/// reads them to the slice they belong to, so they outlive every read.
struct RawBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a read-only view of bytes nobody writes while an `OpenInput` reads them.
unsafe impl Send for RawBytes {}

impl AsRef<[u8]> for RawBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr`/`len` come from a live slice that outlives the `OpenInput` owning this
        // (its lifetime parameter), and the bytes are never written meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// An open FFmpeg input reading bytes it borrows: it cannot outlive them (`'a`), so the input
/// is read in place, never copied (a 200 MiB video stays one mapping in the sandbox child).
pub(crate) struct OpenInput<'a> {
    input: Input,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

impl std::ops::Deref for OpenInput<'_> {
    type Target = Input;
    fn deref(&self) -> &Input {
        &self.input
    }
}

impl std::ops::DerefMut for OpenInput<'_> {
    fn deref_mut(&mut self) -> &mut Input {
        &mut self.input
    }
}

/// Why [`open_input`] failed.
pub(super) enum OpenFailure {
    /// Before FFmpeg was asked: the message says what is missing.
    Setup(String),
    /// `avformat_open_input` or `avformat_find_stream_info` refused the input.
    Refused(ffmpeg::Error),
}

/// Opens `bytes` with the demuxer `demuxer`, the demuxer options `options`, and `interrupt` as
/// the input's interrupt callback (polled by FFmpeg while it reads); with `find_stream_info`,
/// also reads the streams' parameters (which decodes a few frames).
pub(super) fn open_input<'a>(
    bytes: &'a [u8],
    demuxer: &str,
    options: ffmpeg::Dictionary,
    interrupt: ffmpeg::util::interrupt::Interrupt,
    find_stream_info: bool,
) -> Result<OpenInput<'a>, OpenFailure> {
    let cname = CString::new(demuxer).map_err(|_| OpenFailure::Setup("demuxer name".into()))?;
    let raw = RawBytes { ptr: bytes.as_ptr(), len: bytes.len() };
    let mut io = StreamIo::from_read_seek_with_capacity(Cursor::new(raw), 64 * 1024)
        .map_err(|e| OpenFailure::Setup(format!("FFmpeg custom I/O: {e}")))?;
    // SAFETY: `cname` is a live C string; the context is allocated here and checked for null;
    // `pb` is `io`'s AVIOContext, which the returned Input keeps alive (custom-I/O flag set so
    // FFmpeg never frees it); `opts` is disowned to FFmpeg and taken back after the call;
    // avformat_open_input frees the context itself on failure, and on a later failure we close
    // it once, here. The bytes `io` reads outlive the returned value (`'a`).
    unsafe {
        let format = ffi::av_find_input_format(cname.as_ptr());
        if format.is_null() {
            return Err(OpenFailure::Setup(format!("this FFmpeg build has no {demuxer} demuxer")));
        }
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(OpenFailure::Setup("out of memory allocating a format context".into()));
        }
        (*ps).interrupt_callback = interrupt.interrupt;
        (*ps).pb = io.as_mut_ptr();
        (*ps).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as std::ffi::c_int;
        let mut opts = options.disown();
        let r = ffi::avformat_open_input(&mut ps, std::ptr::null(), format, &mut opts);
        ffmpeg::Dictionary::own(opts);
        if r < 0 {
            // FFmpeg freed the context; `io` (not owned by it) is dropped here.
            return Err(OpenFailure::Refused(ffmpeg::Error::from(r)));
        }
        let r = if find_stream_info { ffi::avformat_find_stream_info(ps, std::ptr::null_mut()) } else { 0 };
        if r < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(OpenFailure::Refused(ffmpeg::Error::from(r)));
        }
        let input = Input::wrap_with_custom_io_and_interrupt(ps, io, interrupt.guard);
        Ok(OpenInput { input, _bytes: std::marker::PhantomData })
    }
}

/// Reads the container's next packet into `packet`, letting go of the one it held first.
/// `Packet::read` (`av_read_frame`) overwrites a packet without unreferencing it, so reusing one
/// packet across reads leaked every packet's payload until the process ended: a 60 s 1080p clip
/// held its whole video twice over (the scan pass and the decode pass) on top of its input.
pub(crate) fn read_packet(input: &mut Input, packet: &mut ffmpeg::Packet) -> Result<(), ffmpeg::Error> {
    // SAFETY: unreferences the packet's own buffer (a no-op on an empty packet); the packet stays
    // a valid, blank AVPacket for av_read_frame to fill.
    unsafe { ffi::av_packet_unref(ffmpeg::packet::Mut::as_mut_ptr(packet)) };
    packet.read(input)
}

// ---------------------------------------------------------------------------------------------
// Reading fields `ffmpeg-next` has no getter for.

/// A read-only view of the AVCodecParameters `par` wraps (its own, or a stream's, whose context
/// it keeps alive), for fields `ffmpeg-next` does not expose.
pub(crate) fn codec_parameters(par: &ffmpeg::codec::Parameters) -> &AVCodecParameters {
    // SAFETY: `par` wraps a live, non-null AVCodecParameters; the shared reference is tied to
    // `&par`, through which nothing can write the parameters while it lives.
    unsafe { &*par.as_ptr() }
}

/// The codec parameters' extradata (empty when there is none).
pub(crate) fn extradata(p: &AVCodecParameters) -> &[u8] {
    if p.extradata.is_null() || p.extradata_size <= 0 {
        return &[];
    }
    // SAFETY: FFmpeg keeps `extradata_size` bytes at `extradata` while the parameters live,
    // which the borrow of `p` covers.
    unsafe { std::slice::from_raw_parts(p.extradata, p.extradata_size as usize) }
}

/// The stream's own (container-level) sample aspect ratio: MP4's `pasp`, Matroska's display size.
pub(crate) fn stream_sample_aspect_ratio(st: &ffmpeg::Stream) -> ffmpeg::Rational {
    // SAFETY: `st` wraps a live AVStream of a live format context; a plain field read.
    unsafe { (*st.as_ptr()).sample_aspect_ratio }.into()
}

/// The stream's display matrix side data, when it has one.
pub(crate) fn display_matrix(st: &ffmpeg::Stream) -> Option<[i32; 9]> {
    // SAFETY: av_stream_get_side_data returns a pointer into the live stream's own side data
    // (or null) and its size; nine i32 are read only when the size says they are there.
    unsafe {
        let mut size: usize = 0;
        let p =
            ffi::av_stream_get_side_data(st.as_ptr(), ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX, &mut size);
        if p.is_null() || size < 9 * 4 {
            return None;
        }
        let mut m = [0i32; 9];
        std::ptr::copy_nonoverlapping(p as *const u8, m.as_mut_ptr() as *mut u8, 36);
        Some(m)
    }
}

/// The rotation a display matrix describes, in degrees counter-clockwise (`av_display_rotation_get`).
pub(crate) fn display_rotation(m: &[i32; 9]) -> f64 {
    // SAFETY: `m` is a live array of the nine i32 the function reads.
    unsafe { ffi::av_display_rotation_get(m.as_ptr()) }
}

/// The display matrix of a rotation by `deg` degrees (`av_display_rotation_set`), for tests.
#[cfg(test)]
pub(crate) fn display_matrix_for(deg: f64) -> [i32; 9] {
    let mut m = [0i32; 9];
    // SAFETY: `m` is a live array of the nine i32 the function writes.
    unsafe { ffi::av_display_rotation_set(m.as_mut_ptr(), deg) };
    m
}

/// A decoded frame's `decode_error_flags` and `flags`.
pub(crate) fn frame_error_flags(frame: &ffmpeg::Frame) -> (i32, i32) {
    // SAFETY: `frame` owns a live AVFrame; two plain field reads.
    unsafe { ((*frame.as_ptr()).decode_error_flags, (*frame.as_ptr()).flags) }
}

/// A packet's `flags` and byte position in the file (-1: unknown).
pub(crate) fn packet_flags_and_pos(packet: &ffmpeg::Packet) -> (i32, i64) {
    // SAFETY: `packet.as_ptr()` points at the AVPacket stored inline in `packet`; two plain field
    // reads while `packet` is borrowed.
    unsafe { ((*packet.as_ptr()).flags, (*packet.as_ptr()).pos) }
}

/// The reorder depth an opened decoder found it needs (`has_b_frames`).
pub(crate) fn reorder_depth(dec: &ffmpeg::codec::decoder::Video) -> i32 {
    // SAFETY: `dec` owns the live, opened AVCodecContext; a plain field read between decode calls
    // (frame threads write their own copies, merged into it only inside those calls).
    unsafe { (*dec.as_ptr()).has_b_frames }
}

// ---------------------------------------------------------------------------------------------
// Settings `ffmpeg-next` has no setter for, made before the object is opened.

/// Sets the AVOptions string option `key` of a codec context (before it is opened).
pub(crate) fn set_codec_option(
    ctx: &mut ffmpeg::codec::context::Context,
    key: &CStr,
    value: &CStr,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: `ctx` owns a live AVCodecContext, an AVOptions-enabled struct; both strings are
    // live C strings and av_opt_set copies the value (the context frees its copy).
    let r = unsafe { ffi::av_opt_set(ctx.as_mut_ptr().cast(), key.as_ptr(), value.as_ptr(), 0) };
    if r < 0 {
        return Err(ffmpeg::Error::from(r));
    }
    Ok(())
}

/// Decoder settings made before `avcodec_open2`: the packets' time base, and optionally frame and
/// slice threading with `threads` threads and the `err_recognition` flags.
pub(crate) fn set_decoder_fields(
    ctx: &mut ffmpeg::codec::context::Context,
    pkt_timebase: ffmpeg::Rational,
    threads: Option<usize>,
    err_recognition: Option<i32>,
) {
    // SAFETY: `ctx` owns a live AVCodecContext; plain field writes, which the caller makes before
    // opening it (avcodec_open2 reads them then; on an opened context they are ignored).
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).pkt_timebase = pkt_timebase.into();
        if let Some(n) = threads {
            (*c).thread_count = n as std::ffi::c_int;
            (*c).thread_type = (ffi::FF_THREAD_FRAME | ffi::FF_THREAD_SLICE) as std::ffi::c_int;
        }
        if let Some(flags) = err_recognition {
            (*c).err_recognition = flags;
        }
    }
}

/// `err_recognition` flags that fail a decode on any error FFmpeg can detect: `crccheck`,
/// `bitstream`, `buffer` and `explode`.
pub(crate) const STRICT_ERRORS: i32 =
    ffi::AV_EF_CRCCHECK | ffi::AV_EF_BITSTREAM | ffi::AV_EF_BUFFER | ffi::AV_EF_EXPLODE;

/// Tags an encoder's output as BT.709 primaries and transfer (`ffmpeg-next` sets only the matrix
/// and the range); before it is opened.
pub(crate) fn set_bt709_primaries_and_transfer(enc: &mut ffmpeg::codec::context::Context) {
    // SAFETY: `enc` owns a live AVCodecContext; plain enum field writes, which the caller makes
    // before avcodec_open2 reads them.
    unsafe {
        let c = enc.as_mut_ptr();
        (*c).color_primaries = ffi::AVColorPrimaries::AVCOL_PRI_BT709;
        (*c).color_trc = ffi::AVColorTransferCharacteristic::AVCOL_TRC_BT709;
    }
}

/// Asks a muxer for bit-exact output (no encoder version strings, nothing that varies run to
/// run); before its header is written.
pub(crate) fn set_bitexact(octx: &mut ffmpeg::format::context::Output) {
    // SAFETY: `octx` owns a live AVFormatContext; setting a bit of its `flags` is a plain field
    // write, which the caller makes before write_header reads it.
    unsafe {
        (*octx.as_mut_ptr()).flags |= ffi::AVFMT_FLAG_BITEXACT as std::ffi::c_int;
    }
}

/// Runs a filter graph's filters on the calling thread only (outputs must not depend on thread
/// scheduling); before it is configured.
pub(crate) fn set_single_threaded(graph: &mut ffmpeg::filter::Graph) {
    // SAFETY: `graph` owns a live AVFilterGraph not shared yet; a plain field write.
    unsafe {
        (*graph.as_mut_ptr()).nb_threads = 1;
    }
}

/// Gives an output stream a deep copy of `par` and no codec tag (the muxer picks its own).
pub(crate) fn copy_parameters_to_stream(
    ost: &mut ffmpeg::format::stream::StreamMut,
    par: &AVCodecParameters,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: `ost` is a stream of a live output context, and its `codecpar` was allocated with
    // it (never null). `par` is live for the call (a reference); the copy is deep (extradata
    // included), so nothing of `par` is retained. The tag write is a plain field.
    unsafe {
        let out = (*ost.as_mut_ptr()).codecpar;
        let r = ffi::avcodec_parameters_copy(out, par);
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
        (*out).codec_tag = 0;
    }
    Ok(())
}

/// Colour conversion of a scaler: the source's matrix (`SWS_CS_*` of its colour space) and range,
/// to full-range output with the default matrix.
pub(crate) fn set_scaler_colorspace(
    sws: &mut ffmpeg::software::scaling::Context,
    source: ffmpeg::color::Space,
    source_full_range: bool,
) {
    let cs = match source {
        ffmpeg::color::Space::BT709 => ffi::SWS_CS_ITU709,
        ffmpeg::color::Space::BT2020NCL | ffmpeg::color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        ffmpeg::color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        ffmpeg::color::Space::FCC => ffi::SWS_CS_FCC,
        _ => ffi::SWS_CS_DEFAULT,
    } as std::ffi::c_int;
    // SAFETY: `sws` owns a live SwsContext (Context::get fails rather than return null).
    // sws_getCoefficients returns a pointer to a static 4-int table for any colour space
    // (unknown values fall back to the default); sws_setColorspaceDetails copies both tables.
    unsafe {
        ffi::sws_setColorspaceDetails(
            sws.as_mut_ptr(),
            ffi::sws_getCoefficients(cs),
            i32::from(source_full_range),
            ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT as std::ffi::c_int),
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bitstream filters (`ffmpeg-next` has no wrapper).

/// A bitstream filter (`av_bsf_*`) this value owns.
pub(crate) struct BitstreamFilter {
    ctx: *mut ffi::AVBSFContext,
}

// SAFETY: the AVBSFContext is owned by this value alone (no Clone; `parameters` hands out only a
// reference tied to `&self`) and is not tied to the thread that made it; `&mut self` serialises
// its use, and the raw pointer field keeps the type !Sync.
unsafe impl Send for BitstreamFilter {}

/// What failed while setting a [`BitstreamFilter`] up, and FFmpeg's code.
pub(crate) type SetupFailure = (&'static str, ffmpeg::Error);

impl BitstreamFilter {
    /// The filter `name` with one private option set, for packets of `par` in `time_base`.
    /// `Ok(None)`: this FFmpeg has no such filter.
    pub(crate) fn new(
        name: &CStr,
        (key, value): (&CStr, &CStr),
        par: &ffmpeg::codec::Parameters,
        time_base: ffmpeg::Rational,
    ) -> Result<Option<BitstreamFilter>, SetupFailure> {
        let fail = |what: &'static str, r: std::ffi::c_int| (what, ffmpeg::Error::from(r));
        // SAFETY: av_bsf_get_by_name reads a live C string and returns a static filter or null
        // (checked); av_bsf_alloc sets `ctx` only on success, after which `this` frees it on any
        // return. A filter with options has a priv_class, so `priv_data` is the AVClass-led struct
        // av_opt_set needs (a filter without one refuses the option: an error, not UB); `par_in`
        // comes with the context and avcodec_parameters_copy deep-copies `par` (live for the call)
        // into it; all before av_bsf_init, as FFmpeg requires.
        unsafe {
            let filter = ffi::av_bsf_get_by_name(name.as_ptr());
            if filter.is_null() {
                return Ok(None);
            }
            let mut ctx = std::ptr::null_mut();
            let r = ffi::av_bsf_alloc(filter, &mut ctx);
            if r < 0 {
                return Err(fail("allocating the filter", r));
            }
            let this = BitstreamFilter { ctx };
            if (*ctx).priv_data.is_null() {
                return Err(("the filter's options", ffmpeg::Error::OptionNotFound));
            }
            let r = ffi::av_opt_set((*ctx).priv_data, key.as_ptr(), value.as_ptr(), 0);
            if r < 0 {
                return Err(fail("the filter's option", r));
            }
            let r = ffi::avcodec_parameters_copy((*ctx).par_in, par.as_ptr());
            if r < 0 {
                return Err(fail("the filter's parameters", r));
            }
            (*ctx).time_base_in = time_base.into();
            let r = ffi::av_bsf_init(ctx);
            if r < 0 {
                return Err(fail("initialising the filter", r));
            }
            Ok(Some(this))
        }
    }

    /// The output's codec parameters.
    pub(crate) fn parameters(&self) -> &AVCodecParameters {
        // SAFETY: `self.ctx` is the live, initialised AVBSFContext this value owns until Drop;
        // its `par_out` was allocated with it and lives as long, which the borrow of `self` covers.
        unsafe { &*(*self.ctx).par_out }
    }

    /// Sends a packet (`None`: the end of the stream).
    pub(crate) fn send(&mut self, packet: Option<&ffmpeg::Packet>) -> Result<(), ffmpeg::Error> {
        // SAFETY: `self.ctx` is the live, initialised AVBSFContext this value owns. Sending takes
        // the reference of `copy` (our clone of `p`) only on success, else `copy`'s Drop frees
        // it; null means end of stream.
        let r = unsafe {
            match packet {
                Some(p) => {
                    let mut copy = p.clone();
                    ffi::av_bsf_send_packet(self.ctx, copy.as_mut_ptr())
                }
                None => ffi::av_bsf_send_packet(self.ctx, std::ptr::null_mut()),
            }
        };
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
        Ok(())
    }

    /// Receives a filtered packet into `out`, replacing what it held (FFmpeg's `EAGAIN`/`EOF`
    /// come as errors, for `av::received`).
    pub(crate) fn receive(&mut self, out: &mut ffmpeg::Packet) -> Result<(), ffmpeg::Error> {
        // SAFETY: `self.ctx` is live. `out` is a packet we own: unreferencing it leaves the blank
        // packet av_bsf_receive_packet requires, which it fills (`out` then owns the reference).
        let r = unsafe {
            ffi::av_packet_unref(out.as_mut_ptr());
            ffi::av_bsf_receive_packet(self.ctx, out.as_mut_ptr())
        };
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
        Ok(())
    }
}

impl Drop for BitstreamFilter {
    fn drop(&mut self) {
        // SAFETY: `self.ctx` came from a successful av_bsf_alloc and is freed only here, once;
        // av_bsf_free also nulls the pointer.
        unsafe { ffi::av_bsf_free(&mut self.ctx) }
    }
}
