//! The media work itself, the same in a child and in-process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mediagate_media::MediaError;

use crate::{Outcome, Stats, Task, Tensor};

/// Runs one task on the input's bytes. A panic in the media code is caught and reported as
/// `input.corrupt` (it would panic again on every retry), never unwound into the caller.
pub fn execute(task: &Task, bytes: &[u8]) -> (Result<Outcome, MediaError>, Stats) {
    let started = Instant::now();
    let mut classify_prep = Duration::ZERO;
    let result = catch_unwind(AssertUnwindSafe(|| run(task, bytes, &mut classify_prep))).unwrap_or_else(|panic| {
        let what = mediagate_media::panic_message(panic.as_ref());
        tracing::error!(panic = %what, "media code panicked");
        Err(MediaError::Corrupt {
            message: format!("the decoder failed on this file ({what}); re-export it and send it again"),
        })
    });
    (result, Stats { work: started.elapsed(), classify_prep, pid: std::process::id(), ..Stats::default() })
}

fn run(task: &Task, bytes: &[u8], classify_prep: &mut Duration) -> Result<Outcome, MediaError> {
    match task {
        Task::Probe { format } => mediagate_media::probe_av(bytes, *format).map(Outcome::Probe),
        Task::Photo { settings, classify: false } => {
            Ok(Outcome::Photo { out: mediagate_media::process_photo(bytes, settings)?, tensor: None })
        }
        Task::Photo { settings, classify: true } => {
            // A colour JPEG is decoded once, the way the reference decodes it, and that decode
            // feeds both the classifier and the variants; any other photo is decoded again for
            // the classifier, by its own Pillow-exact decoder.
            let mut prep = Duration::ZERO;
            let (out, shared) = mediagate_media::process_photo_inspecting(bytes, settings, |w, h, rgb| {
                let t = Instant::now();
                let tensor = mediagate_classify::preprocess(w, h, rgb);
                prep = t.elapsed();
                tensor
            })?;
            let tensor = match shared {
                Some(tensor) => tensor,
                None => {
                    let t = Instant::now();
                    // The reference decodes the original bytes itself (no EXIF rotation,
                    // Pillow's decoder), so the tensor comes from them, not from the variants.
                    let img = mediagate_classify::decode_like_pillow(bytes).map_err(|e| MediaError::Corrupt {
                        message: format!(
                            "the nudity filter could not read this image ({e}); re-export it and send it again"
                        ),
                    })?;
                    let tensor = mediagate_classify::preprocess(img.width, img.height, &img.pixels);
                    prep = t.elapsed();
                    tensor
                }
            }
            .map_err(|e| MediaError::Internal { message: format!("preparing the image for the classifier: {e}") })?;
            *classify_prep = prep;
            Ok(Outcome::Photo { out, tensor: Some(Tensor(tensor)) })
        }
        Task::Voice { format, settings } => {
            mediagate_media::process_voice(bytes, *format, settings).map(Outcome::Voice)
        }
        Task::Video { format, settings } => {
            let mut out = mediagate_media::process_video(bytes, *format, settings)?;
            let t = Instant::now();
            let tensors = std::mem::take(&mut out.frames)
                .iter()
                .map(|f| {
                    mediagate_classify::preprocess(f.width, f.height, &f.data).map(Tensor).map_err(|e| {
                        MediaError::Internal { message: format!("preparing a video frame for the classifier: {e}") }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            *classify_prep = t.elapsed();
            Ok(Outcome::Video { out, tensors })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediagate_media::{Format, PhotoSettings};

    fn jpeg(w: u32, h: u32, gray: bool) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        if gray {
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 5 + y * 3) % 256) as u8]))
                .write_to(&mut out, image::ImageFormat::Jpeg)
        } else {
            image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x % 256) as u8, (y * 2 % 256) as u8, ((x ^ y) % 256) as u8])
            })
            .write_to(&mut out, image::ImageFormat::Jpeg)
        }
        .expect("encode");
        out.into_inner()
    }

    /// The tensor from the shared decode (colour JPEG) and from the fallback (greyscale JPEG)
    /// both equal the classifier's own Pillow-exact path on the original bytes.
    #[test]
    fn the_tensor_is_the_references_whichever_decode_feeds_it() {
        for gray in [false, true] {
            let bytes = jpeg(1500, 1000, gray);
            let task = Task::Photo { settings: PhotoSettings::default(), classify: true };
            let (result, _) = execute(&task, &bytes);
            let Ok(Outcome::Photo { out, tensor: Some(t) }) = result else { panic!("photo failed: {result:?}") };
            let img = mediagate_classify::decode_like_pillow(&bytes).unwrap();
            let reference = mediagate_classify::preprocess(img.width, img.height, &img.pixels).unwrap();
            assert_eq!(t.0, reference, "gray: {gray}");
            assert_eq!((out.width, out.height), (1500, 1000));
            let (_, shared) =
                mediagate_media::process_photo_inspecting(&bytes, &PhotoSettings::default(), |_, _, _| ())
                    .expect("photo");
            assert_eq!(shared.is_some(), !gray, "only a colour JPEG shares its decode");
        }
    }

    #[test]
    fn garbage_is_refused_not_panicked() {
        let task = Task::Photo { settings: PhotoSettings::default(), classify: true };
        let (result, stats) = execute(&task, b"\xff\xd8\xff\xe0 not really a jpeg");
        assert!(matches!(result, Err(MediaError::Corrupt { .. })), "{result:?}");
        assert!(stats.work > Duration::ZERO);
        let (result, _) = execute(&Task::Probe { format: Format::Mp4 }, b"\0\0\0\x18ftypisom");
        assert!(result.is_err(), "{result:?}");
    }
}
