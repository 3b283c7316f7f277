//! Built-in linear-layer shape lists of common CNNs (batch 1, NCHW), for tests and benchmarks
//! when no ONNX model is at hand. Names follow the PyTorch modules.

use crate::layer::{Conv2dSpec, LayerSpec};

// One positional row per layer keeps the shape tables below readable as tables.
#[allow(clippy::too_many_arguments)]
fn conv(
    c: usize,
    h: usize,
    m: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    wb: u32,
) -> LayerSpec {
    LayerSpec::conv(Conv2dSpec::square(c, h, m, k, stride, padding, groups), wb)
}

/// The small layers the `linear_messages` fuzz target runs (its seeds are written by
/// `examples/linear_fuzz_seeds.rs` from the same list): FC 20→5 and 64→10 (strided split), a
/// one-tile conv, a stride-2 conv and a conv over two channel tiles, weights below 2^8.
pub fn fuzz_layers() -> Vec<(&'static str, LayerSpec)> {
    vec![
        ("fc20x5", LayerSpec::fc(20, 5, 8)),
        ("fc64x10", LayerSpec::fc(64, 10, 8)),
        ("conv3x8", conv(3, 8, 4, 3, 1, 1, 1, 8)),
        ("conv4x12s2", conv(4, 12, 4, 3, 2, 1, 1, 8)),
        ("conv12x18", conv(12, 18, 2, 3, 1, 1, 1, 8)),
        // Depthwise: run by `Falcon` (dense tilings, packed, searched), the rest by `Cheetah`.
        ("dw64x4", conv(64, 4, 64, 3, 1, 1, 64, 8)),
        ("dw32x6s2", conv(32, 6, 32, 3, 2, 1, 32, 8)),
        ("dw96x8", conv(96, 8, 96, 3, 1, 1, 96, 8)),
        // Block-circulant FC: run by `Circulant`.
        ("circ64x32b8", LayerSpec::circulant_fc(64, 32, 8, 8)),
    ]
}

/// The layers of the `simd_messages` fuzz target and its seeds: a conv, a strided conv, a
/// depthwise conv, an FC and a scale, each one ciphertext in and out on the SIMD sets.
pub fn simd_fuzz_layers() -> Vec<(&'static str, LayerSpec)> {
    vec![
        ("conv2x4", conv(2, 6, 4, 3, 1, 1, 1, 8)),
        ("conv3x4s2", conv(3, 8, 4, 3, 2, 1, 1, 8)),
        ("dw4", conv(4, 6, 4, 3, 1, 1, 4, 8)),
        ("fc20x5", LayerSpec::fc(20, 5, 8)),
        ("scale3", LayerSpec::scale(3, 4, 4, 8)),
    ]
}

/// CIFAR ResNet-(6n+2) (He et al. 2016, option-A shortcuts: no 1×1 convolutions): n = 3, 5, 9
/// for ResNet-20, 32, 56.
pub fn resnet_cifar(depth: usize, wb: u32) -> Vec<(String, LayerSpec)> {
    let n = (depth - 2) / 6;
    let mut out = vec![("conv1".to_string(), conv(3, 32, 16, 3, 1, 1, 1, wb))];
    let mut c = 16;
    let mut h = 32;
    for (stage, &m) in [16usize, 32, 64].iter().enumerate() {
        for b in 0..n {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            out.push((
                format!("layer{}.{b}.conv1", stage + 1),
                conv(c, h, m, 3, stride, 1, 1, wb),
            ));
            h /= stride;
            out.push((
                format!("layer{}.{b}.conv2", stage + 1),
                conv(m, h, m, 3, 1, 1, 1, wb),
            ));
            c = m;
        }
    }
    out.push(("fc".to_string(), LayerSpec::fc(64, 10, wb)));
    out
}

/// ResNet-18 for 32×32 inputs (the CIFAR variant: a 3×3 stride-1 stem, no max-pool; maps 32,
/// 16, 8, 4), 10 classes.
pub fn resnet18_cifar(wb: u32) -> Vec<(String, LayerSpec)> {
    let mut out = vec![("conv1".to_string(), conv(3, 32, 64, 3, 1, 1, 1, wb))];
    resnet18_stages(&mut out, 32, wb);
    out.push(("fc".to_string(), LayerSpec::fc(512, 10, wb)));
    out
}

/// ResNet-18's four stages of two basic blocks from a 64-channel map of side `h`.
fn resnet18_stages(out: &mut Vec<(String, LayerSpec)>, mut h: usize, wb: u32) {
    let mut c = 64;
    for (stage, &m) in [64usize, 128, 256, 512].iter().enumerate() {
        for b in 0..2 {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            out.push((format!("{name}.conv1"), conv(c, h, m, 3, stride, 1, 1, wb)));
            if stride != 1 || c != m {
                out.push((
                    format!("{name}.downsample"),
                    conv(c, h, m, 1, stride, 0, 1, wb),
                ));
            }
            h /= stride;
            out.push((format!("{name}.conv2"), conv(m, h, m, 3, 1, 1, 1, wb)));
            c = m;
        }
    }
}

