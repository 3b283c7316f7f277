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
    let (rgb, h, w) = decode_image_rgb(bytes, origin)?;
    if h != height || w != width {
        return Err(NnError::ImageSize {
            path: origin.to_string(),
            width: w as u32,
            height: h as u32,
            expected_w: width,
            expected_h: height,
        });
    }
    Ok(normalize_chw(&rgb))
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
    let path = path.as_ref();
    let (rgb, h, w) = read_image_rgb(path)?;
    if h != height || w != width {
        return Err(NnError::ImageSize {
            path: path.display().to_string(),
            width: w as u32,
            height: h as u32,
            expected_w: width,
            expected_h: height,
        });
    }
    Ok(normalize_chw(&rgb))
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
