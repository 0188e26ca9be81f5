"""Independent recomputation of a `layers` sweep's per-layer errors, for the
cross-check test.

numpy + Pillow + onnxruntime, sharing no code with jagged: reads each image
(given at the resize size, so no resampling), cuts the reference window at the
centre and the windows moved by each shift along x and along y by plain array
slicing, normalises, runs the model whose probed tensors were exposed as graph
outputs, and computes each probe's error from the exported feature maps as
jagged documents it: for factor k, the map of the shifted window against the
reference map moved by floor(s / k) cells, on the interior less
min(ceil(reach / k), (cells left by the shift) // 4) cells per border, as a
relative L2 distance; pooled features (factor 0) by the plain relative L2.
Prints JSON {"<image>/<dx>/<dy>": [error per probe or null]}.

usage: layers_ref.py MODEL.onnx CARD.json IMAGES_DIR PROBES.json SHIFTS
"""
import csv
import json
import math
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def error(probe, shifted, reference, dx, dy):
    if probe["factor"] == 0:
        d = np.linalg.norm((shifted - reference).astype(np.float64))
        n = np.linalg.norm(reference.astype(np.float64))
        return float(d / n) if n > 0 else None
    k = probe["factor"]
    cx, cy = dx // k, dy // k
    _, h, w = reference.shape
    m = min(math.ceil(probe["reach"] / k), min(h - cy, w - cx) // 4)
    a = shifted[:, m : h - cy - m, m : w - cx - m].astype(np.float64)
    b = reference[:, m + cy : h - m, m + cx : w - m].astype(np.float64)
    if a.size == 0 or np.linalg.norm(b) == 0:
        return None
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    model, card_path, images, probes_path, shifts = sys.argv[1:6]
    card = json.load(open(card_path))
    probes = json.load(open(probes_path))
    shifts = [int(s) for s in shifts.split(",")]
    s = card["input_size"]
    mean = np.array(card["normalize"]["mean"], dtype=np.float32)
    std = np.array(card["normalize"]["std"], dtype=np.float32)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [p["tensor"] for p in probes]
    out = {}
    for row in csv.DictReader(open(f"{images}/labels.csv")):
        img = np.asarray(Image.open(f"{images}/{row['file']}").convert("RGB"))
        h, w, _ = img.shape
        y0, x0 = (h - s) // 2, (w - s) // 2
        pts = [(0, 0)] + [p for d in shifts for p in [(d, 0), (0, d)]]
        wins = [img[y0 + dy : y0 + dy + s, x0 + dx : x0 + dx + s] for dx, dy in pts]
        x = np.stack([((win.astype(np.float32) - mean) * (1.0 / std)).transpose(2, 0, 1) for win in wins])
        maps = sess.run(names, {card["input_name"]: x})
        for i, (dx, dy) in enumerate(pts):
            if i == 0:
                continue
            out[f"{row['file']}/{dx}/{dy}"] = [error(p, maps[j][i], maps[j][0], dx, dy) for j, p in enumerate(probes)]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
