//! Images of other sizes and modes are fitted to the model input as the toolkit does: the
//! oracle is PIL's output of python/privinfer_models/data.py `fit_image`, committed as fixtures
//! (`write_fit_fixtures` there).

use std::path::PathBuf;

use privinfer_nn::data::{self, Resize};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fit")
}

#[test]
fn fitted_images_match_pil_within_two_levels() {
    for name in [
        "rgb_45x37",
        "gray_40x64",
        "rgba_50x50",
        "rgb_200x120",
        "rgb_17x17",
    ] {
        let png = fixtures().join(format!("{name}.png"));
        let want = std::fs::read(fixtures().join(format!("{name}.fit32.bin"))).unwrap();
        let (rgb, h, w) = data::read_image_rgb(&png).unwrap();
        let (got, fit) = data::fit_planar(&rgb, h, w, 32, 32);
        let fit = fit.expect("a different size is fitted");
        assert_eq!(fit.from, (h, w));
        assert_eq!(got.len(), want.len());
        let diffs: Vec<i32> = got
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        assert!(max <= 2 && mean < 0.5, "{name}: max {max}, mean {mean}");
        // Through the loader, normalized like any input.
        let (x, fit2) = data::load_image_as(&png, 32, 32, Resize::Fit).unwrap();
        assert_eq!(fit2, Some(fit));
        assert_eq!(x, data::normalize_chw(&got));
    }
}

#[test]
fn covering_size_and_crop_follow_the_toolkit_rule() {
    // Wider than tall: height to 32, width ⌊32·200/120⌋ = 53, crop left round(21/2) = 10 (even).
    let rgb = vec![9u8; 3 * 120 * 200];
    let (_, fit) = data::fit_planar(&rgb, 120, 200, 32, 32);
    let fit = fit.unwrap();
    assert_eq!((fit.scaled, fit.top, fit.left), ((32, 53), 0, 10));
    // Taller: width to 32, height ⌊32·64/40⌋ = 51, crop top round(19/2) = 10 (halves to even).
    let (_, fit) = data::fit_planar(&vec![0u8; 3 * 64 * 40], 64, 40, 32, 32);
    assert_eq!(fit.unwrap().scaled, (51, 32));
    assert_eq!(fit.unwrap().top, 10);
    // Equal size: untouched.
    let rgb: Vec<u8> = (0..3 * 32 * 32).map(|i| i as u8).collect();
    assert_eq!(data::fit_planar(&rgb, 32, 32, 32, 32), (rgb, None));
    // A constant image stays constant.
    let (got, _) = data::fit_planar(&vec![77u8; 3 * 10 * 13], 10, 13, 32, 32);
    assert!(got.iter().all(|&v| v == 77));
}

#[test]
fn strict_mode_refuses_other_sizes_with_a_clear_error() {
    let png = fixtures().join("rgb_45x37.png");
    let e = data::load_image_as(&png, 32, 32, Resize::Strict).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("45") && msg.contains("37") && msg.contains("32"),
        "{msg}"
    );
}
