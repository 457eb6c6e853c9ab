//! Content sniffing: what a file *is*, decided from its bytes alone.
//!
//! A job's `declared_type` and the object's key are hints a producer controls, so the pipeline
//! never trusts them (contract §2: "the real type is sniffed from the bytes"). Everything here
//! is a bounded walk over the first bytes (and, for ISO-BMFF / Matroska, over box or element
//! headers) — no decoding, no allocation proportional to the input.

/// What kind of media a [`Format`] carries, which decides whether it fits a job's `kind`
/// (images and videos for `media`, audio for `voice_note`) and what `media_type` the verdict shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MediaClass {
    /// A still (or animated, first frame used) picture.
    Image,
    /// Moving pictures, possibly with sound.
    Video,
    /// Sound only.
    Audio,
}

impl MediaClass {
    /// The verdict's `media_type` value (contract §5).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaClass::Image => "image",
            MediaClass::Video => "video",
            MediaClass::Audio => "audio",
        }
    }
}

/// A container/codec family recognised from magic bytes.
///
/// Recognising a format does not mean the pipeline can process it: see
/// [`Format::is_supported_photo`], and the audio/video pipelines for their own lists. Knowing
/// the format of what we refuse lets the rejection message name it ("HEIC photos are not
/// supported") and lets a blocked original be quarantined with the right extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// JPEG / JFIF / Exif (`FF D8 FF`).
    Jpeg,
    /// PNG (including APNG, whose first frame is the default image).
    Png,
    /// GIF 87a/89a.
    Gif,
    /// WebP (RIFF `WEBP`), lossy, lossless or animated.
    Webp,
    /// Windows bitmap (`BM` with a plausible header).
    Bmp,
    /// TIFF, either byte order.
    Tiff,
    /// HEIF with HEVC images (iPhone photos): ISO-BMFF brands `heic`, `heix`, `hevc`, …
    Heic,
    /// HEIF with an unknown or non-HEVC codec (`mif1`/`msf1` without a more specific brand).
    Heif,
    /// AVIF (HEIF with AV1): brands `avif`, `avis`.
    Avif,
    /// JPEG XL, bare codestream or ISO-BMFF container.
    Jxl,
    /// MPEG-4 / ISO-BMFF video (brands `isom`, `mp41`, `mp42`, `avc1`, `M4V `, …).
    Mp4,
    /// QuickTime movie (brand `qt  `), what iPhones record.
    Mov,
    /// 3GPP / 3GPP2 video (brands `3gp*`, `3g2*`).
    ThreeGp,
    /// WebM (Matroska with DocType `webm`) with a video track, or whose tracks could not be seen.
    Webm,
    /// WebM whose `Tracks` element lists audio tracks only.
    WebmAudio,
    /// Matroska (DocType `matroska`) with a video track, or whose tracks could not be seen.
    Mkv,
    /// Matroska whose `Tracks` element lists audio tracks only.
    Mka,
    /// AVI (RIFF `AVI `).
    Avi,
    /// Ogg whose first stream is Theora video.
    Ogv,
    /// Ogg audio (Opus, Vorbis, FLAC, Speex or unknown); see [`ogg_codec`].
    Ogg,
    /// MPEG audio layer III, with an ID3v2 tag or starting on a frame sync.
    Mp3,
    /// ISO-BMFF audio: brands `M4A `/`M4B `/`M4P `, or any non-QuickTime ISO-BMFF file whose
    /// tracks are all sound (Android recorders write audio-only `isom`/`mp42` files).
    M4a,
    /// RIFF/RF64 WAVE.
    Wav,
    /// Native FLAC (`fLaC`).
    Flac,
    /// Raw AAC in ADTS frames.
    Aac,
    /// AMR narrow- or wide-band (`#!AMR`), what old phones and some messengers record.
    Amr,
}

