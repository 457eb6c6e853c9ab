//! The video filter chain: scale, tone map, range, pixel format, frame rate and rotation through
//! libavfilter.
//!
//! - **SDR** sources: `scale` to the output size, limited range, 8-bit 4:2:0, the BT.709 matrix.
//! - **HDR** sources (PQ `smpte2084` or HLG `arib-std-b67` transfer, whatever the primaries;
//!   Dolby Vision 8.4 is read as its HLG base layer): scaled first (in their own 10-bit format, so
//!   the tone map works on the small picture), then linearised by `zscale` with 100 cd/m² as 1.0,
//!   converted to BT.709 primaries, tone-mapped with **Möbius** without desaturation, and brought
//!   back to the BT.709 transfer, matrix and limited range. Möbius is linear below its knee and
//!   compresses only what lies above it, so the SDR range of a phone's HDR clip (skin, mid-tones)
//!   keeps the levels it was mastered with and only highlights roll off. Measured on an SDR clip
//!   converted to HLG and PQ the way phones tag them (tests/av.rs), mean levels out of an SDR
//!   original at ~101: Möbius 97–99, Reinhard 91, Hable 66 (its filmic curve needs an exposure
//!   boost the CLI filter does not have), no tone map 72–77. The poster and the classifier's
//!   frames come out of this chain, so they are tone-mapped too.
//! - **Frame rate**: above [`MAX_FPS`] on average (120/240 fps slow motion), `fps` decimates to
//!   60 frames a second on the same timeline (the clip is not slowed down); at or below it,
//!   frames keep their own timestamps (variable frame rate stays variable).

use super::*;

/// The most frames a second the output has (contract §4).
pub(super) const MAX_FPS: i32 = 60;

/// Whether a frame's transfer characteristic is HDR (PQ or HLG).
pub(super) fn is_hdr(f: &frame::Video) -> bool {
    use ffmpeg::color::TransferCharacteristic as T;
    matches!(f.color_transfer_characteristic(), T::SMPTE2084 | T::ARIB_STD_B67)
}

/// The matrix an untagged frame is read with, as players read it: BT.709 for HD (1280 wide or
/// more, or taller than 576 lines), BT.601 below. swscale alone would take every untagged frame
/// as BT.601, so an untagged HD clip (most phone and screen-recorder output that does not tag
/// itself) came out with shifted colours, and the needless 601 → 709 conversion cost 15 % of a
/// 1080p transcode and made the H.264 stream 16 % bigger. Tagged frames keep their own matrix.
fn untagged_matrix(f: &frame::Video) -> &'static str {
    use ffmpeg::color::Space;
    match f.color_space() {
        Space::Unspecified | Space::Reserved if f.width() >= 1280 || f.height() > 576 => ":in_color_matrix=bt709",
        Space::Unspecified | Space::Reserved => ":in_color_matrix=bt601",
        _ => "",
    }
}

/// `buffer → scale(+range) → [tone map] → format=yuv420p → [fps] → rotation → setsar=1 → buffersink`.
pub(super) struct VideoChain {
    pub(super) graph: FilterGraph,
    pub(super) w: u32,
    pub(super) h: u32,
    pub(super) format: ffformat::Pixel,
}

impl VideoChain {
    pub(super) fn new(f: &frame::Video, plan: &Plan) -> Result<Self, MediaError> {
        let sar = f.aspect_ratio();
        let (sn, sd) =
            if sar.numerator() > 0 && sar.denominator() > 0 { (sar.numerator(), sar.denominator()) } else { (1, 1) };
        let pix: ffi::AVPixelFormat = f.format().into();
        let tb = plan.time_base;
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={sn}/{sd}",
            f.width(),
            f.height(),
            pix as i32,
            tb.numerator(),
            tb.denominator()
        );
        let rot =
            if plan.orientation.filters.is_empty() { String::new() } else { format!(",{}", plan.orientation.filters) };
        let (w, h) = plan.scaled;
        let colour = if is_hdr(f) {
            // zscale needs the matrix, primaries and range of what it linearises: a phone tags
            // them all, but a file that tags only its transfer must not make the conversion fail
            // (an error here would look like our fault and be retried), so unspecified ones are
            // taken as what HDR video uses, BT.2020 and limited range.
            use ffmpeg::color::{Primaries, Range, Space};
            let mut input = String::new();
            if matches!(f.color_space(), Space::Unspecified | Space::Reserved) {
                input.push_str(":min=bt2020nc");
            }
            if matches!(f.color_primaries(), Primaries::Unspecified | Primaries::Reserved) {
                input.push_str(":pin=bt2020:p=bt2020");
            }
            if f.color_range() == Range::Unspecified {
                input.push_str(":rin=tv");
            }
            format!(
                "scale=w={w}:h={h}:flags=bicubic,zscale=t=linear:npl=100{input},format=gbrpf32le,zscale=p=bt709,\
                 tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p"
            )
        } else {
            format!(
                "scale=w={w}:h={h}:flags=bicubic{}:out_range=tv:out_color_matrix=bt709,format=yuv420p",
                untagged_matrix(f)
            )
        };
        // Decimated on the stream's own time base, so timestamps downstream keep their meaning.
        let fps = if plan.decimate {
            format!(",fps=fps={MAX_FPS},settb=expr={}/{}", tb.numerator(), tb.denominator())
        } else {
            String::new()
        };
        let spec = format!("{colour}{fps}{rot},setsar=1");
        let graph = FilterGraph::new("video", ("buffer", &args), &spec, "buffersink")?;
        Ok(VideoChain { graph, w: f.width(), h: f.height(), format: f.format() })
    }

    pub(super) fn accepts(&self, f: &frame::Video) -> bool {
        f.width() == self.w && f.height() == self.h && f.format() == self.format
    }

    pub(super) fn push(&mut self, f: &mut frame::Video) -> Result<(), MediaError> {
        self.graph.push(f)
    }

    pub(super) fn flush(&mut self) -> Result<(), MediaError> {
        self.graph.flush()
    }

    /// The chain's next frame, tagged as what it is: BT.709 limited range, whatever the source
    /// said (FFmpeg 5.1's `scale` converts the pixels but keeps the source's tags, so an untagged
    /// source's frames were turned to RGB for the poster and the classifier with BT.601 while
    /// the H.264 stream says BT.709: not what the output shows).
    pub(super) fn pull(&mut self, out: &mut frame::Video) -> Result<bool, MediaError> {
        let got = self.graph.pull(out)?;
        if got {
            out.set_color_space(ffmpeg::color::Space::BT709);
            out.set_color_range(ffmpeg::color::Range::MPEG);
            out.set_color_primaries(ffmpeg::color::Primaries::BT709);
            out.set_color_transfer_characteristic(ffmpeg::color::TransferCharacteristic::BT709);
        }
        Ok(got)
    }
}
