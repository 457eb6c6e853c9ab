//! The video filter chain: scale, range, pixel format and rotation through libavfilter.

use super::*;

/// `buffer → scale(+range) → format=yuv420p → rotation → setsar=1 → buffersink`.
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
        let spec = format!(
            "scale=w={}:h={}:flags=bicubic:out_range=tv,format=yuv420p{rot},setsar=1",
            plan.scaled.0, plan.scaled.1
        );
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

    pub(super) fn pull(&mut self, out: &mut frame::Video) -> Result<bool, MediaError> {
        self.graph.pull(out)
    }
}