impl Format {
    /// Whether this is a picture, a video or sound — what the job-kind rule checks.
    pub fn media_class(self) -> MediaClass {
        use Format::*;
        match self {
            Jpeg | Png | Gif | Webp | Bmp | Tiff | Heic | Heif | Avif | Jxl => MediaClass::Image,
            Mp4 | Mov | ThreeGp | Webm | Mkv | Avi | Ogv => MediaClass::Video,
            WebmAudio | Mka | Ogg | Mp3 | M4a | Wav | Flac | Aac | Amr => MediaClass::Audio,
        }
    }

    /// File extension (no dot) used for quarantined originals (contract §4).
    pub fn ext(self) -> &'static str {
        use Format::*;
        match self {
            Jpeg => "jpg",
            Png => "png",
            Gif => "gif",
            Webp => "webp",
            Bmp => "bmp",
            Tiff => "tiff",
            Heic => "heic",
            Heif => "heif",
            Avif => "avif",
            Jxl => "jxl",
            Mp4 => "mp4",
            Mov => "mov",
            ThreeGp => "3gp",
            Webm | WebmAudio => "webm",
            Mkv => "mkv",
            Mka => "mka",
            Avi => "avi",
            Ogv => "ogv",
            Ogg => "ogg",
            Mp3 => "mp3",
            M4a => "m4a",
            Wav => "wav",
            Flac => "flac",
            Aac => "aac",
            Amr => "amr",
        }
    }

    /// IANA media type, for storing a quarantined original with a truthful `Content-Type`.
    pub fn mime(self) -> &'static str {
        use Format::*;
        match self {
            Jpeg => "image/jpeg",
            Png => "image/png",
            Gif => "image/gif",
            Webp => "image/webp",
            Bmp => "image/bmp",
            Tiff => "image/tiff",
            Heic => "image/heic",
            Heif => "image/heif",
            Avif => "image/avif",
            Jxl => "image/jxl",
            Mp4 => "video/mp4",
            Mov => "video/quicktime",
            ThreeGp => "video/3gpp",
            Webm => "video/webm",
            WebmAudio => "audio/webm",
            Mkv => "video/x-matroska",
            Mka => "audio/x-matroska",
            Avi => "video/x-msvideo",
            Ogv => "video/ogg",
            Ogg => "audio/ogg",
            Mp3 => "audio/mpeg",
            M4a => "audio/mp4",
            Wav => "audio/wav",
            Flac => "audio/flac",
            Aac => "audio/aac",
            Amr => "audio/amr",
        }
    }

    /// Short human name, for rejection messages a person reads ("HEIC photos are not supported").
    pub fn name(self) -> &'static str {
        use Format::*;
        match self {
            Jpeg => "JPEG",
            Png => "PNG",
            Gif => "GIF",
            Webp => "WebP",
            Bmp => "BMP",
            Tiff => "TIFF",
            Heic => "HEIC",
            Heif => "HEIF",
            Avif => "AVIF",
            Jxl => "JPEG XL",
            Mp4 => "MP4",
            Mov => "QuickTime",
            ThreeGp => "3GP",
            Webm => "WebM",
            WebmAudio => "WebM audio",
            Mkv => "Matroska",
            Mka => "Matroska audio",
            Avi => "AVI",
            Ogv => "Ogg video",
            Ogg => "Ogg",
            Mp3 => "MP3",
            M4a => "M4A",
            Wav => "WAV",
            Flac => "FLAC",
            Aac => "AAC",
            Amr => "AMR",
        }
    }

    /// Whether [`crate::process_photo`] decodes this format.
    ///
    /// JPEG (libjpeg-turbo), PNG, GIF, WebP and BMP (the `image` crate, with limits), HEIC,
    /// HEIF and AVIF (libheif with libde265 and dav1d). TIFF is recognised but refused: it is
    /// rare in messaging, often multi-page or CMYK, and its decoder is a large attack surface for
    /// little value. JPEG XL has no decoder in this build; the worker rejects it as
    /// `input.unsupported_format`.
    pub fn is_supported_photo(self) -> bool {
        matches!(
            self,
            Format::Jpeg
                | Format::Png
                | Format::Gif
                | Format::Webp
                | Format::Bmp
                | Format::Heic
                | Format::Heif
                | Format::Avif
        )
    }

    /// Whether this is one of the HEIF family (HEIC, HEIF, AVIF), decoded by libheif.
    pub fn is_heif(self) -> bool {
        matches!(self, Format::Heic | Format::Heif | Format::Avif)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Sniffs the format from magic bytes only (never from a name or a declared type).
///
/// Returns `None` for anything not recognised; the caller reports that as
/// `input.unsupported_format`.
///
/// Limitation: WebM/Matroska is classed as audio only when its `Tracks` element appears before
/// the first `Cluster` and lists no video track; a file whose tracks cannot be seen that way
/// (unknown-size elements before `Tracks`, truncated header) is reported as video.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let b = bytes;
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if b.len() >= 12 && (&b[..4] == b"RIFF" || &b[..4] == b"RF64" || &b[..4] == b"BW64") {
        return match &b[8..12] {
            b"WEBP" if &b[..4] == b"RIFF" => Some(Format::Webp),
            b"WAVE" => Some(Format::Wav),
            b"AVI " if &b[..4] == b"RIFF" => Some(Format::Avi),
            _ => None,
        };
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return Some(Format::Tiff);
    }
    if is_bmp(b) {
        return Some(Format::Bmp);
    }
    if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some(Format::Jxl);
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return sniff_isobmff(b);
    }
    if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return sniff_ebml(b);
    }
    if b.starts_with(b"OggS") {
        return Some(match ogg_codec(b) {
            Some(OggCodec::Theora) => Format::Ogv,
            _ => Format::Ogg,
        });
    }
    if b.starts_with(b"fLaC") {
        return Some(Format::Flac);
    }
    if b.starts_with(b"#!AMR\n") || b.starts_with(b"#!AMR-WB\n") {
        return Some(Format::Amr);
    }
    if b.starts_with(b"ID3") {
        return Some(sniff_after_id3(b));
    }
    if is_adts(b, 0) {
        return Some(Format::Aac);
    }
    if is_mp3_frame_run(b, 0) {
        return Some(Format::Mp3);
    }
    None
}

