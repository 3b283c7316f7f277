//! The `privinfer` binary: private prediction in the demo, and one-line errors with a non-zero
//! exit for bad input.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_privinfer"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Asserts a failed run with exactly one line on stderr that contains `needle`.
fn one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail; stderr: {err}");
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn demo_prints_a_private_prediction_equal_to_the_plaintext_one() {
    let out = bin().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pick = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|s| s.trim().to_string())
            .unwrap()
    };
    assert_eq!(pick("private prediction:"), pick("plaintext prediction:"));
    assert!(stdout.contains("WAN estimate"));
}

/// Starts `privinfer serve` on an ephemeral port and returns the child and its address.
fn serve(extra: &[&str]) -> (std::process::Child, String) {
    let mut child = bin()
        .args(["serve", "--model"])
        .arg(repo().join("models/resnet20.onnx"))
        .args(["--listen", "127.0.0.1:0", "--timeout", "5"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split(" on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    (child, addr)
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let tmp = std::env::temp_dir().join(format!("privinfer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let not_image = tmp.join("notes.png");
    std::fs::write(&not_image, b"this is not a PNG").unwrap();

    // Unreachable server (nothing listens on port 1).
    let out = bin()
        .args(["infer", "--connect", "127.0.0.1:1", "--image"])
        .arg(repo().join("models/samples/cifar10_00_3.png"))
        .output()
        .unwrap();
    one_line_error(&out, "127.0.0.1:1");
    // A file that is no image.
    let out = bin()
        .args(["infer", "--connect", "127.0.0.1:1", "--image"])
        .arg(&not_image)
        .output()
        .unwrap();
    one_line_error(&out, "notes.png");
    // A missing model and a non-ONNX model.
    let out = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "/nonexistent.onnx",
        ])
        .output()
        .unwrap();
    one_line_error(&out, "nonexistent.onnx");
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(&not_image)
        .output()
        .unwrap();
    one_line_error(&out, "notes.png");
    // A planning round trip that is no duration.
    let out = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--plan-rtt-ms=-5",
            "--model",
        ])
        .arg(repo().join("models/resnet20.onnx"))
        .output()
        .unwrap();
    one_line_error(&out, "--plan-rtt-ms");

    let (mut server, addr) = serve(&["--max-clients", "4"]);
    // Port in use.
    let out = bin()
        .args(["serve", "--listen", &addr, "--model"])
        .arg(repo().join("models/resnet20.onnx"))
        .output()
        .unwrap();
    one_line_error(&out, "cannot listen on");
    // Another image size: a 64×64 image for a 32×32 model is refused with --no-resize...
    let big = tmp.join("big.png");
    image_64(&big);
    let out = bin()
        .args(["infer", "--no-resize", "--connect", &addr, "--image"])
        .arg(&big)
        .output()
        .unwrap();
    one_line_error(&out, "[1, 3, 32, 32]");
    // ... and resized (saying so) without it.
    let out = bin()
        .args(["infer", "--json", "--connect", &addr, "--image"])
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("resized 64×64 to 32×32 (bilinear) and centre-cropped"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["label"].as_u64().unwrap() < 10);
    // Digest mismatch.
    let out = bin()
        .args([
            "infer",
            "--connect",
            &addr,
            "--expect-digest",
            &"ab".repeat(32),
            "--image",
        ])
        .arg(repo().join("models/samples/cifar10_00_3.png"))
        .output()
        .unwrap();
    one_line_error(&out, "digest mismatch");
    // The server is still serving: a good client gets the right label.
    let out = bin()
        .args(["infer", "--json", "--connect", &addr, "--image"])
        .arg(repo().join("models/samples/cifar10_01_8.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["label"], 8);
    assert!(server.wait().unwrap().success());
    std::fs::remove_dir_all(&tmp).ok();
}

/// `serve --memory-budget` below one session is refused at start with the sizes; a busy server
/// makes `infer --retry` wait as told and try again until it is served.
#[test]
fn memory_budget_and_busy_retries() {
    let out = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--memory-budget",
            "1M",
            "--model",
        ])
        .arg(repo().join("models/resnet20.onnx"))
        .output()
        .unwrap();
    one_line_error(&out, "memory budget of 1 MiB is below");
    let out = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--memory-budget",
            "12Q",
            "--model",
        ])
        .arg(repo().join("models/resnet20.onnx"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown size suffix"));

    // One slot and no queue: the second client is refused as busy until the first is done.
    let (mut server, addr) = serve(&["--max-sessions", "1", "--max-queue", "0"]);
    let image = repo().join("models/samples/cifar10_01_8.png");
    let first = bin()
        .args(["infer", "--json", "--connect", &addr, "--image"])
        .arg(&image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = bin()
        .args([
            "infer",
            "--json",
            "--retry",
            "4",
            "--connect",
            &addr,
            "--image",
        ])
        .arg(&image)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("server busy (1 running, 0 waiting (queue limit 0)); retry 1 of 4 in"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["label"], 8);
    assert!(first.wait_with_output().unwrap().status.success());
    server.kill().ok();
    server.wait().ok();
}

/// Writes a 64×64 PNG (a valid image of the wrong size).
fn image_64(path: &std::path::Path) {
    let (rgb, _, _) =
        nn::data::read_image_rgb(repo().join("models/samples/cifar10_00_3.png")).unwrap();
    let mut img = image::RgbImage::new(64, 64);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let (i, j) = ((y / 2) as usize, (x / 2) as usize);
        *p = image::Rgb([
            rgb[i * 32 + j],
            rgb[1024 + i * 32 + j],
            rgb[2048 + i * 32 + j],
        ]);
    }
    img.save(path).unwrap();
}

/// `bench linear --net`: the layer runs over the emulated link (its JSON lines name it, the output
/// is still exact, and its wall time is at least what the link alone takes), and a bad link spec is
/// a one-line error.
#[test]
fn bench_linear_over_an_emulated_link() {
    let out = bin()
        .args([
            "bench", "linear", "--model", "resnet20", "--limit", "1", "--net", "80:10", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = lines.iter().find(|v| v.get("layer").is_some()).unwrap();
    assert_eq!(row["net"], "80:10");
    assert_eq!(row["exact"], true);
    // ResNet-20's conv1 is one query ciphertext answered in one round: the response cannot leave
    // before the query has arrived, so at least one round trip (10 ms) plus every measured byte at
    // 80 Mbit/s; compute comes on top.
    let bytes = row["bytes_c2s"].as_f64().unwrap() + row["bytes_s2c"].as_f64().unwrap();
    let floor_ms = 10.0 + bytes * 8.0 / 80e6 * 1e3;
    let ms = row["ms"].as_f64().unwrap();
    assert!(ms >= floor_ms - 0.5, "{ms} ms < {floor_ms} ms");
    assert_eq!(lines.last().unwrap()["total"]["net"], "80:10");

    let out = bin()
        .args(["bench", "linear", "--model", "resnet20", "--net", "fast"])
        .output()
        .unwrap();
    one_line_error(&out, "\"fast\"");
}