/// ResNet-18 at a square input of `size` (64 for Tiny ImageNet with 200 classes, 224 for ImageNet).
pub fn resnet18(size: usize, classes: usize, wb: u32) -> Vec<(String, LayerSpec)> {
    let mut out = vec![("conv1".to_string(), conv(3, size, 64, 7, 2, 3, 1, wb))];
    // conv1 stride 2, max-pool stride 2
    resnet18_stages(&mut out, size / 4, wb);
    out.push(("fc".to_string(), LayerSpec::fc(512, classes, wb)));
    out
}

/// ResNet-50 at 224×224 (bottleneck blocks 3, 4, 6, 3; stride on the 3×3 convolution).
pub fn resnet50(wb: u32) -> Vec<(String, LayerSpec)> {
    let mut out = vec![("conv1".to_string(), conv(3, 224, 64, 7, 2, 3, 1, wb))];
    let mut h = 56;
    let mut c = 64;
    for (stage, (&width, &blocks)) in [64usize, 128, 256, 512]
        .iter()
        .zip(&[3usize, 4, 6, 3])
        .enumerate()
    {
        let m = width * 4;
        for b in 0..blocks {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            let name = format!("layer{}.{b}", stage + 1);
            out.push((format!("{name}.conv1"), conv(c, h, width, 1, 1, 0, 1, wb)));
            out.push((
                format!("{name}.conv2"),
                conv(width, h, width, 3, stride, 1, 1, wb),
            ));
            if b == 0 {
                out.push((
                    format!("{name}.downsample"),
                    conv(c, h, m, 1, stride, 0, 1, wb),
                ));
            }
            h /= stride;
            out.push((format!("{name}.conv3"), conv(width, h, m, 1, 1, 0, 1, wb)));
            c = m;
        }
    }
    out.push(("fc".to_string(), LayerSpec::fc(2048, 1000, wb)));
    out
}

/// VGG-16 on 32×32 inputs (Simonyan & Zisserman 2015, configuration D; the CIFAR variant:
/// 13 3×3 convs with 2×2 max pools after blocks of 2, 2, 3, 3, 3, then one FC 512 → 10).
pub fn vgg16_32(wb: u32) -> Vec<(String, LayerSpec)> {
    let blocks: [&[usize]; 5] = [
        &[64, 64],
        &[128, 128],
        &[256, 256, 256],
        &[512, 512, 512],
        &[512, 512, 512],
    ];
    let (mut c, mut h) = (3usize, 32usize);
    let mut out = Vec::new();
    for (b, widths) in blocks.iter().enumerate() {
        for (i, &m) in widths.iter().enumerate() {
            out.push((
                format!("features.{}.{}", b + 1, i + 1),
                conv(c, h, m, 3, 1, 1, 1, wb),
            ));
            c = m;
        }
        h /= 2;
    }
    out.push(("classifier".into(), LayerSpec::fc(512, 10, wb)));
    out
}

/// MobileNetV1 on 224×224 inputs (Howard et al. 2017, width 1.0, Table 1): a 3×3 stride-2
/// stem, 13 depthwise-separable blocks (3×3 depthwise, then 1×1 pointwise), global pooling and
/// one FC 1024 → 1000. Layer names follow the common PyTorch port (`model.<i>.dw` / `.pw`).
pub fn mobilenet_v1_224(wb: u32) -> Vec<(String, LayerSpec)> {
    // (output channels, stride of the depthwise conv)
    let blocks = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    let mut out = vec![("model.0".to_string(), conv(3, 224, 32, 3, 2, 1, 1, wb))];
    let (mut c, mut h) = (32usize, 112usize);
    for (i, &(m, stride)) in blocks.iter().enumerate() {
        out.push((
            format!("model.{}.dw", i + 1),
            conv(c, h, c, 3, stride, 1, c, wb),
        ));
        h = (h + 2 - 3) / stride + 1;
        out.push((format!("model.{}.pw", i + 1), conv(c, h, m, 1, 1, 0, 1, wb)));
        c = m;
    }
    out.push(("fc".into(), LayerSpec::fc(1024, 1000, wb)));
    out
}