/// The codec of an Ogg file's first logical stream, read from its first page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OggCodec {
    /// `OpusHead` — what voice notes should be.
    Opus,
    /// `\x01vorbis`.
    Vorbis,
    /// `\x7fFLAC` (FLAC mapped into Ogg).
    Flac,
    /// `Speex   `.
    Speex,
    /// `\x80theora` — video.
    Theora,
    /// A valid first page whose packet is none of the above.
    Other,
}

/// Reads the codec of the first Ogg page's first packet, so the audio pipeline can decide
/// without a demuxer whether an Ogg file is already Opus. `None` when `bytes` does not start
/// with a complete Ogg page header.
pub fn ogg_codec(bytes: &[u8]) -> Option<OggCodec> {
    if !bytes.starts_with(b"OggS") || bytes.len() < 27 {
        return None;
    }
    let nsegs = bytes[26] as usize;
    let start = 27 + nsegs;
    let packet = bytes.get(start..)?;
    let codec = if packet.starts_with(b"OpusHead") {
        OggCodec::Opus
    } else if packet.starts_with(b"\x01vorbis") {
        OggCodec::Vorbis
    } else if packet.starts_with(b"\x7fFLAC") {
        OggCodec::Flac
    } else if packet.starts_with(b"Speex   ") {
        OggCodec::Speex
    } else if packet.starts_with(b"\x80theora") {
        OggCodec::Theora
    } else {
        OggCodec::Other
    };
    Some(codec)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// `BM` is only two bytes, so also require a known DIB header size and zero reserved fields.
fn is_bmp(b: &[u8]) -> bool {
    if b.len() < 26 || !b.starts_with(b"BM") {
        return false;
    }
    let reserved_zero = b[6..10].iter().all(|&x| x == 0);
    let dib = le32(b, 14).unwrap_or(0);
    reserved_zero && matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// ISO base media file format: decide by the `ftyp` brands, then (for generic brands) by the
/// `hdlr` of each track, so an audio-only `isom` file counts as audio.
fn sniff_isobmff(b: &[u8]) -> Option<Format> {
    let size = be32(b, 0)? as usize;
    let ftyp_end = if size >= 16 { size.min(b.len()) } else { 12.min(b.len()) };
    let major = &b[8..12];
    let mut brands: Vec<&[u8]> = vec![major];
    let mut at = 16;
    while at + 4 <= ftyp_end {
        brands.push(&b[at..at + 4]);
        at += 4;
    }
    let has = |x: &[u8]| brands.contains(&x);

    if has(b"avif") || has(b"avis") {
        return Some(Format::Avif);
    }
    const HEIC: [&[u8]; 8] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"];
    if HEIC.contains(&major) || (matches!(major, b"mif1" | b"msf1") && HEIC.iter().any(|x| has(x))) {
        return Some(Format::Heic);
    }
    if matches!(major, b"mif1" | b"msf1") {
        return Some(Format::Heif);
    }
    if major == b"jxl " {
        return Some(Format::Jxl);
    }
    if major == b"qt  " {
        return Some(Format::Mov);
    }
    if matches!(major, b"M4A " | b"M4B " | b"M4P " | b"F4A " | b"F4B ") {
        return Some(Format::M4a);
    }
    let video = if major.starts_with(b"3gp") || major.starts_with(b"3g2") { Format::ThreeGp } else { Format::Mp4 };
    match track_handlers(b) {
        Some(h) if h.sound && !h.video => Some(Format::M4a),
        _ => Some(video),
    }
}

#[derive(Default)]
struct Handlers {
    video: bool,
    sound: bool,
}

/// Walks `moov/trak/mdia/hdlr` and records which handler types appear.
fn track_handlers(b: &[u8]) -> Option<Handlers> {
    let moov = find_box(b, b"moov")?;
    let mut h = Handlers::default();
    for trak in boxes(moov).filter(|(t, _)| t == b"trak") {
        let Some(mdia) = find_box(trak.1, b"mdia") else { continue };
        let Some(hdlr) = find_box(mdia, b"hdlr") else { continue };
        match hdlr.get(8..12) {
            Some(b"vide") => h.video = true,
            Some(b"soun") => h.sound = true,
            _ => {}
        }
    }
    Some(h)
}

fn find_box<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(b).find(|(t, _)| t == kind).map(|(_, body)| body)
}

/// Iterates `(type, body)` over a sequence of ISO-BMFF boxes, stopping at the first malformed one.
fn boxes(b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let size32 = be32(b, at)?;
        let kind: [u8; 4] = b.get(at + 4..at + 8)?.try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8usize, b.len() - at),
            1 => {
                let hi = be32(b, at + 8)? as u64;
                let lo = be32(b, at + 12)? as u64;
                (16usize, usize::try_from((hi << 32) | lo).ok()?)
            }
            n => (8usize, n as usize),
        };
        if size < header {
            return None;
        }
        let end = at.checked_add(size)?.min(b.len());
        let body = b.get(at + header..end)?;
        at = end;
        Some((kind, body))
    })
}

