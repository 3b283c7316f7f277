"""The toolkit's image preprocessing for other sizes (data.fit_image) reproduces the committed
fixtures that the Rust loader's fit_planar is tested against (crates/nn/tests/fit.rs)."""

import os

import numpy as np
from PIL import Image

from privinfer_models.data import fit_image

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "nn", "tests", "fixtures", "fit")


def test_fit_image_reproduces_the_rust_fixtures():
    names = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".png"))
    assert len(names) == 5
    for name in names:
        got = np.asarray(fit_image(Image.open(os.path.join(FIXTURES, name)), 32, 32)).transpose(2, 0, 1)
        want = np.fromfile(os.path.join(FIXTURES, name.replace(".png", ".fit32.bin")), dtype=np.uint8)
        assert got.shape == (3, 32, 32)
        assert np.array_equal(got.reshape(-1), want), name


def test_fit_image_rule():
    # Wider than tall: height to the target, width floor(32 * 200 / 120) = 53, centre crop.
    img = Image.new("RGB", (200, 120), (9, 9, 9))
    assert fit_image(img, 32, 32).size == (32, 32)
    # Same size: unchanged (grayscale converted to RGB).
    g = Image.new("L", (32, 32), 77)
    out = fit_image(g, 32, 32)
    assert out.mode == "RGB" and np.asarray(out).min() == 77