/// The toolkit's CIFAR ViT (`python/privinfer_models/zoo.py`: 4×4 patches, 65 tokens with the
/// class token, width 128, 6 blocks, MLP 256): the patch embedding, per block the token × weight
/// products q/k/v, the attention projection and the two MLP layers, and the head on the class
/// token. The activation × activation products of attention are not linear layers.
pub fn vit_cifar(wb: u32) -> Vec<(String, LayerSpec)> {
    let (t, d, mlp) = (65, 128, 256);
    let mut out = vec![("patch".to_string(), conv(3, 32, d, 4, 4, 0, 1, wb))];
    for b in 0..6 {
        out.push((
            format!("blocks.{b}.qkv"),
            LayerSpec::matmul(t, d, 3 * d, wb),
        ));
        out.push((format!("blocks.{b}.proj"), LayerSpec::matmul(t, d, d, wb)));
        out.push((format!("blocks.{b}.fc1"), LayerSpec::matmul(t, d, mlp, wb)));
        out.push((format!("blocks.{b}.fc2"), LayerSpec::matmul(t, mlp, d, wb)));
    }
    out.push(("head".into(), LayerSpec::fc(d, 10, wb)));
    out
}

/// MobileNetV2 (Sandler et al. 2018, width 1.0). At 32×32 (CIFAR variant) the stem and the
/// second stage use stride 1, so the final feature map is 4×4.
pub fn mobilenet_v2(size: usize, classes: usize, wb: u32) -> Vec<(String, LayerSpec)> {
    mobilenet_v2_width(size, classes, 1.0, wb)
}

/// Channels × width, rounded to a multiple of 8 (at least 8), as torchvision's `_make_divisible`.
fn scaled(c: usize, width: f64) -> usize {
    let v = c as f64 * width;
    let r = ((v + 4.0) as usize / 8 * 8).max(8);
    if (r as f64) < 0.9 * v {
        r + 8
    } else {
        r
    }
}

/// MobileNetV2 with width multiplier `width` (every stage's channels scaled, the last conv's
/// 1280 only when widened, as in the paper).
pub fn mobilenet_v2_width(
    size: usize,
    classes: usize,
    width: f64,
    wb: u32,
) -> Vec<(String, LayerSpec)> {
    let cifar = size <= 32;
    let stem_stride = if cifar { 1 } else { 2 };
    let stem = scaled(32, width);
    let mut out = vec![(
        "features.0".to_string(),
        conv(3, size, stem, 3, stem_stride, 1, 1, wb),
    )];
    let mut h = size / stem_stride;
    let mut c = stem;
    let cfg: [(usize, usize, usize, usize); 7] = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut idx = 1;
    for (si, &(t, m, n, s)) in cfg.iter().enumerate() {
        let m = scaled(m, width);
        for b in 0..n {
            let stride = if b == 0 {
                if cifar && si == 1 {
                    1
                } else {
                    s
                }
            } else {
                1
            };
            let hidden = c * t;
            let name = format!("features.{idx}");
            if t != 1 {
                out.push((format!("{name}.expand"), conv(c, h, hidden, 1, 1, 0, 1, wb)));
            }
            out.push((
                format!("{name}.dw"),
                conv(hidden, h, hidden, 3, stride, 1, hidden, wb),
            ));
            h = (h + 2 - 3) / stride + 1;
            out.push((
                format!("{name}.project"),
                conv(hidden, h, m, 1, 1, 0, 1, wb),
            ));
            c = m;
            idx += 1;
        }
    }
    let last = scaled(1280, width.max(1.0));
    out.push((format!("features.{idx}"), conv(c, h, last, 1, 1, 0, 1, wb)));
    out.push(("classifier".to_string(), LayerSpec::fc(last, classes, wb)));
    out
}

/// An MLP on a flattened CIFAR image with block-circulant hidden layers (block b; PrivCirNet's
/// structure) and a dense classifier: 3072 → 1024 → 1024 → 1024 → 10.
pub fn circulant_mlp(b: usize, wb: u32) -> Vec<(String, LayerSpec)> {
    vec![
        ("fc1".into(), LayerSpec::circulant_fc(3072, 1024, b, wb)),
        ("fc2".into(), LayerSpec::circulant_fc(1024, 1024, b, wb)),
        ("fc3".into(), LayerSpec::circulant_fc(1024, 1024, b, wb)),
        ("classifier".into(), LayerSpec::fc(1024, 10, wb)),
    ]
}

