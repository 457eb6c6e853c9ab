//! Synthetic pictures for the PDQ tests and bench, made by hand (no files, no downloads):
//! packed RGB8, rows top to bottom. Coordinates are taken relative to the image size, so the
//! same seed at another size is the same picture resampled (what the robustness test needs).

#![allow(dead_code)] // each user (oracle test, robustness test, bench) takes a different subset

/// A packed RGB8 image.
#[derive(Clone)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Rgb {
    pub fn from_fn(width: u32, height: u32, mut f: impl FnMut(u32, u32) -> [f32; 3]) -> Rgb {
        let mut data = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                for c in f(x, y) {
                    data.push(c.round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        Rgb { width, height, data }
    }

    pub fn to_image(&self) -> image::RgbImage {
        image::RgbImage::from_raw(self.width, self.height, self.data.clone()).expect("buffer size")
    }

    pub fn from_image(img: &image::RgbImage) -> Rgb {
        Rgb { width: img.width(), height: img.height(), data: img.as_raw().clone() }
    }
}

/// splitmix64 of a key: deterministic pseudo-random 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn lattice(ix: i64, iy: i64, salt: u64) -> f32 {
    let h = mix((ix as u64).wrapping_mul(0x1000_0000_01B3) ^ (iy as u64).wrapping_mul(0x9E37_79B9) ^ salt);
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1] at (fx, fy) on a lattice of `cells` per unit.
fn value_noise(fx: f32, fy: f32, cells: f32, salt: u64) -> f32 {
    let (x, y) = (fx * cells, fy * cells);
    let (ix, iy) = (x.floor() as i64, y.floor() as i64);
    let (tx, ty) = (x - ix as f32, y - iy as f32);
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(tx), s(ty));
    let a = lattice(ix, iy, salt) * (1.0 - sx) + lattice(ix + 1, iy, salt) * sx;
    let b = lattice(ix, iy + 1, salt) * (1.0 - sx) + lattice(ix + 1, iy + 1, salt) * sx;
    a * (1.0 - sy) + b * sy
}

/// Fractal noise: `octaves` of value noise from 3 cells up, each half the amplitude.
fn fractal(fx: f32, fy: f32, octaves: u32, salt: u64) -> f32 {
    let (mut sum, mut amp, mut cells, mut norm) = (0.0, 1.0, 3.0, 0.0);
    for o in 0..octaves {
        sum += amp * value_noise(fx, fy, cells, salt.wrapping_add(u64::from(o) * 7919));
        norm += amp;
        amp *= 0.65;
        cells *= 2.0;
    }
    sum / norm
}

/// Something like a photo: a lit, fractal "landscape" in varied colours, a few soft-edged
/// objects, and fine grain (per pixel, so it does not resample with the picture).
pub fn natural(width: u32, height: u32, seed: u64) -> Rgb {
    let salt = mix(seed);
    let hue = |k: u64| 60.0 + (mix(salt ^ k) % 140) as f32;
    let base = [hue(1), hue(2), hue(3)];
    let objects: Vec<(f32, f32, f32, [f32; 3])> = (0..4)
        .map(|i| {
            let r = |k: u64| (mix(salt ^ (100 + i * 10 + k)) % 1000) as f32 / 1000.0;
            (0.15 + 0.7 * r(1), 0.15 + 0.7 * r(2), 0.06 + 0.14 * r(3), [255.0 * r(4), 255.0 * r(5), 255.0 * r(6)])
        })
        .collect();
    let aspect = width as f32 / height.max(1) as f32;
    let mut grain = mix(salt ^ 0xABCD);
    Rgb::from_fn(width, height, |x, y| {
        let fx = (x as f32 + 0.5) / width as f32 * aspect;
        let fy = (y as f32 + 0.5) / height as f32;
        let land = fractal(fx, fy, 7, salt);
        // contrast stretch, and ridges where the terrain crosses levels (edges, like a photo's)
        let land = ((land - 0.5) * 2.2 + 0.5).clamp(0.0, 1.0);
        let ridge = if (land * 9.0).fract() < 0.12 { 0.75 } else { 1.0 };
        let tint = fractal(fx, fy, 2, salt ^ 0x55);
        let light = 0.55 + 0.45 * (1.0 - fy) * (0.6 + 0.4 * (fx * 2.1).sin());
        let mut c = [
            base[0] * light * ridge * (0.3 + land * 1.2) + 40.0 * tint,
            base[1] * light * ridge * (0.2 + land * 1.4) + 30.0 * (1.0 - tint),
            base[2] * light * ridge * (0.4 + land) + 20.0 * tint,
        ];
        for &(cx, cy, r, col) in &objects {
            let d = (((fx / aspect - cx) * aspect).powi(2) + (fy - cy).powi(2)).sqrt() / r;
            let m = ((1.0 - d) * 12.0).clamp(0.0, 1.0); // a sharp (few-pixel) edge
            for i in 0..3 {
                c[i] = c[i] * (1.0 - m) + col[i] * m * (0.8 + 0.2 * land);
            }
        }
        grain = mix(grain);
        let n = ((grain & 0xff) as f32 - 127.5) / 127.5 * 6.0;
        [c[0] + n, c[1] + n, c[2] + n]
    })
}

