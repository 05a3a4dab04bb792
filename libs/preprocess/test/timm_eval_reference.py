"""Independent reference for libs/preprocess: timm's eval transform written directly with PIL + numpy.

Mirrors, step by step, what timm's `transforms_imagenet_eval` (centre-crop mode) does through
torchvision on a PIL image, without importing either:

    img = Image.open(path).convert('RGB')                  # timm's pil_loader
    Resize(floor(S / crop_pct), interpolation)             # shorter side; torchvision int-size rule
    CenterCrop(S)                                          # torchvision offsets, Python round()
    ToTensor()                                             # float32 / 255, HWC -> CHW
    Normalize(mean, std)                                   # float32 (x - mean) / std

Reads a JSON list of cases on stdin: {image, imageSize, cropPct, interpolation, mean, std,
channels, out}; writes each CHW float32 tensor (little-endian) to `out`. A case with
"kind": "resize" is a bare `Image.resize` instead: {image (raw 8-bit HWC bytes), width, height,
channels, size: [w, h], window: [left, top, width, height], interpolation, out}; it writes the
window of the resized image as raw bytes. Prints library versions as JSON on stdout.
"""

import json
import math
import sys

import numpy as np
from PIL import Image, __version__ as pillow_version

INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def resized_size(w, h, size):
    """torchvision.transforms.functional._compute_resized_output_size for an int size."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def center_crop(img, size):
    """torchvision.transforms.functional.center_crop (no padding needed: crop_pct <= 1)."""
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def timm_eval(path, case):
    img = Image.open(path).convert("RGB")
    if case["channels"] == 1:
        img = img.convert("L")
    size = case["imageSize"]
    scale_size = math.floor(size / case["cropPct"])
    new_w, new_h = resized_size(*img.size, scale_size)
    if (new_w, new_h) != img.size:  # torchvision returns the image untouched in that case
        img = img.resize((new_w, new_h), INTERPOLATION[case["interpolation"]])
    img = center_crop(img, size)
    x = np.asarray(img, dtype=np.uint8)
    if x.ndim == 2:
        x = x[:, :, None]
    x = x.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.asarray(case["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(case["std"], dtype=np.float32).reshape(-1, 1, 1)
    return (x - mean) / std


def resize_window(case):
    """Image.resize(size, filter) of a raw image, then the window: resample.ts's resizeWindow."""
    mode = "L" if case["channels"] == 1 else "RGB"
    with open(case["image"], "rb") as f:
        img = Image.frombytes(mode, (case["width"], case["height"]), f.read())
    img = img.resize(tuple(case["size"]), INTERPOLATION[case["interpolation"]])
    left, top, width, height = case["window"]
    return img.crop((left, top, left + width, top + height)).tobytes()


def main():
    cases = json.load(sys.stdin)
    for case in cases:
        if case.get("kind") == "resize":
            with open(case["out"], "wb") as f:
                f.write(resize_window(case))
            continue
        out = timm_eval(case["image"], case)
        np.ascontiguousarray(out, dtype="<f4").tofile(case["out"])
    json.dump({"pillow": pillow_version, "numpy": np.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