/// Reads an EBML variable-length integer; returns (value, length). With `keep_marker` the
/// length-marker bit stays in the value (element IDs are written that way).
fn ebml_vint(b: &[u8], at: usize, keep_marker: bool) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    if first == 0 {
        return None;
    }
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut v: u64 = if keep_marker { first as u64 } else { (first as u64) & ((1u64 << (8 - len)) - 1) };
    for i in 1..len {
        v = (v << 8) | *b.get(at + i)? as u64;
    }
    Some((v, len))
}

/// An element header: (id, data start, data size or `None` when the size is "unknown").
fn ebml_element(b: &[u8], at: usize) -> Option<(u64, usize, Option<usize>)> {
    let (id, il) = ebml_vint(b, at, true)?;
    let (size, sl) = ebml_vint(b, at + il, false)?;
    let unknown = size == (1u64 << (7 * sl)) - 1;
    let size = if unknown { None } else { usize::try_from(size).ok() };
    Some((id, at + il + sl, size))
}

const EBML_DOCTYPE: u64 = 0x4282;
const MKV_SEGMENT: u64 = 0x1853_8067;
const MKV_TRACKS: u64 = 0x1654_AE6B;
const MKV_CLUSTER: u64 = 0x1F43_B675;
const MKV_TRACK_ENTRY: u64 = 0xAE;
const MKV_TRACK_TYPE: u64 = 0x83;

