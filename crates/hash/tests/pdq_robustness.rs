//! What PDQ is for: the same picture after the usual transformations of a re-share stays within
//! the contract's default match distance (31 bits), and an unrelated picture does not. No oracle
//! needed; this checks the port behaves like a perceptual hash, not only that it is exact.

mod support;

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use mediagate_hash::{pdq_rgb, Hashed};
use support::images::{self, Rgb};

const MAX_DISTANCE: u32 = 31;

fn hash(img: &Rgb) -> Hashed {
    pdq_rgb(img.width, img.height, &img.data).unwrap()
}

fn jpeg_round_trip(img: &Rgb, quality: u8) -> Rgb {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut bytes), quality).encode_image(&img.to_image()).unwrap();
    Rgb::from_image(&image::load_from_memory(&bytes).unwrap().to_rgb8())
}

#[test]
fn transformed_copies_match_and_unrelated_pictures_do_not() {
    let original = images::natural(800, 600, 101);
    let h = hash(&original);
    assert!(h.quality >= 80, "a photo-like picture has a high quality, got {}", h.quality);

    let reencoded = jpeg_round_trip(&original, 60);
    assert_ne!(reencoded.data, original.data, "the re-encode changed the pixels");
    let jpeg = hash(&reencoded);
    let small = original.to_image();
    let small = imageops::resize(&small, 560, 420, FilterType::Triangle);
    let small = hash(&Rgb::from_image(&small));
    let rotated = hash(&Rgb::from_image(&imageops::rotate90(&original.to_image())));
    let unrelated = hash(&images::natural(800, 600, 202));

    let d_jpeg = h.hash.distance(&jpeg.hash);
    let d_small = h.hash.distance(&small.hash);
    let variants = h.dihedral();
    let (best, d_rotated) =
        variants.iter().map(|v| v.distance(&rotated.hash)).enumerate().min_by_key(|&(_, d)| d).unwrap();
    let d_unrelated = variants.iter().map(|v| v.distance(&unrelated.hash)).min().unwrap();
    eprintln!(
        "distances: jpeg q60 {d_jpeg}, ×0.7 {d_small}, rotated 90° {d_rotated} (variant {best}; as is {}), unrelated {d_unrelated}",
        h.hash.distance(&rotated.hash)
    );
    assert!(d_jpeg <= MAX_DISTANCE, "JPEG q60 re-encode is {d_jpeg} bits away");
    assert!(d_small <= MAX_DISTANCE, "×0.7 resize is {d_small} bits away");
    assert!(d_rotated <= MAX_DISTANCE, "90° rotation is {d_rotated} bits from its nearest variant");
    // image's rotate90 turns clockwise; PDQ's "rotate 90" variant is counter-clockwise, so a
    // clockwise turn is its "rotate 270"
    assert_eq!(best, 3, "a clockwise quarter turn matched variant {best}");
    assert!(h.hash.distance(&rotated.hash) > MAX_DISTANCE, "without the variants the rotation would not match");
    assert!(d_unrelated > MAX_DISTANCE, "an unrelated picture is only {d_unrelated} bits away");
}

#[test]
fn mirrors_and_rotations_map_to_their_variants() {
    // Each dihedral transform of the picture, hashed directly, is near the variant of that
    // name (the variant is computed from the original's DCT, the direct hash from new pixels).
    let original = images::natural(480, 360, 303);
    let h = hash(&original);
    let img = original.to_image();
    // (image's transform, the variant it is: PDQ's rotations turn counter-clockwise, its flip X
    // mirrors top to bottom and flip Y left to right; flip ±1 are the two transpositions)
    let transpose = image::RgbImage::from_fn(img.height(), img.width(), |x, y| *img.get_pixel(y, x));
    let anti = imageops::rotate180(&transpose);
    let transforms: [(&str, image::RgbImage, usize); 6] = [
        ("rotate 270 clockwise", imageops::rotate270(&img), 1),
        ("rotate 180", imageops::rotate180(&img), 2),
        ("flip vertical", imageops::flip_vertical(&img), 4),
        ("flip horizontal", imageops::flip_horizontal(&img), 5),
        ("transpose", transpose, 6),
        ("anti-transpose", anti, 7),
    ];
    let variants = h.dihedral();
    for (name, t, expected) in transforms {
        let d = hash(&Rgb::from_image(&t));
        let (best, dist) = variants.iter().map(|v| v.distance(&d.hash)).enumerate().min_by_key(|&(_, d)| d).unwrap();
        eprintln!("{name}: nearest variant {best} at {dist} bits");
        assert_eq!(best, expected, "{name}: nearest variant");
        assert!(dist <= MAX_DISTANCE, "{name}: nearest variant {best} is {dist} bits away");
    }
}
