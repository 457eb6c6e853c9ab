//! JPEG marker-segment reading (Exif orientation, ICC profile) and ICC re-embedding.
//!
//! Only what the photo pipeline needs is read; everything else in the source's metadata
//! (Exif, GPS, XMP, comments, maker notes) is simply never copied, because the outputs are
//! re-encoded from pixels. A malformed segment ends the walk quietly: broken metadata must
//! never fail a photo.

/// What we keep from a JPEG's header segments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct JpegMeta {
    /// EXIF orientation 1..=8 (1 when absent or unreadable).
    pub orientation: u8,
    /// The reassembled ICC profile from `APP2 ICC_PROFILE` chunks, when complete and consistent.
    pub icc: Option<Vec<u8>>,
}

const ICC_SIG: &[u8] = b"ICC_PROFILE\0";
/// Data bytes per APP2 chunk: 65535 − 2 (length) − 12 (signature) − 2 (sequence, count).
const ICC_CHUNK: usize = 65519;

/// Walks the marker segments up to the first SOS.
pub(crate) fn read_jpeg_meta(bytes: &[u8]) -> JpegMeta {
    let mut meta = JpegMeta { orientation: 1, icc: None };
    let mut exif_seen = false;
    let mut icc_chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut at = 2usize;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            break;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0x01 || (0xD0..=0xD8).contains(&marker) {
            at += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let Some(len) = bytes.get(at + 2..at + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
            break;
        };
        if len < 2 {
            break;
        }
        let Some(seg) = bytes.get(at + 4..at + 2 + len) else { break };
        match marker {
            0xE1 if !exif_seen && seg.starts_with(b"Exif\0\0") => {
                exif_seen = true;
                if let Some(o) = image::metadata::Orientation::from_exif_chunk(&seg[6..]) {
                    meta.orientation = o.to_exif();
                }
            }
            0xE2 if seg.len() > 14 && seg.starts_with(ICC_SIG) => {
                icc_chunks.push((seg[12], seg[13], &seg[14..]));
            }
            _ => {}
        }
        at += 2 + len;
    }
    meta.icc = assemble_icc(&mut icc_chunks);
    meta
}

/// A copy of the JPEG without its APP2 `ICC_PROFILE` segments (those before the first SOS), or
/// `None` when the segment walk does not reach an SOS. For files whose profile segments
/// libjpeg-turbo refuses while reading the header ("bad ICC marker": a zero sequence number, a
/// count that disagrees, a chunk after SOF in some writers' files): the picture itself is intact,
/// and a profile that cannot be read is dropped, never a reason to refuse the photo.
pub(crate) fn without_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..2)?);
    let mut at = 2usize;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            out.push(0xFF);
            at += 1;
            continue;
        }
        if marker == 0xDA {
            out.extend_from_slice(&bytes[at..]);
            return Some(out);
        }
        if marker == 0x01 || (0xD0..=0xD9).contains(&marker) {
            out.extend_from_slice(&bytes[at..at + 2]);
            at += 2;
            continue;
        }
        let len = bytes.get(at + 2..at + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)?;
        let seg = bytes.get(at..at + 2 + len)?;
        if !(marker == 0xE2 && seg.get(4..).is_some_and(|p| p.starts_with(ICC_SIG))) {
            out.extend_from_slice(seg);
        }
        at += 2 + len;
    }
    None
}

/// Chunks must be numbered 1..=count exactly once each with one shared count; otherwise the
/// profile is unusable and dropped.
fn assemble_icc(chunks: &mut [(u8, u8, &[u8])]) -> Option<Vec<u8>> {
    let count = chunks.first()?.1;
    if count == 0 || chunks.len() != count as usize || chunks.iter().any(|c| c.1 != count) {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    if chunks.iter().enumerate().any(|(i, c)| c.0 as usize != i + 1) {
        return None;
    }
    Some(chunks.iter().flat_map(|c| c.2.iter().copied()).collect())
}

/// Whether an ICC profile describes the colour space of the pixels we write: `RGB ` for colour
/// output, `GRAY` for greyscale output. A CMYK profile on RGB pixels would be worse than none.
pub(crate) fn icc_matches(icc: &[u8], gray: bool) -> bool {
    if icc.len() < 132 || &icc[36..40] != b"acsp" {
        return false;
    }
    let declared = u32::from_be_bytes([icc[0], icc[1], icc[2], icc[3]]) as usize;
    if declared != icc.len() {
        return false;
    }
    &icc[16..20] == if gray { b"GRAY" } else { b"RGB " }
}

/// Inserts `icc` as APP2 `ICC_PROFILE` chunks after SOI (and after a JFIF APP0 that directly
/// follows it, which must stay first). Returns the input unchanged if it needs > 255 chunks.
pub(crate) fn embed_icc(jpeg: Vec<u8>, icc: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = icc.chunks(ICC_CHUNK).collect();
    if chunks.is_empty() || chunks.len() > 255 || jpeg.len() < 4 || jpeg[..2] != [0xFF, 0xD8] {
        return jpeg;
    }
    let mut insert_at = 2;
    if jpeg[2..4] == [0xFF, 0xE0] {
        if let Some(l) = jpeg.get(4..6) {
            insert_at = (4 + u16::from_be_bytes([l[0], l[1]]) as usize).min(jpeg.len());
        }
    }
    let mut out = Vec::with_capacity(jpeg.len() + icc.len() + chunks.len() * 18);
    out.extend_from_slice(&jpeg[..insert_at]);
    let count = chunks.len() as u8;
    for (i, chunk) in chunks.iter().enumerate() {
        let len = (2 + ICC_SIG.len() + 2 + chunk.len()) as u16;
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(ICC_SIG);
        out.push(i as u8 + 1);
        out.push(count);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&jpeg[insert_at..]);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A syntactically valid (not colour-meaningful) ICC profile of `len` bytes.
    pub(crate) fn fake_icc(len: usize, space: &[u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[..4].copy_from_slice(&(len as u32).to_be_bytes());
        p[16..20].copy_from_slice(space);
        p[36..40].copy_from_slice(b"acsp");
        for (i, b) in p.iter_mut().enumerate().skip(128) {
            *b = (i % 251) as u8;
        }
        p
    }

    #[test]
    fn icc_round_trip_multi_chunk() {
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9];
        let icc = fake_icc(150_000, b"RGB ");
        let out = embed_icc(jpeg.clone(), &icc);
        // JFIF APP0 stays first.
        assert_eq!(&out[2..4], &[0xFF, 0xE0]);
        assert_eq!(&out[8..10], &[0xFF, 0xE2]);
        let meta = read_jpeg_meta(&out);
        assert_eq!(meta.icc.as_deref(), Some(&icc[..]));
        assert!(icc_matches(&icc, false) && !icc_matches(&icc, true));
    }

    #[test]
    fn broken_segments_are_ignored() {
        // APP1 claiming more bytes than exist, bad Exif, incomplete ICC set.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x0A];
        j.extend_from_slice(b"Exif\0\0MM\0");
        let meta = read_jpeg_meta(&j);
        assert_eq!(meta, JpegMeta { orientation: 1, icc: None });
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE2, 0x00, 0x12];
        j.extend_from_slice(b"ICC_PROFILE\0");
        j.extend_from_slice(&[1, 2, 9, 9]); // chunk 1 of 2 only
        assert_eq!(read_jpeg_meta(&j).icc, None);
    }
}