fn sniff_ebml(b: &[u8]) -> Option<Format> {
    let (_, hdr_start, hdr_size) = ebml_element(b, 0)?;
    let hdr_end = hdr_start.checked_add(hdr_size?)?.min(b.len());
    let mut doctype: Option<&[u8]> = None;
    let mut at = hdr_start;
    while at < hdr_end {
        let (id, start, size) = ebml_element(b, at)?;
        let size = size?;
        let end = start.checked_add(size)?;
        if id == EBML_DOCTYPE {
            doctype = b.get(start..end.min(hdr_end));
        }
        at = end;
    }
    let doctype = doctype?;
    let doctype = doctype.split(|&c| c == 0).next().unwrap_or(doctype);
    let webm = match doctype {
        b"webm" => true,
        b"matroska" => false,
        _ => return None,
    };
    let audio_only = mkv_audio_only(b, hdr_end).unwrap_or(false);
    Some(match (webm, audio_only) {
        (true, false) => Format::Webm,
        (true, true) => Format::WebmAudio,
        (false, false) => Format::Mkv,
        (false, true) => Format::Mka,
    })
}

/// `Some(true)` when the first `Tracks` element lists at least one audio and no video track.
fn mkv_audio_only(b: &[u8], at: usize) -> Option<bool> {
    let (id, seg_start, seg_size) = ebml_element(b, at)?;
    if id != MKV_SEGMENT {
        return None;
    }
    let seg_end = seg_size.and_then(|s| seg_start.checked_add(s)).unwrap_or(b.len()).min(b.len());
    let mut at = seg_start;
    for _ in 0..64 {
        if at >= seg_end {
            return None;
        }
        let (id, start, size) = ebml_element(b, at)?;
        if id == MKV_CLUSTER {
            return None;
        }
        let end = start.checked_add(size?)?;
        if id == MKV_TRACKS {
            let tracks = b.get(start..end.min(b.len()))?;
            let (mut video, mut audio) = (false, false);
            let mut t = 0;
            while t < tracks.len() {
                let (tid, ts, tsize) = ebml_element(tracks, t)?;
                let te = ts.checked_add(tsize?)?.min(tracks.len());
                if tid == MKV_TRACK_ENTRY {
                    let entry = &tracks[ts..te];
                    let mut e = 0;
                    while e < entry.len() {
                        let (eid, es, esize) = ebml_element(entry, e)?;
                        let ee = es.checked_add(esize?)?.min(entry.len());
                        if eid == MKV_TRACK_TYPE {
                            match entry.get(es..ee) {
                                Some([1]) => video = true,
                                Some([2]) => audio = true,
                                _ => {}
                            }
                        }
                        e = ee;
                    }
                }
                t = te;
            }
            return Some(audio && !video);
        }
        at = end;
    }
    None
}

