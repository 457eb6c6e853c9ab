//! Perceptual hashes (PDQ, contract §5) of what the outputs show, and the renderings of a
//! transparent image that the classifier scores (§3).
//!
//! The rule behind both: what is hashed and scored is exactly what a recipient is shown — the
//! same decode, the same frame of an animation, the same orientation. So a photo's PDQ comes from
//! its `thumb` (made from the oriented `full`, made from the one decode), composited on white when
//! it has transparency; a video's from the frames its one decode pass sampled and its poster.
//!
//! Why the thumb: PDQ blurs and decimates any input to 64×64 before its DCT, so a 320-px
//! rendition loses nothing PDQ keeps, and hashing it costs a fraction of a millisecond where the
//! full 12 MP decode would cost tens (crates/hash's bench has the figures).

use mediagate_hash::{pdq_luma, pdq_rgb, Hashed, Pdq};

use crate::raster::Pixels;
use crate::MediaError;

/// A still's PDQ with its quality and its 8 dihedral variants (rotations and mirrors, from the
/// same DCT), which bank matching also tries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageHash {
    /// The hash of the image as shown.
    pub pdq: Pdq,
    /// PDQ's own quality metric, 0..=100 (below ~50 the hash says little: flat or tiny images).
    pub quality: u8,
    /// `[original, rotate 90, rotate 180, rotate 270, flip x, flip y, flip +1, flip −1]`.
    pub variants: [Pdq; 8],
}

impl ImageHash {
    fn from_hashed(h: &Hashed) -> ImageHash {
        ImageHash { pdq: h.hash, quality: h.quality, variants: h.dihedral() }
    }
}

/// One sampled video frame's PDQ (`pdq_frames` in the verdict).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameHash {
    /// The frame's time from the start, ms.
    pub ms: u64,
    /// The frame's PDQ.
    pub pdq: Pdq,
    /// Its quality, 0..=100.
    pub quality: u8,
}

fn pdq_error(e: mediagate_hash::PdqError) -> MediaError {
    MediaError::internal(format!("PDQ: {e}"))
}

/// The PDQ of packed RGB8 pixels (a video frame, a poster).
pub(crate) fn hash_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<ImageHash, MediaError> {
    pdq_rgb(width, height, rgb).map(|h| ImageHash::from_hashed(&h)).map_err(pdq_error)
}

/// The PDQ of a frame, without variants (frames are matched as they are).
pub(crate) fn hash_frame(ms: u64, width: u32, height: u32, rgb: &[u8]) -> Result<FrameHash, MediaError> {
    let h = pdq_rgb(width, height, rgb).map_err(pdq_error)?;
    Ok(FrameHash { ms, pdq: h.hash, quality: h.quality })
}

/// The PDQ of an image in any of the pipeline's layouts, as shown: Y′CbCr through its luma
/// plane (PDQ's luma, 0.299 R + 0.587 G + 0.114 B, is JFIF's Y), transparency composited on
/// white (contract §5).
pub(crate) fn hash_pixels(px: &Pixels) -> Result<ImageHash, MediaError> {
    let hashed = match px {
        Pixels::Yuv { y, .. } => {
            let luma = y.data().iter().map(|&v| f32::from(v)).collect();
            pdq_luma(y.width, y.height, luma).map_err(pdq_error)?
        }
        Pixels::Gray(p) => pdq_rgb(p.width, p.height, &gray_to_rgb(p.data())).map_err(pdq_error)?,
        Pixels::Rgb(p) => pdq_rgb(p.width, p.height, p.data()).map_err(pdq_error)?,
        Pixels::Rgba(p) => pdq_rgb(p.width, p.height, &composite(p.data(), 255)).map_err(pdq_error)?,
    };
    Ok(ImageHash::from_hashed(&hashed))
}

/// Greyscale to RGB by repeating the sample (what Pillow's `convert("RGB")` does for `L`).
pub(crate) fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    gray.iter().flat_map(|&g| [g, g, g]).collect()
}

/// RGBA composited over an opaque background of grey level `bg` (0 black, 255 white), rounded:
/// how a viewer shows a transparent image on that background.
pub(crate) fn composite(rgba: &[u8], bg: u8) -> Vec<u8> {
    let bg = u32::from(bg);
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        let a = u32::from(p[3]);
        let mix = |c: u8| ((u32::from(c) * a + bg * (255 - a) + 127) / 255) as u8;
        out.extend_from_slice(&[mix(p[0]), mix(p[1]), mix(p[2])]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_shows_the_pixel_over_its_background() {
        let px = [200, 100, 0, 255, 200, 100, 0, 0, 255, 255, 255, 128];
        assert_eq!(composite(&px, 0), vec![200, 100, 0, 0, 0, 0, 128, 128, 128]);
        assert_eq!(composite(&px, 255), vec![200, 100, 0, 255, 255, 255, 255, 255, 255]);
    }

    /// A picture drawn only in the alpha channel (colour all black) disappears on black and
    /// shows on white: the two renderings differ, and the hash sees the white one.
    #[test]
    fn a_picture_in_the_alpha_channel_is_hashed_as_shown_on_white() {
        let (w, h) = (64u32, 64u32);
        let mut rgba = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let a = if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 };
                rgba.extend_from_slice(&[0, 0, 0, a]);
            }
        }
        let flat_black = vec![0u8; (w * h * 3) as usize];
        assert_eq!(composite(&rgba, 0), flat_black);
        let plane = crate::raster::Plane::tight(rgba.clone(), w, h, 4);
        let shown = hash_pixels(&Pixels::Rgba(plane)).unwrap();
        let expected = hash_rgb(w, h, &composite(&rgba, 255)).unwrap();
        assert_eq!(shown, expected);
        assert!(shown.quality > 0, "a checkerboard has gradients");
        assert_eq!(hash_rgb(w, h, &flat_black).unwrap().quality, 0);
    }
}
