//! Data loaders: the CIFAR-10 binary test file and PNG/JPEG images, normalized as the models
//! expect (pixels scaled to [0, 1], then per channel `(v − mean) / std`).

use std::path::Path;

use crate::error::{NnError, Result};

/// Per-channel mean of the pretrained models' normalization (RGB).
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// Per-channel standard deviation of the pretrained models' normalization (RGB).
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// CIFAR-10 class names in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const RECORD: usize = 1 + 3 * 32 * 32;

/// Normalizes planar RGB bytes (`[3, H, W]`, row-major) to the model input layout.
pub fn normalize_chw(pixels: &[u8]) -> Vec<f32> {
    let plane = pixels.len() / 3;
    pixels
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let c = i / plane;
            (p as f32 / 255.0 - MEAN[c]) / STD[c]
        })
        .collect()
}

/// The CIFAR-10 binary format: records of 1 label byte and 3,072 pixel bytes (R, G, B planes,
/// each 32×32 row-major).
pub struct Cifar10 {
    labels: Vec<u8>,
    pixels: Vec<u8>,
}

impl Cifar10 {
    /// Reads and validates a CIFAR-10 binary file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| NnError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses CIFAR-10 records; `origin` names the source in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        if bytes.len() % RECORD != 0 || bytes.is_empty() {
            return Err(NnError::CifarLength {
                path: origin.to_string(),
                len: bytes.len(),
            });
        }
        let n = bytes.len() / RECORD;
        let mut labels = Vec::with_capacity(n);
        let mut pixels = Vec::with_capacity(n * (RECORD - 1));
        for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
            if r[0] > 9 {
                return Err(NnError::CifarLabel {
                    path: origin.to_string(),
                    index: i,
                    label: r[0],
                });
            }
            labels.push(r[0]);
            pixels.extend_from_slice(&r[1..]);
        }
        Ok(Cifar10 { labels, pixels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Raw planar RGB bytes of image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        &self.pixels[i * (RECORD - 1)..(i + 1) * (RECORD - 1)]
    }

    /// Normalized image `i`, shape `[1, 3, 32, 32]` flattened.
    pub fn image(&self, i: usize) -> Vec<f32> {
        normalize_chw(self.pixels(i))
    }
}

/// Decodes a PNG or JPEG file to planar RGB bytes `[3, H, W]` and its size `(H, W)`.
pub fn read_image_rgb(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize)> {
    let path = path.as_ref();
    let img = image::open(path).map_err(|source| NnError::Image {
        path: path.display().to_string(),
        source,
    })?;
    Ok(planar_rgb(img))
}

/// Decodes PNG or JPEG bytes (named `origin` in errors) to planar RGB `[3, H, W]` and `(H, W)`.
pub fn decode_image_rgb(bytes: &[u8], origin: &str) -> Result<(Vec<u8>, usize, usize)> {
    let img = image::load_from_memory(bytes).map_err(|source| NnError::Image {
        path: origin.to_string(),
        source,
    })?;
    Ok(planar_rgb(img))
}

/// Decodes PNG or JPEG bytes of exactly `height × width` pixels to a normalized
/// `[1, 3, height, width]` input.
pub fn image_from_bytes(
    bytes: &[u8],
    origin: &str,
    height: usize,
    width: usize,
) -> Result<Vec<f32>> {
    Ok(image_from_bytes_as(bytes, origin, height, width, Resize::Strict)?.0)
}

/// How an image of another size was brought to the model's input: scaled from `from` to
/// `scaled` (height, width), then cropped at (`top`, `left`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    pub from: (usize, usize),
    pub scaled: (usize, usize),
    pub top: usize,
    pub left: usize,
}

impl std::fmt::Display for Fit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resized {}×{} to {}×{} (bilinear) and centre-cropped",
            self.from.1, self.from.0, self.scaled.1, self.scaled.0
        )
    }
}

/// What to do with an image whose size differs from the model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Scale and centre-crop it ([`fit_planar`]).
    Fit,
    /// Refuse it ([`NnError::ImageSize`]).
    Strict,
}

/// The scaled size before the centre crop: the smallest size with the image's aspect ratio that
/// covers `out_h × out_w` (for a square target, the shorter side becomes the target and the
/// longer one `⌊target · long / short⌋`, torchvision's `Resize(int)`).
fn cover(h: usize, w: usize, out_h: usize, out_w: usize) -> (usize, usize) {
    if h * out_w <= w * out_h {
        (out_h, (out_h * w / h).max(out_w))
    } else {
        ((out_w * h / w).max(out_h), out_w)
    }
}