/// After an ID3v2 tag (or several), the payload is almost always MP3, but FLAC and ADTS AAC
/// are sometimes tagged too.
fn sniff_after_id3(b: &[u8]) -> Format {
    let mut at = 0usize;
    while b.get(at..at + 3) == Some(b"ID3") {
        let Some(h) = b.get(at..at + 10) else { return Format::Mp3 };
        let size = h[6..10].iter().fold(0usize, |acc, &x| (acc << 7) | (x & 0x7F) as usize);
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        at += 10 + size + footer;
    }
    while b.get(at) == Some(&0) {
        at += 1;
    }
    let rest = b.get(at..).unwrap_or(&[]);
    if rest.starts_with(b"fLaC") {
        Format::Flac
    } else if is_adts(b, at) {
        Format::Aac
    } else {
        Format::Mp3
    }
}

/// An ADTS header (12-bit sync, layer 0) whose frame length, when the next frame is in the
/// data, leads to another sync word.
fn is_adts(b: &[u8], at: usize) -> bool {
    let Some(h) = b.get(at..at + 7) else { return false };
    if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
        return false;
    }
    if (h[2] >> 2) & 0x0F >= 13 {
        return false; // sampling frequency index reserved / escape
    }
    let len = (((h[3] & 0x03) as usize) << 11) | ((h[4] as usize) << 3) | ((h[5] >> 5) as usize);
    if len < 7 {
        return false;
    }
    match b.get(at + len..at + len + 2) {
        Some(n) => n[0] == 0xFF && n[1] & 0xF6 == 0xF0,
        None => true,
    }
}

/// An MPEG-1/2/2.5 layer III frame header whose computed length leads to another one (when the
/// data is long enough to hold it).
fn is_mp3_frame_run(b: &[u8], at: usize) -> bool {
    let Some(len) = mp3_frame_len(b, at) else { return false };
    match b.get(at + len..at + len + 4) {
        Some(_) => mp3_frame_len(b, at + len).is_some(),
        None => true,
    }
}

