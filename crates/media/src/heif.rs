//! HEIC/HEIF (HEVC) and AVIF (AV1) photos through libheif (contract §4).
//!
//! - **Primary image only**: the item the file's `pitm` names, never an embedded thumbnail (a
//!   harmless thumbnail over a harmful main image would bypass the filter), a depth map, an
//!   Apple gain map or any other auxiliary image. A grid is decoded whole (libheif assembles it).
//! - **Limits before decoding**: the primary image's `ispe` width × height (as stored, before
//!   rotation) and its displayed size are checked against the pixel limit as soon as the boxes
//!   are parsed, before any pixel buffer exists; libheif's own security limits bound the tile
//!   count, item count, colour-profile size and the largest memory block, and the sandbox child's
//!   memory limit bounds the rest.
//! - **Orientation** comes from the container's transformations (`irot`, `imir`, `clap`), which
//!   libheif applies while decoding. An EXIF Orientation inside a HEIF is *not* applied: HEIF
//!   says the transformations are authoritative, iPhones write both, and applying both would
//!   rotate twice (pillow-heif, the reference's reader, does the same).
//! - **Bit depth**: 10- and 12-bit images are converted to 8 bits by libheif.
//! - **Colour**: an ICC profile (`colr` `prof`/`rICC`) is kept and re-embedded as for JPEG; an
//!   `nclx` with Display P3 primaries gets a Display P3 ICC profile ([`crate::icc`]); sRGB/BT.709
//!   and unspecified `nclx` need none.

use libheif_rs::{
    color_profile_types, ColorPrimaries, ColorProfile, ColorSpace, DecodingOptions, HeifContext, HeifErrorCode,
    ImageHandle, LibHeif, RgbChroma, SecurityLimits,
};

use crate::photo::{check_pixels, DecodedPhoto};
use crate::raster::{Pixels, Plane};
use crate::sniff::Format;
use crate::MediaError;

/// Most grid tiles a photo may have: a 48 MP iPhone HEIC has 192 (512 px tiles), and 1024 tiles
/// of 256 px are 67 MP, above the default pixel limit.
const MAX_TILES: u64 = 1024;
/// Most items (images, tiles, metadata) in one file.
const MAX_ITEMS: u32 = 2000;
/// Largest colour profile kept (real ones are a few kB; Apple's Display P3 is 536 bytes).
const MAX_ICC: u32 = 1 << 20;

/// Initialises libheif once in this process (registers its built-in decoders). Called by the
/// sandbox's fork server before it locks itself down, so no child ever initialises it.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Kept for the life of the process: dropping it would deinitialise libheif.
        std::mem::forget(LibHeif::new());
    });
}

fn heif_error(format: Format, len: usize, e: libheif_rs::HeifError) -> MediaError {
    let name = format.name();
    let what = e.message.trim().trim_end_matches('.').to_string();
    match e.code {
        HeifErrorCode::MemoryAllocationError => {
            // libheif's security limits: an allocation larger than the image needs, or (from
            // 1.23.5) a coded picture larger than the image declares (a layered AVIF whose
            // operating point shows a smaller layer trips it too; libavif decodes those).
            MediaError::corrupt(format!(
                "{name} is refused by the decoder's security limits ({what}); the file is damaged or \
                 crafted, or codes a larger picture than it declares"
            ))
        }
        HeifErrorCode::UnsupportedFeature | HeifErrorCode::UnsupportedFileType => {
            MediaError::Unsupported { format: format!("{name} ({what})") }
        }
        HeifErrorCode::UsageError | HeifErrorCode::ContextCreateFailed => {
            MediaError::internal(format!("libheif: {what}"))
        }
        _ if what.to_ascii_lowercase().contains("end of") || what.to_ascii_lowercase().contains("exceeds the") => {
            MediaError::corrupt(format!("{name} data ends after {len} bytes, before the image is complete ({what})"))
        }
        _ => MediaError::corrupt(format!("{name} does not decode cleanly: {what}")),
    }
}

