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
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
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
        Task::Photo { settings, classify } => {
            let out = mediagate_media::process_photo(bytes, settings)?;
            let tensor = if *classify {
                let t = Instant::now();
                // The reference decodes the original bytes itself (no EXIF rotation, Pillow's
                // decoder), so the tensor comes from them, not from the resized variants.
                let img = mediagate_classify::decode_like_pillow(bytes).map_err(|e| MediaError::Corrupt {
                    message: format!(
                        "the nudity filter could not read this image ({e}); re-export it and send it again"
                    ),
                })?;
                let tensor = mediagate_classify::preprocess(img.width, img.height, &img.pixels).map_err(|e| {
                    MediaError::Internal { message: format!("preparing the image for the classifier: {e}") }
                })?;
                *classify_prep = t.elapsed();
                Some(Tensor(tensor))
            } else {
                None
            };
            Ok(Outcome::Photo { out, tensor })
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
