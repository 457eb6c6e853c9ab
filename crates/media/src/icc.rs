//! A Display P3 ICC profile, for photos whose colour space is signalled by an `nclx` box (HEIF,
//! AVIF) rather than by an embedded profile. Without it the outputs, written as plain JPEG, would
//! be read as sRGB and look desaturated.
//!
//! ICC v4.3 display profile: D65 white adapted to the D50 PCS (Bradford `chad`), P3 colorants,
//! and the sRGB transfer curve as a parametric curve (type 3), which is how Display P3 is
//! defined. Built from constants, so the bytes never change.

/// s15Fixed16Number, big-endian.
fn s15(v: f64) -> [u8; 4] {
    ((v * 65536.0).round() as i32).to_be_bytes()
}

fn xyz(x: f64, y: f64, z: f64) -> Vec<u8> {
    let mut t = b"XYZ \0\0\0\0".to_vec();
    for v in [x, y, z] {
        t.extend_from_slice(&s15(v));
    }
    t
}

fn mluc(text: &str) -> Vec<u8> {
    let utf16: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    let mut t = b"mluc\0\0\0\0".to_vec();
    t.extend_from_slice(&1u32.to_be_bytes()); // one record
    t.extend_from_slice(&12u32.to_be_bytes()); // record size
    t.extend_from_slice(b"enUS");
    t.extend_from_slice(&(utf16.len() as u32).to_be_bytes());
    t.extend_from_slice(&28u32.to_be_bytes()); // string offset from the tag's start
    t.extend_from_slice(&utf16);
    t
}

/// The sRGB curve: Y = ((aX + b)^g for X ≥ d, cX below.
fn srgb_para() -> Vec<u8> {
    let mut t = b"para\0\0\0\0".to_vec();
    t.extend_from_slice(&[0, 3, 0, 0]);
    for v in [2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045] {
        t.extend_from_slice(&s15(v));
    }
    t
}

/// The Display P3 profile's bytes.
pub(crate) fn display_p3() -> Vec<u8> {
    let trc = srgb_para();
    let mut chad = b"sf32\0\0\0\0".to_vec();
    // Bradford adaptation D65 → D50.
    for v in [1.047882, 0.022918, -0.050217, 0.029586, 0.990478, -0.017075, -0.009247, 0.015075, 0.751678] {
        chad.extend_from_slice(&s15(v));
    }
    // (signature, data); the three TRC tags share one data block.
    let tags: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"desc", mluc("Display P3")),
        (b"cprt", mluc("No copyright, use freely")),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"chad", chad),
        // P3 primaries with a D65 white, Bradford-adapted to D50 (each column sums to the PCS white).
        (b"rXYZ", xyz(0.515121, 0.241196, -0.001053)),
        (b"gXYZ", xyz(0.291977, 0.692245, 0.041885)),
        (b"bXYZ", xyz(0.157104, 0.066574, 0.784073)),
        (b"rTRC", trc),
    ];
    let table_len = 4 + 12 * (tags.len() + 2);
    let mut data = Vec::new();
    let mut table = Vec::new();
    let mut trc_at = (0u32, 0u32);
    let base = 128 + table_len;
    for (sig, body) in &tags {
        let at = (base + data.len()) as u32;
        table.push((**sig, at, body.len() as u32));
        if *sig == b"rTRC" {
            trc_at = (at, body.len() as u32);
        }
        data.extend_from_slice(body);
        while !data.len().is_multiple_of(4) {
            data.push(0);
        }
    }
    table.push((*b"gTRC", trc_at.0, trc_at.1));
    table.push((*b"bTRC", trc_at.0, trc_at.1));

    let size = (base + data.len()) as u32;
    let mut p = Vec::with_capacity(size as usize);
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&[0; 4]); // preferred CMM
    p.extend_from_slice(&[4, 0x30, 0, 0]); // version 4.3
    p.extend_from_slice(b"mntrRGB XYZ ");
    // Creation date, fixed: 2026-01-01 00:00:00.
    for v in [2026u16, 1, 1, 0, 0, 0] {
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.extend_from_slice(b"acsp");
    p.extend_from_slice(&[0; 4 + 4 + 4 + 4 + 8]); // platform, flags, manufacturer, model, attributes
    p.extend_from_slice(&0u32.to_be_bytes()); // perceptual intent
    for v in [0.9642, 1.0, 0.8249] {
        p.extend_from_slice(&s15(v));
    }
    p.extend_from_slice(&[0; 4]); // creator
    p.extend_from_slice(&[0; 16]); // profile ID (optional)
    p.extend_from_slice(&[0; 28]); // reserved
    debug_assert_eq!(p.len(), 128);
    p.extend_from_slice(&(table.len() as u32).to_be_bytes());
    for (sig, at, len) in table {
        p.extend_from_slice(&sig);
        p.extend_from_slice(&at.to_be_bytes());
        p.extend_from_slice(&len.to_be_bytes());
    }
    p.extend_from_slice(&data);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_p3_is_a_well_formed_rgb_profile() {
        let p = display_p3();
        assert!(crate::jpeg_meta::icc_matches(&p, false));
        assert!(p.len().is_multiple_of(4));
        let count = u32::from_be_bytes([p[128], p[129], p[130], p[131]]) as usize;
        assert_eq!(count, 10);
        for i in 0..count {
            let e = &p[132 + 12 * i..144 + 12 * i];
            let at = u32::from_be_bytes([e[4], e[5], e[6], e[7]]) as usize;
            let len = u32::from_be_bytes([e[8], e[9], e[10], e[11]]) as usize;
            assert!(at.is_multiple_of(4) && at + len <= p.len(), "tag {i} out of bounds");
        }
        // The colorants sum to the D50 white (the adaptation is consistent).
        let sum: [f64; 3] =
            [0.515121 + 0.291977 + 0.157104, 0.241196 + 0.692245 + 0.066574, -0.001053 + 0.041885 + 0.784073];
        for (s, w) in sum.iter().zip([0.9642, 1.0, 0.8249]) {
            assert!((s - w).abs() < 1e-3);
        }
        assert_eq!(display_p3(), p, "deterministic");
    }
}
