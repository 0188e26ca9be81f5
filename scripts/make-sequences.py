"""Makes ImageNet-P-style frame sequences from a folder of images, for the
`sequence` family: <out>/<perturbation>/<image stem>/<frame>.png plus a
labels.csv (sequence,label) per perturbation, copied from the images' labels.csv.

Each image is resized (bilinear) so its short side is 256 and centre-cropped to
256 x 256; frames are 224 x 224:
  translate       a 224 window moving one pixel right per frame (neighbours: previous frame)
  gaussian_noise  the centre crop plus independent Gaussian noise (sigma 8/255 of
                  the range) in every frame after the first (compare with the first frame)
  brightness      the centre crop with brightness rising by 1% per frame

usage: make-sequences.py IMAGES_DIR OUT_DIR [FRAMES]   (default 16 frames; seeded)
"""
import csv
import os
import sys

import numpy as np
from PIL import Image


def main():
    src, out = sys.argv[1], sys.argv[2]
    frames = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    rows = list(csv.DictReader(open(os.path.join(src, "labels.csv"))))
    rng = np.random.default_rng(0)
    for kind in ["translate", "gaussian_noise", "brightness"]:
        os.makedirs(os.path.join(out, kind), exist_ok=True)
        with open(os.path.join(out, kind, "labels.csv"), "w") as f:
            f.write("sequence,label\n")
            for r in rows:
                f.write(f"{os.path.splitext(r['file'])[0]},{r['label']}\n")
    for r in rows:
        img = Image.open(os.path.join(src, r["file"])).convert("RGB")
        w, h = img.size
        s = 256 / min(w, h)
        img = img.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
        w, h = img.size
        x0, y0 = (w - 256) // 2, (h - 256) // 2
        big = np.asarray(img.crop((x0, y0, x0 + 256, y0 + 256)), dtype=np.float32)
        centre = big[16:240, 16:240]
        stem = os.path.splitext(r["file"])[0]
        for kind in ["translate", "gaussian_noise", "brightness"]:
            os.makedirs(os.path.join(out, kind, stem), exist_ok=True)
        start = 16 - frames // 2
        for k in range(frames):
            x = max(0, min(32, start + k))
            translate = big[16:240, x:x + 224]
            noise = centre if k == 0 else centre + rng.normal(0, 8.0, centre.shape)
            bright = centre * (1 + 0.01 * k)
            for kind, a in [("translate", translate), ("gaussian_noise", noise), ("brightness", bright)]:
                frame = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
                frame.save(os.path.join(out, kind, stem, f"{k + 1}.png"))


if __name__ == "__main__":
    main()