/// EfficientNet-B0 (Tan & Le 2019): MBConv blocks with 3×3 and 5×5 depthwise kernels and
/// squeeze-and-excitation (its two FCs on the pooled channels, ratio 0.25 of the block input).
/// At 32×32 the stem and the second stage use stride 1 (as the CIFAR MobileNetV2), so the final
/// map is 2×2.
pub fn efficientnet_b0(size: usize, classes: usize, wb: u32) -> Vec<(String, LayerSpec)> {
    let cifar = size <= 32;
    let stem_stride = if cifar { 1 } else { 2 };
    let mut out = vec![(
        "stem".to_string(),
        conv(3, size, 32, 3, stem_stride, 1, 1, wb),
    )];
    let mut h = size / stem_stride;
    let mut c = 32;
    // (expansion, kernel, channels, repeats, stride)
    let cfg: [(usize, usize, usize, usize, usize); 7] = [
        (1, 3, 16, 1, 1),
        (6, 3, 24, 2, 2),
        (6, 5, 40, 2, 2),
        (6, 3, 80, 3, 2),
        (6, 5, 112, 3, 1),
        (6, 5, 192, 4, 2),
        (6, 3, 320, 1, 1),
    ];
    for (si, &(t, k, m, n, s)) in cfg.iter().enumerate() {
        for b in 0..n {
            let stride = if b > 0 || (cifar && si == 1) { 1 } else { s };
            let hidden = c * t;
            let name = format!("blocks.{si}.{b}");
            if t != 1 {
                out.push((format!("{name}.expand"), conv(c, h, hidden, 1, 1, 0, 1, wb)));
            }
            out.push((
                format!("{name}.dw"),
                conv(hidden, h, hidden, k, stride, k / 2, hidden, wb),
            ));
            h = (h + 2 * (k / 2) - k) / stride + 1;
            let se = (c / 4).max(1);
            out.push((format!("{name}.se_reduce"), LayerSpec::fc(hidden, se, wb)));
            out.push((format!("{name}.se_expand"), LayerSpec::fc(se, hidden, wb)));
            out.push((
                format!("{name}.project"),
                conv(hidden, h, m, 1, 1, 0, 1, wb),
            ));
            c = m;
        }
    }
    out.push(("head".to_string(), conv(c, h, 1280, 1, 1, 0, 1, wb)));
    out.push(("classifier".to_string(), LayerSpec::fc(1280, classes, wb)));
    out
}

/// A built-in model by name: resnet20, resnet32, resnet56, resnet18-32, resnet18-64, resnet18-224, resnet50,
/// mobilenetv2-32, mobilenetv2-224, mobilenetv2-32-w<width>, efficientnet-b0-32,
/// efficientnet-b0-224, circulant-mlp-b<b>, vgg16-32, mobilenetv1-224, vit-cifar.
pub fn by_name(name: &str, wb: u32) -> Option<Vec<(String, LayerSpec)>> {
    Some(match name {
        "resnet20" => resnet_cifar(20, wb),
        "resnet32" => resnet_cifar(32, wb),
        "resnet56" => resnet_cifar(56, wb),
        "resnet18-32" => resnet18_cifar(wb),
        "resnet18-64" => resnet18(64, 200, wb),
        "resnet18-224" | "resnet18" => resnet18(224, 1000, wb),
        "resnet50" => resnet50(wb),
        "mobilenetv2-32" => mobilenet_v2(32, 10, wb),
        "mobilenetv2-224" | "mobilenetv2" => mobilenet_v2(224, 1000, wb),
        "efficientnet-b0-32" => efficientnet_b0(32, 10, wb),
        "efficientnet-b0-224" | "efficientnet-b0" => efficientnet_b0(224, 1000, wb),
        w if w.starts_with("circulant-mlp-b") => {
            let b: usize = w["circulant-mlp-b".len()..].parse().ok()?;
            if !b.is_power_of_two() || !(2..=1024).contains(&b) {
                return None;
            }
            circulant_mlp(b, wb)
        }
        w if w.starts_with("mobilenetv2-32-w") => {
            let width: f64 = w["mobilenetv2-32-w".len()..].parse().ok()?;
            if !(0.25..=4.0).contains(&width) {
                return None;
            }
            mobilenet_v2_width(32, 10, width, wb)
        }
        "vgg16-32" | "vgg16" => vgg16_32(wb),
        "mobilenetv1-224" | "mobilenetv1" => mobilenet_v1_224(wb),
        "vit-cifar" | "vit" => vit_cifar(wb),
        _ => return None,
    })
}

/// Names accepted by [`by_name`].
pub const MODELS: [&str; 14] = [
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet18-32",
    "resnet18-64",
    "resnet18-224",
    "resnet50",
    "mobilenetv2-32",
    "mobilenetv2-224",
    "efficientnet-b0-32",
    "efficientnet-b0-224",
    "vgg16-32",
    "mobilenetv1-224",
    "vit-cifar",
];

/// Distinct layer shapes of a list, first occurrence kept.
pub fn distinct(layers: &[(String, LayerSpec)]) -> Vec<(String, LayerSpec)> {
    let mut seen = std::collections::HashSet::new();
    layers
        .iter()
        .filter(|(_, l)| seen.insert(*l))
        .cloned()
        .collect()
}