fn limits(max_pixels: u64) -> SecurityLimits {
    let mut l = SecurityLimits::new();
    l.set_max_image_size_pixels(max_pixels);
    l.set_max_number_of_tiles(MAX_TILES);
    l.set_max_items(MAX_ITEMS);
    l.set_max_color_profile_size(MAX_ICC);
    // The largest single allocation: the decoded image at 16 bits per RGBA sample, plus room.
    l.set_max_memory_block_size(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    l
}

/// Decodes the primary image of a HEIC/HEIF/AVIF file to 8-bit RGB(A), transformations applied.
pub(crate) fn decode_heif(bytes: &[u8], format: Format, max_pixels: u64) -> Result<DecodedPhoto, MediaError> {
    init();
    let lib = LibHeif::new();
    let err = |e| heif_error(format, bytes.len(), e);
    let mut ctx: HeifContext<'_> = HeifContext::new().map_err(err)?;
    ctx.set_security_limits(&limits(max_pixels)).map_err(err)?;
    ctx.read_bytes(bytes).map_err(err)?;
    let handle = ctx.primary_image_handle().map_err(err)?;
    check_declared(&handle, max_pixels)?;

    let alpha = handle.has_alpha_channel();
    let chroma = if alpha { RgbChroma::Rgba } else { RgbChroma::Rgb };
    let mut options = DecodingOptions::new().ok_or_else(|| MediaError::internal("libheif: no decoding options"))?;
    options.set_convert_hdr_to_8bit(true);
    options.set_ignore_transformations(false);
    // A tile that is missing (a truncated file) or does not decode is an error, not a grey patch.
    options.set_strict_decoding(true);
    let image = lib.decode(&handle, ColorSpace::Rgb(chroma), Some(options)).map_err(err)?;
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 {
        return Err(MediaError::corrupt(format!("{} decodes to an empty {w}×{h} image", format.name())));
    }
    check_pixels(w, h, max_pixels)?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| MediaError::internal("libheif returned no interleaved plane for RGB output"))?;
    let channels: usize = if alpha { 4 } else { 3 };
    if plane.storage_bits_per_pixel as usize != 8 * channels {
        return Err(MediaError::internal(format!(
            "libheif returned {} bits per pixel for {channels}-channel 8-bit output",
            plane.storage_bits_per_pixel
        )));
    }
    let row = w as usize * channels;
    if plane.stride < row || plane.data.len() < plane.stride * (h as usize - 1) + row {
        return Err(MediaError::internal("libheif returned a plane smaller than its size"));
    }
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        data.extend_from_slice(&plane.data[y * plane.stride..y * plane.stride + row]);
    }
    let pixels = if alpha && data.chunks_exact(4).any(|p| p[3] != 255) {
        Pixels::Rgba(Plane::tight(data, w, h, 4))
    } else if alpha {
        let rgb = data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        Pixels::Rgb(Plane::tight(rgb, w, h, 3))
    } else {
        Pixels::Rgb(Plane::tight(data, w, h, 3))
    };
    Ok(DecodedPhoto {
        format,
        width: w,
        height: h,
        // Already applied by libheif (irot/imir); see the module docs.
        orientation: 1,
        icc: profile(&handle),
        pixels,
    })
}

/// The declared sizes (`ispe` as stored, and as displayed after `clap`/`irot`) against the limit,
/// before anything is decoded.
fn check_declared(handle: &ImageHandle, max_pixels: u64) -> Result<(), MediaError> {
    let (iw, ih) = (handle.ispe_width(), handle.ispe_height());
    if iw > 0 && ih > 0 {
        check_pixels(iw as u32, ih as u32, max_pixels)?;
    }
    let (w, h) = (handle.width(), handle.height());
    if w == 0 || h == 0 {
        return Err(MediaError::corrupt(format!("the primary image declares an empty {w}×{h} size")));
    }
    check_pixels(w, h, max_pixels)
}

/// The ICC profile to embed in the outputs, from the image's `colr` box.
fn profile(handle: &ImageHandle) -> Option<Vec<u8>> {
    if let Some(raw) = handle.color_profile_raw() {
        let typ = raw.profile_type();
        if typ == color_profile_types::PROF || typ == color_profile_types::R_ICC {
            return Some(raw.data);
        }
    }
    let nclx = handle.color_profile_nclx()?;
    match nclx.color_primaries() {
        ColorPrimaries::SMPTE_EG_432_1 => Some(crate::icc::display_p3()),
        _ => None,
    }
}
