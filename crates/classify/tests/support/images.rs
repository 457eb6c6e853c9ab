//! Deterministic synthetic test images for the parity test and the bench (shared with
//! `benches/classify.rs` through `#[path]`), and encoders for the file formats the reference
//! reads. Scenes are defined in fractions of the frame so one scene renders at any size.
#![allow(dead_code)]

/// xorshift32: reproducible noise without a dependency.
pub struct Rng(u32);

impl Rng {
    pub fn new(seed: u32) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u32 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        self.0 = s;
        s
    }
    /// Roughly triangular noise in [-1, 1].
    pub fn tri(&mut self) -> f32 {
        let s = self.next();
        ((s & 0xFF) as f32 + ((s >> 8) & 0xFF) as f32) / 255.0 - 1.0
    }
}

/// A scene: RGBA8 pixels, `w * h * 4` bytes.
pub struct Rgba {
    pub w: u32,
    pub h: u32,
    pub px: Vec<u8>,
}

impl Rgba {
    pub fn rgb(&self) -> Vec<u8> {
        self.px.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()
    }
}

fn render(w: u32, h: u32, seed: u32, mut f: impl FnMut(f32, f32, &mut Rng) -> [f32; 4]) -> Rgba {
    let mut rng = Rng::new(seed);
    let mut px = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
            let c = f(fx, fy, &mut rng);
            px.extend(c.map(|v| v.round().clamp(0.0, 255.0) as u8));
        }
    }
    Rgba { w, h, px }
}

/// Diagonal RGB gradient: scores near 0.
pub fn gradient(w: u32, h: u32) -> Rgba {
    render(w, h, 1, |fx, fy, _| [fx * 255.0, fy * 255.0, 128.0, 255.0])
}

/// Uniform RGB noise: scores near 0.
pub fn noise(w: u32, h: u32, seed: u32) -> Rgba {
    render(w, h, seed, |_, _, r| {
        let v = r.next();
        [(v & 0xFF) as f32, ((v >> 8) & 0xFF) as f32, ((v >> 16) & 0xFF) as f32, 255.0]
    })
}

/// Smooth shapes, texture and grain, like a landscape photo (same recipe as the media bench).
pub fn photo_like(w: u32, h: u32, seed: u32) -> Rgba {
    render(w, h, seed, |fx, fy, r| {
        let base = [
            120.0 + 80.0 * (fx * 6.0 + fy * 2.0).sin() * (fy * 3.0).cos(),
            110.0 + 70.0 * (fy * 5.0 - fx * 3.0).sin(),
            100.0 + 60.0 * ((fx + fy) * 9.0).cos() * (fx * 2.0).sin(),
        ];
        let texture = 18.0 * ((fx * w as f32 * 0.21).sin() * (fy * h as f32 * 0.17).cos());
        let n = r.tri() * 20.0;
        [base[0] + texture + n, base[1] + texture + n, base[2] + texture + n, 255.0]
    })
}

/// Skin tones used by the scenes (light to dark, and a pink).
pub const SKIN: [[f32; 3]; 5] =
    [[240.0, 200.0, 170.0], [224.0, 172.0, 140.0], [198.0, 134.0, 110.0], [180.0, 120.0, 90.0], [230.0, 150.0, 150.0]];

/// A flat skin-tone field with soft central lighting and grain: mid-low scores (~0.05-0.3).
pub fn skin_field(w: u32, h: u32, skin: [f32; 3], shaded: bool, seed: u32) -> Rgba {
    render(w, h, seed, |fx, fy, r| {
        let light =
            if shaded { 0.6 + 0.4 * (-(((fx - 0.5) / 0.35).powi(2) + ((fy - 0.5) / 0.45).powi(2))).exp() } else { 1.0 };
        let n = r.tri() * 3.0;
        [skin[0] * light + n, skin[1] * light + n, skin[2] * light + n, 255.0]
    })
}

/// Skin-toned ellipses on a dark ground — a torso, two round blobs and darker spots: the
/// generated family that reaches the highest scores (0.84-0.99 depending on the tone).
/// `alpha_hole` makes the ground partly transparent (for the RGBA PNG cases).
pub fn skin_blobs(w: u32, h: u32, skin: [f32; 3], seed: u32, alpha_hole: bool) -> Rgba {
    let aspect = w as f32 / h as f32;
    render(w, h, seed, |fx, fy, r| {
        let mut c = [40.0f32, 30.0, 30.0];
        let ell = |cx: f32, cy: f32, rx: f32, ry: f32| ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2);
        for (cx, cy, rx, ry) in [(0.5, 0.55, 0.3, 0.42), (0.35, 0.4, 0.12, 0.12), (0.65, 0.4, 0.12, 0.12)] {
            let d = ell(cx, cy, rx, ry);
            let m = (1.2 - d).clamp(0.0, 1.0);
            let shade = 0.7 + 0.3 * (1.0 - d).clamp(0.0, 1.0);
            for i in 0..3 {
                c[i] = c[i] * (1.0 - m) + m * skin[i] * shade;
            }
        }
        for cx in [0.35, 0.65] {
            let d = ell(cx, 0.42, 0.025, 0.025 * aspect);
            let m = (1.5 - d).clamp(0.0, 1.0);
            for (i, v) in [150.0, 80.0, 80.0].into_iter().enumerate() {
                c[i] = c[i] * (1.0 - m) + m * v;
            }
        }
        let n = r.tri() * 2.0;
        let a = if alpha_hole {
            if fx < 0.15 || fy > 0.9 {
                0.0
            } else if fx < 0.25 {
                128.0
            } else {
                255.0
            }
        } else {
            255.0
        };
        [c[0] + n, c[1] + n, c[2] + n, a]
    })
}

