//! What the sandbox costs per item: the same photo work in a fresh sandbox child versus on a
//! thread of this process (the peer), medians over many runs. This bench binary is its own fork
//! server (it answers to `SERVER_ARG` as the `mediagate` binary does). Run with `make bench`.

use mediagate_testkit::timing::median;
use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediagate_media::MediaSettings;
use mediagate_sandbox::{server, Admit, ChildLimits, Request, Sandbox, SandboxConfig, Task, SERVER_ARG};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, ((x ^ y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode jpeg");
    out.into_inner()
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(SERVER_ARG) {
        return server::serve(&args[1..]);
    }
    if args.iter().any(|a| a == "--list") {
        println!("roundtrip: bench");
        return std::process::ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let sandbox = Sandbox::new(SandboxConfig::process(std::env::current_exe().expect("exe"), 1, &[])).expect("sandbox");
    rt.block_on(sandbox.warm_up()).expect("warm up");
    println!("== sandbox round trip (fork server child vs in-process), medians ==");
    for (label, w, h, runs) in
        [("640x480 JPEG", 640, 480, 60), ("1600x1200 JPEG", 1600, 1200, 30), ("4000x3000 JPEG", 4000, 3000, 12)]
    {
        let bytes = input(jpeg(w, h));
        let task = Task { admit: Admit::Visual, settings: MediaSettings::default(), classify: false };
        let request = Request {
            job_id: "bench".into(),
            item_id: "0".into(),
            task: task.clone(),
            limits: ChildLimits { memory_bytes: 2 << 30, cpu_seconds: 120, file_bytes: 1 << 30 },
        };
        let mut local = Vec::new();
        let mut sandboxed = Vec::new();
        let mut inside = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let (r, _) = mediagate_sandbox::execute(&task, &bytes, &mut |_| ());
            r.expect("in-process");
            local.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let report =
                rt.block_on(sandbox.run(request.clone(), bytes.clone(), Duration::from_secs(60))).expect("sandboxed");
            sandboxed.push(t.elapsed().as_secs_f64() * 1e3);
            inside.push(report.stats.work.as_secs_f64() * 1e3);
            report.result.expect("sandboxed result");
        }
        let (l, s, i) = (median(&local), median(&sandboxed), median(&inside));
        println!(
            "{label}: in a sandbox child {s:.2} ms (work inside {i:.2} ms, round trip {:.2} ms) vs in-process {l:.2} ms: {:.2}x",
            s - i,
            s / l
        );
    }
    // What the nudity filter's preparation adds to a 12 MP photo in the sandbox's work: the
    // shared decode (one decode feeds both) against decoding the original a second time.
    let bytes = jpeg(4000, 3000);
    let settings = MediaSettings::default();
    let time = |f: &dyn Fn()| {
        median(
            &(0..9)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect::<Vec<f64>>(),
        )
    };
    let plain = time(&|| {
        mediagate_media::process_photo(&bytes, &settings).expect("photo");
    });
    let shared = time(&|| {
        let (result, _) = mediagate_sandbox::execute(
            &Task { admit: Admit::Visual, settings: settings.clone(), classify: true },
            &bytes,
            &mut |_| (),
        );
        result.expect("photo with tensor");
    });
    let twice = time(&|| {
        mediagate_media::process_photo(&bytes, &settings).expect("photo");
        let img = mediagate_classify::decode_like_pillow(&bytes).expect("decode");
        mediagate_classify::preprocess(img.width, img.height, &img.pixels).expect("tensor");
    });
    println!(
        "4000x3000 JPEG, classifier input included: one shared decode {shared:.1} ms vs decoding twice {twice:.1} ms ({:.2}x); \
         the photo alone {plain:.1} ms, so the filter's preparation adds {:.1} ms (was {:.1})",
        twice / shared,
        shared - plain,
        twice - plain
    );
    std::process::ExitCode::SUCCESS
}

/// Bytes in a sealed memfd, as the worker hands them over.
fn input(bytes: Vec<u8>) -> Arc<mediagate_sandbox::Input> {
    Arc::new(mediagate_sandbox::Input::copy_of(&bytes).expect("a memfd for the input"))
}
