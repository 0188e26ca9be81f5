"""Reference pixels from Pillow, for the compatibility test (tests/compat.rs).

For each sample image, and for JPEG files that Pillow encodes from one of them
(4:4:4, 4:2:2 and 4:2:0 chroma subsampling, progressive, greyscale), writes as
raw RGB bytes: the pixels Pillow decodes (its bundled libjpeg-turbo for JPEG),
`Image.resize` of those pixels with each filter at several sizes, and
torchvision's PIL preprocessing (`Resize(n)` then `CenterCrop(s)`, the window
moved by (dx, dy)) written out with Pillow calls exactly as torchvision makes
them. Prints a JSON manifest of what it wrote.

usage: pillow_ref.py SAMPLES_DIR OUT_DIR
"""
import json
import os
import sys

from PIL import Image, features

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def raw(img, path):
    with open(path, "wb") as f:
        f.write(img.convert("RGB").tobytes())
    return path


def torchvision_resize(img, n, filt):
    """torchvision.transforms.functional.resize(img, n) on a PIL image."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    return img.resize(size, filt)


def torchvision_center_crop(img, s, dx, dy):
    """torchvision.transforms.functional.center_crop, the window moved by (dx, dy)."""
    w, h = img.size
    top = int(round((h - s) / 2.0)) + dy
    left = int(round((w - s) / 2.0)) + dx
    return img.crop((left, top, left + s, top + s))


def main():
    samples, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    names = sorted(f for f in os.listdir(samples) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    sources = []  # (name, path of the file, is jpeg, encoded here)
    for name in names:
        sources.append((name, os.path.join(samples, name), name.lower().endswith((".jpg", ".jpeg")), False))
    base = Image.open(os.path.join(samples, names[0])).convert("RGB")
    for label, kw, mode in [
        ("q90-444", dict(quality=90, subsampling=0), "RGB"),
        ("q85-422", dict(quality=85, subsampling=1), "RGB"),
        ("q75-420", dict(quality=75, subsampling=2), "RGB"),
        ("q80-progressive", dict(quality=80, progressive=True), "RGB"),
        ("q90-grey", dict(quality=90), "L"),
    ]:
        path = os.path.join(out, f"{label}.jpg")
        base.convert(mode).save(path, "JPEG", **kw)
        sources.append((f"{label}.jpg", path, True, True))

    manifest = {"libjpeg_turbo": features.version("libjpeg_turbo"), "pillow": Image.__version__,
                "decoded": [], "resized": [], "torchvision": []}
    for i, (name, path, is_jpeg, encoded) in enumerate(sources):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        dec = raw(img, os.path.join(out, f"s{i}.rgb"))
        manifest["decoded"].append({"name": name, "file": path, "jpeg": is_jpeg, "raw": dec, "w": w, "h": h})
        if encoded:
            continue  # the encoded copies check decoding only
        sizes = [(w // 2, h // 2), (224, 224), (int(w * 1.37), int(h * 0.61)), (w + 17, h + 9), (w, h // 3), (w - 9, h // 4), (w // 3, h - 5)]
        for filt, code in FILTERS.items():
            for j, (tw, th) in enumerate(sizes):
                r = img.resize((tw, th), code)
                manifest["resized"].append({"source": i, "filter": filt, "w": tw, "h": th,
                                            "raw": raw(r, os.path.join(out, f"s{i}-{filt}-{j}.rgb"))})
        for filt in ("bilinear", "bicubic"):
            resized = torchvision_resize(img, 256, FILTERS[filt])
            for dx, dy in [(0, 0), (3, -2), (-5, 7)]:
                c = torchvision_center_crop(resized, 224, dx, dy)
                manifest["torchvision"].append({"source": i, "filter": filt, "resize": 256, "side": 224, "dx": dx, "dy": dy,
                                                "raw": raw(c, os.path.join(out, f"s{i}-tv-{filt}-{dx}-{dy}.rgb"))})
    json.dump(manifest, sys.stdout)


main()