/// JPEG chroma subsampling for [`jpeg`].
#[derive(Clone, Copy, Debug)]
pub enum Jpeg {
    S420,
    S444,
    S422,
    Gray,
    /// 4:2:0, progressive
    Progressive,
    /// CMYK via YCCK (Adobe marker), as print workflows produce
    Cmyk,
}

/// Encodes with libjpeg-turbo.
pub fn jpeg(img: &Rgba, quality: i32, kind: Jpeg) -> Vec<u8> {
    use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};
    let mut c = Compressor::new().expect("compressor");
    c.set_quality(quality).expect("quality");
    let (w, h) = (img.w as usize, img.h as usize);
    let rgb = img.rgb();
    let (pixels, format, subsamp): (Vec<u8>, PixelFormat, Subsamp) = match kind {
        Jpeg::S420 | Jpeg::Progressive => (rgb, PixelFormat::RGB, Subsamp::Sub2x2),
        Jpeg::S444 => (rgb, PixelFormat::RGB, Subsamp::None),
        Jpeg::S422 => (rgb, PixelFormat::RGB, Subsamp::Sub2x1),
        Jpeg::Gray => (
            rgb.chunks_exact(3)
                .map(|p| ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8)
                .collect(),
            PixelFormat::GRAY,
            Subsamp::Gray,
        ),
        Jpeg::Cmyk => {
            // naive RGB -> CMYK, stored inverted as Adobe does
            let cmyk = rgb
                .chunks_exact(3)
                .flat_map(|p| {
                    let k = 255 - p[0].max(p[1]).max(p[2]);
                    let inv = |v: u8| 255 - v;
                    let [c, m, y] = [p[0], p[1], p[2]].map(|v| {
                        if k == 255 {
                            0
                        } else {
                            ((255 - v - k) as u32 * 255 / (255 - k) as u32) as u8
                        }
                    });
                    [inv(c), inv(m), inv(y), inv(k)]
                })
                .collect();
            c.set_colorspace(turbojpeg::Colorspace::YCCK).expect("ycck");
            (cmyk, PixelFormat::CMYK, Subsamp::None)
        }
    };
    c.set_subsamp(subsamp).expect("subsamp");
    if matches!(kind, Jpeg::Progressive) {
        c.set_progressive(true).expect("progressive");
    }
    let pitch = w * format.size();
    c.compress_to_vec(Image { pixels: &pixels[..], width: w, pitch, height: h, format }).expect("encode JPEG")
}

/// PNG flavours for [`png`].
#[derive(Clone, Copy, Debug)]
pub enum Png {
    Rgb8,
    Rgba8,
    Gray8,
    GrayAlpha8,
    /// 16-bit RGB (Pillow keeps the high byte)
    Rgb16,
    /// 16-bit grey (Pillow's I;16: clipped at 255 when converted to RGB)
    Gray16,
    /// 8-bit palette of the image quantised to 6x6x6 levels, with a tRNS chunk
    Palette,
}

/// Encodes with the `png` crate (fast compression: the test is about pixels, not size).
pub fn png(img: &Rgba, kind: Png) -> Vec<u8> {
    use png::{BitDepth, ColorType};
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, img.w, img.h);
        e.set_compression(png::Compression::Fast);
        let lum = |p: &[u8]| ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8;
        let (ct, depth, data): (ColorType, BitDepth, Vec<u8>) = match kind {
            Png::Rgb8 => (ColorType::Rgb, BitDepth::Eight, img.rgb()),
            Png::Rgba8 => (ColorType::Rgba, BitDepth::Eight, img.px.clone()),
            Png::Gray8 => (ColorType::Grayscale, BitDepth::Eight, img.px.chunks_exact(4).map(lum).collect()),
            Png::GrayAlpha8 => (
                ColorType::GrayscaleAlpha,
                BitDepth::Eight,
                img.px.chunks_exact(4).flat_map(|p| [lum(p), p[3]]).collect(),
            ),
            Png::Rgb16 => (
                ColorType::Rgb,
                BitDepth::Sixteen,
                // high byte = value, low byte = something non-trivial (Pillow drops it)
                img.rgb().iter().flat_map(|&v| [v, v.wrapping_mul(37)]).collect(),
            ),
            Png::Gray16 => (
                ColorType::Grayscale,
                BitDepth::Sixteen,
                // mostly < 256 (kept by Pillow) with some larger values (clipped to 255 by Pillow)
                img.px
                    .chunks_exact(4)
                    .flat_map(|p| {
                        let v = u16::from(lum(p)) * if p[0] > 200 { 3 } else { 1 };
                        v.to_be_bytes()
                    })
                    .collect(),
            ),
            Png::Palette => {
                let q = |v: u8| (u16::from(v) * 5 + 127) / 255; // 0..=5
                let palette: Vec<u8> = (0..216u16)
                    .flat_map(|i| [(i / 36) as u8 * 51, (i / 6 % 6) as u8 * 51, (i % 6) as u8 * 51])
                    .collect();
                e.set_palette(palette);
                e.set_trns(vec![255u8; 215].into_iter().chain([0]).collect::<Vec<u8>>());
                (
                    ColorType::Indexed,
                    BitDepth::Eight,
                    img.px.chunks_exact(4).map(|p| (q(p[0]) * 36 + q(p[1]) * 6 + q(p[2])) as u8).collect(),
                )
            }
        };
        e.set_color(ct);
        e.set_depth(depth);
        let mut w = e.write_header().expect("png header");
        w.write_image_data(&data).expect("png data");
    }
    out
}
