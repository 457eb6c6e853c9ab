//! Which decoder libraries this binary carries, read from the libraries themselves at run time
//! (not from build metadata): what `mediagate --version` prints and `doctor` reports, so an
//! operator matching advisories against a deployment reads the truth of the running binary.

use std::ffi::{c_char, CStr};

use ffmpeg_next::ffi;
use libheif_rs::{CompressionFormat, LibHeif};

/// The decoder libraries linked into this binary and their versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Libraries {
    /// libheif's version (`heif_get_version()`), e.g. "1.23.5".
    pub libheif: String,
    /// libheif's decoder plugins compiled in: (id, name), e.g. ("libde265", "libde265 HEVC decoder 1.0.11").
    pub heif_decoders: Vec<(String, String)>,
    /// libheif's encoder plugins compiled in (mediagate builds none).
    pub heif_encoders: Vec<String>,
    /// Whether libheif can decode `unci` (uncompressed) images (mediagate builds it without).
    pub heif_unci: bool,
    /// libde265's version (`de265_get_version()`), the HEVC decoder under libheif.
    pub libde265: String,
    /// dav1d's version (`dav1d_version()`), the AV1 decoder under libheif and libavcodec.
    pub dav1d: String,
    /// FFmpeg's release (`av_version_info()`), e.g. "5.1.8-0+deb12u1".
    pub ffmpeg: String,
    /// Each FFmpeg library this binary uses and its version (`avcodec_version()`, …), "59.37.100".
    pub libav: Vec<(&'static str, String)>,
}

extern "C" {
    // Both are linked through libheif's decoders (scripts/build-libheif.sh); dav1d is also
    // libavcodec's AV1 decoder: one shared library serves both.
    fn de265_get_version() -> *const c_char;
    fn dav1d_version() -> *const c_char;
}

/// A C string a library returned, or "unknown" for a null pointer.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that lives for the rest of the process
/// (every caller passes a library's static version string).
unsafe fn static_str(p: *const c_char) -> String {
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: non-null, and NUL-terminated and static by this function's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// FFmpeg's `major<<16 | minor<<8 | micro` as "major.minor.micro".
fn av_triple(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Reads every version from the libraries loaded in this process.
pub fn libraries() -> Libraries {
    crate::prepare();
    let heif = LibHeif::new();
    let [a, b, c] = heif.version();
    let heif_decoders =
        heif.decoder_descriptors(64, None).iter().map(|d| (d.id().to_string(), d.name())).collect::<Vec<_>>();
    let heif_encoders = heif.encoder_descriptors(64, None, None).iter().map(|e| e.name()).collect();
    let heif_unci = !heif.decoder_descriptors(8, Some(CompressionFormat::Uncompressed)).is_empty();
    // SAFETY: each function takes no argument and returns its library's static version string
    // (or, for the libav* ones, a plain integer); none has preconditions.
    let (libde265, dav1d, ffmpeg, libav) = unsafe {
        (
            static_str(de265_get_version()),
            static_str(dav1d_version()),
            static_str(ffi::av_version_info()),
            vec![
                ("libavutil", av_triple(ffi::avutil_version())),
                ("libavcodec", av_triple(ffi::avcodec_version())),
                ("libavformat", av_triple(ffi::avformat_version())),
                ("libavfilter", av_triple(ffi::avfilter_version())),
                ("libswscale", av_triple(ffi::swscale_version())),
                ("libswresample", av_triple(ffi::swresample_version())),
            ],
        )
    };
    Libraries {
        libheif: format!("{a}.{b}.{c}"),
        heif_decoders,
        heif_encoders,
        heif_unci,
        libde265,
        dav1d,
        ffmpeg,
        libav,
    }
}

impl std::fmt::Display for Libraries {
    /// One library a line, as `mediagate --version` prints them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut decoders = self.heif_decoders.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>();
        decoders.sort_unstable();
        let decoders = decoders.join(", ");
        let encoders = if self.heif_encoders.is_empty() { "none".to_string() } else { self.heif_encoders.join(", ") };
        writeln!(
            f,
            "libheif {} (decoders: {decoders}; encoders: {encoders}; unci: {})",
            self.libheif,
            if self.heif_unci { "yes" } else { "no" }
        )?;
        writeln!(f, "libde265 {}", self.libde265)?;
        writeln!(f, "dav1d {}", self.dav1d)?;
        write!(f, "FFmpeg {}", self.ffmpeg)?;
        for (name, v) in &self.libav {
            write!(f, "\n{name} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av_versions_read_as_ffmpeg_prints_them() {
        assert_eq!(av_triple((59 << 16) | (37 << 8) | 100), "59.37.100");
    }

    /// What scripts/build-libheif.sh builds: libheif 1.23.5 with exactly the HEVC and AV1
    /// decoders, no encoder and no `unci`, read from the linked library.
    #[test]
    fn the_linked_libheif_is_the_one_built_for_mediagate() {
        let l = libraries();
        assert_eq!(l.libheif, "1.23.5", "{l}");
        let mut ids = l.heif_decoders.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>();
        ids.sort_unstable();
        assert_eq!(ids, ["dav1d", "libde265"], "{l}");
        assert!(l.heif_encoders.is_empty(), "{l}");
        assert!(!l.heif_unci, "{l}");
        assert!(l.libde265.starts_with("1.0."), "{l}");
        assert!(l.dav1d.starts_with("1."), "{l}");
        assert!(l.ffmpeg.starts_with("5.1"), "Debian bookworm's FFmpeg: {l}");
        assert!(l.libav.iter().all(|(_, v)| !v.starts_with("0.")), "{l}");
    }
}