fn mp3_frame_len(b: &[u8], at: usize) -> Option<usize> {
    let h = b.get(at..at + 4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    let layer = (h[1] >> 1) & 3; // 1: layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let br_idx = (h[2] >> 4) as usize;
    let sr_idx = ((h[2] >> 2) & 3) as usize;
    if br_idx == 0 || br_idx == 15 || sr_idx == 3 {
        return None;
    }
    const BR_V1: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const BR_V2: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const SR: [[u32; 3]; 3] = [[11025, 12000, 8000], [22050, 24000, 16000], [44100, 48000, 32000]];
    let padding = ((h[2] >> 1) & 1) as u32;
    let (bitrate, sr, coef) = match version {
        3 => (BR_V1[br_idx], SR[2][sr_idx], 144),
        2 => (BR_V2[br_idx], SR[1][sr_idx], 72),
        _ => (BR_V2[br_idx], SR[0][sr_idx], 72),
    };
    Some((coef * bitrate * 1000 / sr + padding) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compat: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compat.len();
        let mut v = (size as u32).to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0, 0, 0, 0]);
        for c in compat {
            v.extend_from_slice(*c);
        }
        v
    }

    fn bmff_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn trak(handler: &[u8; 4]) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        bmff_box(b"trak", &bmff_box(b"mdia", &bmff_box(b"hdlr", &hdlr)))
    }

    fn ebml(doctype: &str, track_types: &[u8]) -> Vec<u8> {
        let mut hdr_body = vec![0x42, 0x82, 0x80 | doctype.len() as u8];
        hdr_body.extend_from_slice(doctype.as_bytes());
        let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x80 | hdr_body.len() as u8];
        v.extend_from_slice(&hdr_body);
        let mut tracks = Vec::new();
        for &t in track_types {
            tracks.extend_from_slice(&[0xAE, 0x83, 0x83, 0x81, t]);
        }
        let mut seg_body = vec![0x16, 0x54, 0xAE, 0x6B, 0x80 | tracks.len() as u8];
        seg_body.extend_from_slice(&tracks);
        v.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.extend_from_slice(&seg_body);
        v
    }

    fn ogg(packet: &[u8]) -> Vec<u8> {
        let mut v = b"OggS".to_vec();
        v.extend_from_slice(&[0, 2]);
        v.extend_from_slice(&[0u8; 20]);
        v.push(1);
        v.push(packet.len() as u8);
        v.extend_from_slice(packet);
        v
    }

    fn mp3_frames(n: usize) -> Vec<u8> {
        // MPEG-1 layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes per frame.
        let mut v = Vec::new();
        for _ in 0..n {
            let mut f = vec![0u8; 417];
            f[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
            v.extend_from_slice(&f);
        }
        v
    }

    fn adts_frames(n: usize) -> Vec<u8> {
        let len = 32usize;
        let mut v = Vec::new();
        for _ in 0..n {
            let mut f = vec![0u8; len];
            f[0] = 0xFF;
            f[1] = 0xF1;
            f[2] = 0x50; // AAC LC, 44.1 kHz
            f[3] = 0x80 | ((len >> 11) & 3) as u8;
            f[4] = ((len >> 3) & 0xFF) as u8;
            f[5] = (((len & 7) << 5) as u8) | 0x1F;
            f[6] = 0xFC;
            v.extend_from_slice(&f);
        }
        v
    }

    fn image_bytes(format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn images() {
        assert_eq!(sniff(&image_bytes(image::ImageFormat::Jpeg)), Some(Format::Jpeg));
        assert_eq!(sniff(&image_bytes(image::ImageFormat::Png)), Some(Format::Png));
        assert_eq!(sniff(&image_bytes(image::ImageFormat::Gif)), Some(Format::Gif));
        assert_eq!(sniff(&image_bytes(image::ImageFormat::WebP)), Some(Format::Webp));
        assert_eq!(sniff(&image_bytes(image::ImageFormat::Bmp)), Some(Format::Bmp));
        assert_eq!(sniff(b"II*\x00\x08\x00\x00\x00\x00\x00"), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\x00*\x00\x00\x00\x08\x00\x00"), Some(Format::Tiff));
        assert_eq!(sniff(&ftyp(b"heic", &[b"mif1", b"heic"])), Some(Format::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1", b"heic"])), Some(Format::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"mif1"])), Some(Format::Heif));
        assert_eq!(sniff(&ftyp(b"avif", &[b"mif1", b"miaf"])), Some(Format::Avif));
        assert_eq!(sniff(&ftyp(b"mif1", &[b"avif"])), Some(Format::Avif));
        assert_eq!(sniff(&[0xFF, 0x0A, 0x10, 0x20]), Some(Format::Jxl));
        assert!(
            Format::Jpeg.is_supported_photo() && Format::Heic.is_supported_photo() && !Format::Jxl.is_supported_photo()
        );
        assert_eq!(Format::Heic.media_class(), MediaClass::Image);
    }

    #[test]
    fn videos() {
        let mut mp4 = ftyp(b"isom", &[b"isom", b"iso2", b"avc1", b"mp41"]);
        mp4.extend(bmff_box(b"moov", &[trak(b"vide"), trak(b"soun")].concat()));
        assert_eq!(sniff(&mp4), Some(Format::Mp4));
        assert_eq!(sniff(&ftyp(b"mp42", &[b"mp42"])), Some(Format::Mp4));
        assert_eq!(sniff(&ftyp(b"qt  ", &[b"qt  "])), Some(Format::Mov));
        assert_eq!(sniff(&ftyp(b"3gp4", &[b"isom"])), Some(Format::ThreeGp));
        assert_eq!(sniff(&ebml("webm", &[1, 2])), Some(Format::Webm));
        assert_eq!(sniff(&ebml("matroska", &[1])), Some(Format::Mkv));
        let mut avi = b"RIFF\0\0\0\0AVI LIST".to_vec();
        avi.extend_from_slice(&[0; 8]);
        assert_eq!(sniff(&avi), Some(Format::Avi));
        assert_eq!(sniff(&ogg(b"\x80theora\x03\x02")), Some(Format::Ogv));
        for f in [Format::Mp4, Format::Mov, Format::Webm, Format::Mkv, Format::Avi, Format::Ogv] {
            assert_eq!(f.media_class(), MediaClass::Video, "{f}");
        }
        assert_eq!(Format::Mov.ext(), "mov");
        assert_eq!(Format::Webm.mime(), "video/webm");
    }

    #[test]
    fn audio() {
        assert_eq!(sniff(&ogg(b"OpusHead\x01\x01")), Some(Format::Ogg));
        assert_eq!(ogg_codec(&ogg(b"OpusHead\x01\x01")), Some(OggCodec::Opus));
        assert_eq!(ogg_codec(&ogg(b"\x01vorbis\0\0")), Some(OggCodec::Vorbis));
        assert_eq!(ogg_codec(&ogg(b"\x7fFLAC\x01\x00")), Some(OggCodec::Flac));
        assert_eq!(ogg_codec(b"OggS"), None);

        let mut id3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
        id3.extend_from_slice(&[0u8; 10]);
        let mut tagged = id3.clone();
        tagged.extend(mp3_frames(2));
        assert_eq!(sniff(&tagged), Some(Format::Mp3));
        assert_eq!(sniff(&mp3_frames(3)), Some(Format::Mp3));
        let mut tagged_aac = id3.clone();
        tagged_aac.extend(adts_frames(2));
        assert_eq!(sniff(&tagged_aac), Some(Format::Aac));
        assert_eq!(sniff(&adts_frames(3)), Some(Format::Aac));

        assert_eq!(sniff(&ftyp(b"M4A ", &[b"M4A ", b"mp42", b"isom"])), Some(Format::M4a));
        let mut audio_mp4 = ftyp(b"isom", &[b"isom", b"mp42"]);
        audio_mp4.extend(bmff_box(b"moov", &trak(b"soun")));
        assert_eq!(sniff(&audio_mp4), Some(Format::M4a));

        let mut wav = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
        wav.extend_from_slice(&[0; 16]);
        assert_eq!(sniff(&wav), Some(Format::Wav));
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Some(Format::Flac));
        assert_eq!(sniff(b"#!AMR\n\x3c"), Some(Format::Amr));
        assert_eq!(sniff(b"#!AMR-WB\n\x3c"), Some(Format::Amr));
        assert_eq!(sniff(&ebml("webm", &[2])), Some(Format::WebmAudio));
        assert_eq!(sniff(&ebml("matroska", &[2])), Some(Format::Mka));
        for f in [
            Format::Ogg,
            Format::Mp3,
            Format::M4a,
            Format::Wav,
            Format::Flac,
            Format::Aac,
            Format::Amr,
            Format::WebmAudio,
        ] {
            assert_eq!(f.media_class(), MediaClass::Audio, "{f}");
        }
        assert_eq!(Format::M4a.ext(), "m4a");
        assert_eq!(Format::Ogg.mime(), "audio/ogg");
    }

    #[test]
    fn unknown_and_hostile() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"<html><body>"), None);
        assert_eq!(sniff(b"BM"), None);
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90]), None); // too short for a frame header
        assert_eq!(sniff(b"RIFF\0\0\0\0XXXX"), None);
        // Boxes with absurd sizes must not panic or loop.
        let mut evil = ftyp(b"isom", &[]);
        evil.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, b'm', b'o', b'o', b'v', 0, 0, 0, 1]);
        assert_eq!(sniff(&evil), Some(Format::Mp4));
        let mut evil2 = ftyp(b"isom", &[]);
        evil2.extend_from_slice(&[0, 0, 0, 1, b'm', b'o', b'o', b'v', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(sniff(&evil2), Some(Format::Mp4));
        assert_eq!(sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0xFF]), None);
    }
}
