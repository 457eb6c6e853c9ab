//! Magic-byte sniffing: a bounded walk over the first bytes (and ISO-BMFF boxes / EBML elements).
//! Must never panic, and must agree with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediagate_media::{ogg_codec, sniff, Format, OggCodec};

fuzz_target!(|data: &[u8]| {
    let format = sniff(data);
    let codec = ogg_codec(data);
    if let Some(f) = format {
        // Every recognised format has its names, and the call is deterministic.
        let _ = (f.media_class().as_str(), f.ext(), f.mime(), f.name(), f.is_supported_photo());
        assert_eq!(sniff(data), Some(f));
    }
    match format {
        Some(Format::Ogv) => assert_eq!(codec, Some(OggCodec::Theora)),
        Some(Format::Ogg) => assert_ne!(codec, Some(OggCodec::Theora)),
        _ => {}
    }
    if codec.is_some() {
        assert!(data.starts_with(b"OggS"));
    }
});
