//! Contract §3: what is scored is what is shown. A picture drawn only in the alpha channel (its
//! colour all black) shows on a white background and vanishes on black; the sandbox scores both
//! renderings and the item's score is the higher. The oracle is the same pipeline and model on
//! the two renderings made independently (composited here) and sent as opaque PNGs.

use mediagate_classify::{Classifier, ClassifierConfig, MODEL_FILE, ORT_LIB_FILE};
use mediagate_media::MediaSettings;
use mediagate_sandbox::{execute, Admit, Done, Outcome, Task};

fn classifier() -> Classifier {
    let models = mediagate_testkit::workspace_root().join("models");
    let cfg =
        ClassifierConfig { model_path: models.join(MODEL_FILE), ort_lib: models.join(ORT_LIB_FILE), intra_threads: 2 };
    assert!(cfg.model_path.exists() && cfg.ort_lib.exists(), "model or ONNX Runtime missing: run `make models`");
    Classifier::load(&cfg).expect("classifier")
}

fn png(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

/// The item's score as the worker computes it: the highest over the sandbox's tensors.
fn score(c: &Classifier, bytes: &[u8]) -> (f32, usize) {
    let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: true };
    let (result, _) = execute(&task, bytes, &mut |_| ());
    let Ok(Done { outcome: Outcome::Photo { tensors, .. }, .. }) = result else { panic!("photo failed: {result:?}") };
    let best = tensors.iter().map(|t| c.infer(&t.0).expect("infer")).fold(0f32, f32::max);
    (best, tensors.len())
}

#[test]
fn a_picture_only_in_the_alpha_channel_scores_as_shown() {
    let c = classifier();
    let (w, h) = (480u32, 640u32);
    // Skin-toned ellipses on a dark ground, as luminance: the alpha channel's picture.
    let alpha = image::GrayImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let mut v = 30.0f32;
        for (cx, cy, rx, ry) in [(0.5, 0.55, 0.3, 0.42), (0.35, 0.4, 0.12, 0.12), (0.65, 0.4, 0.12, 0.12)] {
            let d = ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2);
            v = v.max((1.2 - d).clamp(0.0, 1.0) * 220.0);
        }
        image::Luma([v as u8])
    });
    let hidden = image::RgbaImage::from_fn(w, h, |x, y| image::Rgba([0, 0, 0, alpha.get_pixel(x, y).0[0]]));
    let on = |bg: u8| {
        image::RgbImage::from_fn(w, h, |x, y| {
            let a = u32::from(alpha.get_pixel(x, y).0[0]);
            let v = ((u32::from(bg) * (255 - a) + 127) / 255) as u8;
            image::Rgb([v, v, v])
        })
    };
    let (ours, renderings) = score(&c, &png(&image::DynamicImage::ImageRgba8(hidden)));
    let (black, _) = score(&c, &png(&image::DynamicImage::ImageRgb8(on(0))));
    let (white, _) = score(&c, &png(&image::DynamicImage::ImageRgb8(on(255))));
    println!("alpha-only picture: ours {ours:.6}, on black {black:.6}, on white {white:.6}");
    assert_eq!(renderings, 2, "scored on black and on white");
    assert!((white - black).abs() > 1e-3, "the renderings must score apart for this test to mean anything");
    assert!((ours - black.max(white)).abs() < 1e-6, "ours {ours}, renderings {black} / {white}");

    // What the second rendering costs (printed, not asserted: timing belongs to benches).
    let rgba = png(&image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([200, 150, 120, alpha.get_pixel(x, y).0[0]])
    })));
    let opaque = png(&image::DynamicImage::ImageRgb8(on(255)));
    let time = |bytes: &[u8]| {
        let runs = 5;
        let t = std::time::Instant::now();
        for _ in 0..runs {
            score(&c, bytes);
        }
        t.elapsed().as_secs_f64() * 1e3 / runs as f64
    };
    let (t_alpha, t_opaque) = (time(&rgba), time(&opaque));
    println!(
        "{w}x{h} PNG, decode + preprocess + inference: with transparency {t_alpha:.1} ms, opaque {t_opaque:.1} ms \
         (the second rendering: +{:.1} ms)",
        t_alpha - t_opaque
    );
}
