fn main() {
    let (w, h) = (4032u32, 3024u32);
    let mut x = 1u32;
    let rgb: Vec<u8> = (0..w as usize * h as usize * 3).map(|i| { x = x.wrapping_mul(1664525).wrapping_add(1013904223); ((i % 4032) as u32 / 16 + (x >> 28)) as u8 }).collect();
    let t = std::time::Instant::now();
    for _ in 0..20 { std::hint::black_box(mediagate_hash::pdq_rgb(w, h, &rgb).unwrap()); }
    println!("{:?} per hash", t.elapsed() / 20);
    let luma: Vec<f32> = rgb.chunks(3).map(|p| p[0] as f32).collect();
    let t = std::time::Instant::now();
    for _ in 0..20 { std::hint::black_box(mediagate_hash::pdq_luma(w, h, luma.clone()).unwrap()); }
    println!("{:?} per luma hash (incl clone)", t.elapsed() / 20);
}