/// Python's `round` of `n / 2` (halves to even), as torchvision's `CenterCrop` computes offsets.
fn half_round_even(n: usize) -> usize {
    let q = n / 2;
    if n % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// Brings planar RGB bytes `[3, h, w]` to `[3, out_h, out_w]` as the toolkit prepares images
/// (python/privinfer_models/data.py `fit_image`): a bilinear (triangle-filter, antialiased)
/// resize to the covering size of [`cover`], then a centre crop. Equal sizes are returned as they
/// are. The result matches PIL's within ±2 levels per pixel (the two libraries round their
/// separable passes differently; tested against PIL's output).
pub fn fit_planar(
    rgb: &[u8],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> (Vec<u8>, Option<Fit>) {
    if (h, w) == (out_h, out_w) || h == 0 || w == 0 || out_h == 0 || out_w == 0 {
        return (rgb.to_vec(), None);
    }
    let mut img = image::RgbImage::new(w as u32, h as u32);
    for (x, y, p) in img.enumerate_pixels_mut() {
        let i = y as usize * w + x as usize;
        *p = image::Rgb([rgb[i], rgb[h * w + i], rgb[2 * h * w + i]]);
    }
    let (sh, sw) = cover(h, w, out_h, out_w);
    let scaled = image::imageops::resize(
        &img,
        sw as u32,
        sh as u32,
        image::imageops::FilterType::Triangle,
    );
    let (top, left) = (half_round_even(sh - out_h), half_round_even(sw - out_w));
    let crop =
        image::imageops::crop_imm(&scaled, left as u32, top as u32, out_w as u32, out_h as u32)
            .to_image();
    let (planar, _, _) = planar_rgb(image::DynamicImage::ImageRgb8(crop));
    (
        planar,
        Some(Fit {
            from: (h, w),
            scaled: (sh, sw),
            top,
            left,
        }),
    )
}

/// Loads a PNG or JPEG image as a normalized `[1, 3, height, width]` input; an image of another
/// size is fitted ([`fit_planar`]) or refused, as `resize` says. Returns what fitting did.
pub fn load_image_as(
    path: impl AsRef<Path>,
    height: usize,
    width: usize,
    resize: Resize,
) -> Result<(Vec<f32>, Option<Fit>)> {
    let path = path.as_ref();
    let (rgb, h, w) = read_image_rgb(path)?;
    prepare(
        rgb,
        h,
        w,
        &path.display().to_string(),
        height,
        width,
        resize,
    )
}

/// As [`load_image_as`], from PNG or JPEG bytes (named `origin` in errors).
pub fn image_from_bytes_as(
    bytes: &[u8],
    origin: &str,
    height: usize,
    width: usize,
    resize: Resize,
) -> Result<(Vec<f32>, Option<Fit>)> {
    let (rgb, h, w) = decode_image_rgb(bytes, origin)?;
    prepare(rgb, h, w, origin, height, width, resize)
}

fn prepare(
    rgb: Vec<u8>,
    h: usize,
    w: usize,
    origin: &str,
    height: usize,
    width: usize,
    resize: Resize,
) -> Result<(Vec<f32>, Option<Fit>)> {
    if (h, w) != (height, width) && resize == Resize::Strict {
        return Err(NnError::ImageSize {
            path: origin.to_string(),
            width: w as u32,
            height: h as u32,
            expected_w: width,
            expected_h: height,
        });
    }
    let (rgb, fit) = fit_planar(&rgb, h, w, height, width);
    Ok((normalize_chw(&rgb), fit))
}

fn planar_rgb(img: image::DynamicImage) -> (Vec<u8>, usize, usize) {
    let img = img.to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut planar = vec![0u8; 3 * h * w];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            planar[c * h * w + y as usize * w + x as usize] = p[c];
        }
    }
    (planar, h, w)
}

/// Loads a PNG or JPEG image of exactly `height × width` pixels as a normalized
/// `[1, 3, height, width]` input.
pub fn load_image(path: impl AsRef<Path>, height: usize, width: usize) -> Result<Vec<f32>> {
    Ok(load_image_as(path, height, width, Resize::Strict)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_parses_and_rejects() {
        let mut rec = vec![3u8];
        rec.extend((0..3072).map(|i| (i % 256) as u8));
        let c = Cifar10::from_bytes(&rec, "mem").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.label(0), 3);
        let img = c.image(0);
        // Pixel 0 of the red plane is 0: (0 − 0.485) / 0.229.
        assert!((img[0] - (-0.485 / 0.229)).abs() < 1e-6);
        // Pixel 0 of the green plane is 1024 % 256 = 0.
        assert!((img[1024] - (-0.456 / 0.224)).abs() < 1e-6);
        assert!(matches!(
            Cifar10::from_bytes(&rec[..100], "mem"),
            Err(NnError::CifarLength { .. })
        ));
        rec[0] = 10;
        assert!(matches!(
            Cifar10::from_bytes(&rec, "mem"),
            Err(NnError::CifarLabel { label: 10, .. })
        ));
    }
}
