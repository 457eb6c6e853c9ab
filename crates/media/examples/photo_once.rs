//! One photo through `process_photo`, `N` times (default 1), for a profiler:
//! `valgrind --tool=callgrind target/release/examples/photo_once FILE [N]` counts the
//! instructions of each step (decode, colour conversion, resize, encodes, BlurHash, PDQ), which
//! a busy machine does not change, unlike wall time. `make profile-photo` runs it on the photo
//! bench's 12 MP JPEG and prints the functions that cost the most.

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: photo_once FILE [N]");
        return std::process::ExitCode::from(2);
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("photo_once: cannot read {path}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let settings = mediagate_media::MediaSettings::default();
    for _ in 0..n {
        match mediagate_media::process_photo(&bytes, &settings) {
            Ok(out) => {
                std::hint::black_box(out);
            }
            Err(e) => {
                eprintln!("photo_once: {path}: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
