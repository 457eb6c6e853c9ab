//! The media work itself, the same in a child and in-process: identify, probe, admit, process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mediagate_media::{MediaClass, MediaError, MediaSettings};

use crate::{Done, Outcome, Refusal, Stats, Task, Tensor};

/// Runs one task on the input's bytes. `identified` hears the file's class as soon as it is
/// known, before it is processed (the child tightens its budget then). A panic in the media
/// code is caught and reported as `input.corrupt` (it would panic again on every retry), never
/// unwound into the caller.
pub fn execute(task: &Task, bytes: &[u8], identified: &mut dyn FnMut(MediaClass)) -> (Result<Done, Refusal>, Stats) {
    let started = Instant::now();
    let mut classify_prep = Duration::ZERO;
    let mut known = None;
    let result = catch_unwind(AssertUnwindSafe(|| run(task, bytes, &mut classify_prep, &mut known, identified)))
        .unwrap_or_else(|panic| {
            let what = mediagate_media::panic_message(panic.as_ref());
            tracing::error!(panic = %what, "media code panicked");
            let error = MediaError::Corrupt {
                message: format!("the decoder failed on this file ({what}); re-export it and send it again"),
            };
            match known {
                Some((format, class)) => Err(Refusal::Media { format, class, error }),
                None => Err(Refusal::Unrecognized { head: head(bytes) }),
            }
        });
    (result, Stats { work: started.elapsed(), classify_prep, pid: std::process::id(), ..Stats::default() })
}

/// The first bytes of a file, for a message about what it is not.
fn head(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().take(8).copied().collect()
}

fn run(
    task: &Task,
    bytes: &[u8],
    classify_prep: &mut Duration,
    known: &mut Option<(mediagate_media::Format, MediaClass)>,
    identified: &mut dyn FnMut(MediaClass),
) -> Result<Done, Refusal> {
    let s = &task.settings;
    let format = mediagate_media::sniff(bytes).ok_or_else(|| Refusal::Unrecognized { head: head(bytes) })?;
    *known = Some((format, format.media_class()));
    // MP4/MOV/3GP/WebM/Matroska may hold a video or only sound: the tracks decide.
    let class = if mediagate_media::is_video_format(format) {
        mediagate_media::probe_av(bytes, format)
            .map_err(|error| Refusal::Media { format, class: format.media_class(), error })?
            .media_class()
    } else {
        format.media_class()
    };
    *known = Some((format, class));
    if !task.admit.admits(class) {
        return Err(Refusal::NotAdmitted { format, class, admit: task.admit });
    }
    identified(class);
    let refused = |error| Refusal::Media { format, class, error };
    let outcome = match class {
        MediaClass::Image => photo(bytes, s, task.classify, classify_prep).map_err(refused)?,
        MediaClass::Audio => Outcome::Voice(mediagate_media::process_voice(bytes, format, s).map_err(refused)?),
        MediaClass::Video => video(bytes, format, s, task.classify, classify_prep).map_err(refused)?,
    };
    Ok(Done { format, outcome })
}

fn photo(bytes: &[u8], s: &MediaSettings, classify: bool, classify_prep: &mut Duration) -> Result<Outcome, MediaError> {
    if !classify {
        return Ok(Outcome::Photo { out: mediagate_media::process_photo(bytes, s)?, tensors: Vec::new() });
    }
    // One decode feeds both the classifier and the variants: the tensors are made from the image
    // exactly as the outputs show it (contract §3), once per rendering (two with transparency).
    let mut prep = Duration::ZERO;
    let (out, tensors) = mediagate_media::process_photo_inspecting(bytes, s, |w, h, rgb| {
        let t = Instant::now();
        let tensor = mediagate_classify::preprocess(w, h, rgb);
        prep += t.elapsed();
        tensor
    })?;
    let tensors = tensors
        .into_iter()
        .map(|t| t.map(Tensor))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MediaError::Internal { message: format!("preparing the image for the classifier: {e}") })?;
    *classify_prep = prep;
    Ok(Outcome::Photo { out, tensors })
}

fn video(
    bytes: &[u8],
    format: mediagate_media::Format,
    s: &MediaSettings,
    classify: bool,
    classify_prep: &mut Duration,
) -> Result<Outcome, MediaError> {
    let mut out = mediagate_media::process_video(bytes, format, s, classify)?;
    let t = Instant::now();
    let tensors = std::mem::take(&mut out.frames)
        .iter()
        .map(|f| {
            mediagate_classify::preprocess(f.width, f.height, &f.data).map(Tensor).map_err(|e| MediaError::Internal {
                message: format!("preparing a video frame for the classifier: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    *classify_prep = t.elapsed();
    Ok(Outcome::Video { out, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Admit;
    use mediagate_media::Format;

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

    /// The tensor from the shared decode of a colour and of a greyscale JPEG equals the
    /// classifier's own Pillow-exact path on the original bytes (same libjpeg-turbo decode, grey
    /// repeated into RGB as Pillow's `convert("RGB")` does).
    #[test]
    fn the_tensor_is_the_references_for_colour_and_greyscale_jpeg() {
        for gray in [false, true] {
            let bytes = jpeg(1500, 1000, gray);
            let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: true };
            let (result, _) = execute(&task, &bytes, &mut |_| ());
            let Ok(Done { outcome: Outcome::Photo { out, tensors }, .. }) = result else {
                panic!("photo failed: {result:?}")
            };
            let img = mediagate_classify::decode_like_pillow(&bytes).unwrap();
            let reference = mediagate_classify::preprocess(img.width, img.height, &img.pixels).unwrap();
            assert_eq!(tensors, vec![Tensor(reference)], "gray: {gray}");
            assert_eq!((out.width, out.height), (1500, 1000));
        }
    }

    #[test]
    fn garbage_is_refused_not_panicked() {
        let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: true };
        let (result, stats) = execute(&task, b"\xff\xd8\xff\xe0 not really a jpeg", &mut |_| ());
        assert!(
            matches!(result, Err(Refusal::Media { format: Format::Jpeg, error: MediaError::Corrupt { .. }, .. })),
            "{result:?}"
        );
        assert!(stats.work > Duration::ZERO);
        let (result, _) = execute(&task, b"\0\0\0\x18ftypisom", &mut |_| ());
        assert!(matches!(result, Err(Refusal::Media { format: Format::Mp4, .. })), "{result:?}");
        let (result, _) = execute(&task, b"<html>", &mut |_| ());
        assert_eq!(result.unwrap_err(), Refusal::Unrecognized { head: b"<html>".to_vec() });
    }

    /// The child identifies the file, checks it against what the job takes, and says what it
    /// found before processing (and only then).
    #[test]
    fn a_file_the_job_does_not_take_is_refused_before_any_processing() {
        let bytes = jpeg(64, 48, false);
        let voice = Task { admit: Admit::Audio, settings: MediaSettings::default(), classify: false };
        let mut heard = Vec::new();
        let (result, _) = execute(&voice, &bytes, &mut |c| heard.push(c));
        assert_eq!(
            result.unwrap_err(),
            Refusal::NotAdmitted { format: Format::Jpeg, class: MediaClass::Image, admit: Admit::Audio }
        );
        assert!(heard.is_empty(), "identified before being admitted: {heard:?}");
        let media = Task { admit: Admit::Visual, ..voice };
        let (result, _) = execute(&media, &bytes, &mut |c| heard.push(c));
        assert!(
            matches!(result, Ok(Done { format: Format::Jpeg, outcome: Outcome::Photo { ref tensors, .. } }) if tensors.is_empty())
        );
        assert_eq!(heard, vec![MediaClass::Image]);
    }
}
