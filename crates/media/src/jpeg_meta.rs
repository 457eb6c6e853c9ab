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

/// One step of a walk over a JPEG's header, as libjpeg-turbo's `next_marker` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A marker segment: its marker, where its `FF` is, and the whole segment (`FF`, marker,
    /// length and payload; fill bytes before it not included).
    Segment { marker: u8, at: usize, end: usize },
    /// A marker without a length (RSTn, TEM, SOI, EOI) at `at`, two bytes.
    Standalone { marker: u8, at: usize },
    /// Start of scan at `at`: the header ends here.
    Scan { at: usize },
}

/// The header's segments up to the first SOS, skipping what libjpeg-turbo skips with its
/// "extraneous bytes before marker" warning: bytes that are not `FF` between segments, and `FF 00`
/// pairs. Fill `FF`s before a marker are legal and skipped silently. Yields `(junk, step)`:
/// the bytes skipped before the step. Ends (with `None`) where a segment's length runs past the
/// data or is below 2; libjpeg refuses those itself.
fn walk(bytes: &[u8]) -> impl Iterator<Item = (usize, Step)> + '_ {
    let mut at = 2usize;
    let mut done = bytes.len() < 2;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut junk = 0usize;
        loop {
            let ff = at + bytes.get(at..)?.iter().position(|&b| b == 0xFF)?;
            junk += ff - at;
            let mut m = ff + 1;
            while *bytes.get(m)? == 0xFF {
                m += 1;
            }
            let marker = bytes[m];
            if marker == 0x00 {
                junk += m + 1 - ff;
                at = m + 1;
                continue;
            }
            let marker_at = m - 1;
            let step = match marker {
                0xDA => {
                    done = true;
                    Step::Scan { at: marker_at }
                }
                0x01 | 0xD0..=0xD9 => {
                    at = m + 1;
                    done = marker == 0xD9; // EOI before any scan: nothing of the image follows
                    Step::Standalone { marker, at: marker_at }
                }
                _ => {
                    let len = bytes.get(m + 1..m + 3).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize)?;
                    if len < 2 || m + 1 + len > bytes.len() {
                        done = true;
                        return None;
                    }
                    at = m + 1 + len;
                    Step::Segment { marker, at: marker_at, end: at }
                }
            };
            return Some((junk, step));
        }
    })
}

/// Walks the marker segments up to the first SOS.
pub(crate) fn read_jpeg_meta(bytes: &[u8]) -> JpegMeta {
    let mut meta = JpegMeta { orientation: 1, icc: None };
    let mut exif_seen = false;
    let mut icc_chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    for (_, step) in walk(bytes) {
        let Step::Segment { marker, at, end } = step else { continue };
        let seg = &bytes[at + 4..end];
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
    }
    meta.icc = assemble_icc(&mut icc_chunks);
    meta
}

/// The header as libjpeg-turbo reads it, rewritten: a copy of the JPEG without the bytes its
/// header reader skips ("N extraneous bytes before marker"), and with `drop_icc` also without its
/// APP2 `ICC_PROFILE` segments. Returns the copy and how many junk bytes it left out, or `None`
/// when the walk does not reach an SOS.
///
/// Why: libjpeg-turbo reports both as problems while reading the header, and the `turbojpeg`
/// crate turns its warnings into errors, although the picture is intact. Junk between segments is
/// a warning libjpeg recovers from by skipping it, which is what this does beforehand; once gone,
/// the warning cannot hide a later one (libjpeg records only the first warning of a call, and a
/// truncation is also only a warning). Profile segments that libjpeg refuses ("bad ICC marker":
/// a zero sequence number, a count that disagrees, a chunk after SOF in some writers' files) are
/// dropped: a profile that cannot be read is never a reason to refuse the photo.
pub(crate) fn rewrite_header(bytes: &[u8], drop_icc: bool) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..2)?);
    let mut skipped = 0usize;
    for (junk, step) in walk(bytes) {
        skipped += junk;
        match step {
            Step::Scan { at } => {
                out.extend_from_slice(&bytes[at..]);
                return Some((out, skipped));
            }
            Step::Standalone { marker, .. } => out.extend_from_slice(&[0xFF, marker]),
            Step::Segment { marker, at, end } => {
                let icc = marker == 0xE2 && bytes[at + 4..end].starts_with(ICC_SIG);
                if !(drop_icc && icc) {
                    out.extend_from_slice(&bytes[at..end]);
                }
            }
        }
    }
    None
}

/// Whether an EOI marker follows the first SOS: entropy-coded data never contains `FF D9`
/// (a data `FF` is stuffed as `FF 00`), so a file without one after its scan is cut short.
pub(crate) fn has_eoi_after_scan(bytes: &[u8]) -> bool {
    let Some(scan) = walk(bytes).find_map(|(_, s)| match s {
        Step::Scan { at } => Some(at),
        _ => None,
    }) else {
        return false;
    };
    bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
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

    /// `FF D8`, then `segments` with `junk` in front of each, then a scan and EOI.
    fn jpeg_with_junk(segments: &[&[u8]], junk: &[u8]) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        for s in segments {
            j.extend_from_slice(junk);
            j.extend_from_slice(s);
        }
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD9]);
        j
    }

    #[test]
    fn junk_between_segments_is_skipped_as_libjpeg_skips_it() {
        let mut exif = vec![0xFF, 0xE1, 0x00, 0x00];
        exif.extend_from_slice(b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0");
        let l = (exif.len() - 2) as u16;
        exif[2..4].copy_from_slice(&l.to_be_bytes());
        let dqt: &[u8] = &[0xFF, 0xDB, 0x00, 0x04, 0x00, 0x01];
        let clean = jpeg_with_junk(&[&exif, dqt], b"");
        assert_eq!(read_jpeg_meta(&clean).orientation, 6);
        assert_eq!(rewrite_header(&clean, false), Some((clean.clone(), 0)));

        // Text, an FF 00 pair and fill bytes: the first two are junk, fill is not.
        for junk in [&b"hello"[..], &[0xFF, 0x00][..], &[0x04, 0x06, 0xFF, 0x00, 0x07][..], &[0xFF, 0xFF][..]] {
            let dirty = jpeg_with_junk(&[&exif, dqt], junk);
            assert_eq!(read_jpeg_meta(&dirty).orientation, 6, "junk {junk:02x?}");
            let (rewritten, skipped) = rewrite_header(&dirty, false).unwrap();
            assert_eq!(rewritten, clean, "junk {junk:02x?}");
            let expected = if junk == [0xFF, 0xFF] { 0 } else { 2 * junk.len() };
            assert_eq!(skipped, expected, "junk {junk:02x?}");
            assert!(has_eoi_after_scan(&dirty));
        }
        // The scan is copied as it is, junk and all: only the header is rewritten.
        let mut cut = clean.clone();
        cut.truncate(clean.len() - 2);
        assert!(!has_eoi_after_scan(&cut));
        assert_eq!(rewrite_header(&cut, false).unwrap().0, cut);
        // A segment longer than the data ends the walk: libjpeg refuses that itself.
        assert_eq!(rewrite_header(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x40, 1, 2], false), None);
    }
}