/// `natural` with R = G = B (a greyscale photo stored as RGB).
pub fn greyscale(width: u32, height: u32, seed: u64) -> Rgb {
    let mut img = natural(width, height, seed);
    for px in img.data.chunks_exact_mut(3) {
        let v = ((u32::from(px[0]) * 3 + u32::from(px[1]) * 6 + u32::from(px[2])) / 10) as u8;
        px.copy_from_slice(&[v, v, v]);
    }
    img
}

pub fn flat(width: u32, height: u32, colour: [u8; 3]) -> Rgb {
    Rgb::from_fn(width, height, |_, _| colour.map(f32::from))
}

/// Black and white squares of `cell` pixels.
pub fn checkerboard(width: u32, height: u32, cell: u32) -> Rgb {
    Rgb::from_fn(width, height, |x, y| if (x / cell + y / cell).is_multiple_of(2) { [255.0; 3] } else { [0.0; 3] })
}

/// A diagonal colour gradient, no noise.
pub fn gradient(width: u32, height: u32) -> Rgb {
    Rgb::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        [255.0 * fx, 255.0 * fy, 255.0 * (1.0 - (fx + fy) / 2.0)]
    })
}

/// Saturated rectangles and discs on black.
pub fn shapes(width: u32, height: u32, seed: u64) -> Rgb {
    let salt = mix(seed);
    let r = |k: u64| (mix(salt ^ k) % 1000) as f32 / 1000.0;
    let rects: Vec<[f32; 7]> = (0..6)
        .map(|i| {
            [r(i * 9), r(i * 9 + 1), r(i * 9 + 2) * 0.4, r(i * 9 + 3) * 0.4, r(i * 9 + 4), r(i * 9 + 5), r(i * 9 + 6)]
        })
        .collect();
    Rgb::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let mut c = [0.0; 3];
        for (i, s) in rects.iter().enumerate() {
            let inside = if i % 2 == 0 {
                fx >= s[0] && fx < s[0] + s[2] && fy >= s[1] && fy < s[1] + s[3]
            } else {
                (fx - s[0]).powi(2) + (fy - s[1]).powi(2) < (s[2] / 2.0).powi(2)
            };
            if inside {
                c = [s[4] * 255.0, s[5] * 255.0, s[6] * 255.0].map(|v: f32| if v > 127.0 { 255.0 } else { v / 2.0 });
            }
        }
        c
    })
}

/// Uniform random bytes.
pub fn noise(width: u32, height: u32, seed: u64) -> Rgb {
    let mut s = mix(seed);
    let data = (0..width as usize * height as usize * 3)
        .map(|_| {
            s = mix(s);
            (s >> 56) as u8
        })
        .collect();
    Rgb { width, height, data }
}
