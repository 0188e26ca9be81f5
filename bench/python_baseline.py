"""The obvious Python implementation of a jagged sweep, for `just bench python`.

One process, Pillow + numpy + onnxruntime, written the way a researcher would:
for every family and image, decode the image, resize it once, cut every grid
point's input by array slicing (crop: shifted windows of the image resized to
side + 32; embed: the image resized to `size` pasted on a black canvas at every
shift), normalise, run the model in batches, softmax, and compute per point the
same forward-neighbour metrics jagged writes (top-1 change, |p_c(x) - p_c(x')|,
top-5 border crossings of the true class, ImageNet-P's top-5 distance), writing
one CSV row per inference with the top-5 classes and probabilities.

Prints one JSON line: {"inferences": N, "seconds": S, "per_sec": N/S}; the time
runs from loading the model to the last row written, as jagged's runs from the
first lease (after which its worker loads the model) to the last commit.

usage: python_baseline.py MODEL.onnx CARD.json IMAGES_DIR OUT.csv
       --max-shift M --embed-size E --batch B --threads T [--device cuda]
"""
import argparse
import csv
import json
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def resize_short_side(img, n):
    w, h = img.size
    if w <= h:
        return img.resize((n, max(n, round(h * n / w))), Image.BICUBIC)
    return img.resize((max(n, round(w * n / h)), n), Image.BICUBIC)


def grid(m):
    ax = range(-m, m + 1)
    return [(dx, dy) for dy in ax for dx in ax]


def inputs(kind, img, s, m, embed_size):
    """One CHW uint8-valued float array per grid point."""
    pts = grid(m)
    if kind == "crop":
        a = np.asarray(resize_short_side(img, s + 32))
        h, w, _ = a.shape
        y0, x0 = (h - s) // 2, (w - s) // 2
        return pts, [a[y0 + dy:y0 + dy + s, x0 + dx:x0 + dx + s] for dx, dy in pts]
    small = resize_short_side(img, embed_size)
    w, h = small.size
    small = np.asarray(small.crop(((w - embed_size) // 2, (h - embed_size) // 2,
                                   (w - embed_size) // 2 + embed_size, (h - embed_size) // 2 + embed_size)))
    out = []
    for dx, dy in pts:
        canvas = np.zeros((s, s, 3), dtype=np.uint8)
        x, y = (s - embed_size) // 2 + dx, (s - embed_size) // 2 + dy
        canvas[y:y + embed_size, x:x + embed_size] = small
        out.append(canvas)
    return pts, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("card")
    ap.add_argument("images")
    ap.add_argument("out")
    ap.add_argument("--max-shift", type=int, default=8)
    ap.add_argument("--embed-size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (onnxruntime-gpu)")
    a = ap.parse_args()

    card = json.load(open(a.card))
    s = card["input_size"]
    mean = np.array(card["normalize"]["mean"], dtype=np.float32)
    std = np.array(card["normalize"]["std"], dtype=np.float32)
    start = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    providers = ["CUDAExecutionProvider"] if a.device.startswith("cuda") else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(a.model, opts, providers=providers)
    if sess.get_providers()[0] != providers[0]:
        raise SystemExit(f"{providers[0]} is not available in this onnxruntime")
    inp, outp = card["input_name"], card["output_name"]
    sess.run([outp], {inp: np.zeros((a.batch, 3, s, s), dtype=np.float32)})  # warm-up
    rows = list(csv.DictReader(open(f"{a.images}/labels.csv")))
    n = 0
    with open(a.out, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["family", "image", "dx", "dy", "top1", "top5_class", "top5_prob", "p_label", "p_ref_top1",
                      "fwd_pairs", "fwd_changes", "fwd_abs", "fwd_transitions", "fwd_top5_dist"])
        for kind in ["crop", "embed"]:
            for row in rows:
                img = Image.open(f"{a.images}/{row['file']}").convert("RGB")
                label = int(row["label"]) if row["label"] else None
                pts, wins = inputs(kind, img, s, a.max_shift, a.embed_size)
                x = np.stack([((w.astype(np.float32) - mean) / std).transpose(2, 0, 1) for w in wins])
                logits = np.concatenate([sess.run([outp], {inp: x[i:i + a.batch]})[0] for i in range(0, len(x), a.batch)])
                e = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs = e / e.sum(axis=1, keepdims=True)
                top1 = probs.argmax(axis=1)
                order = np.argsort(-probs, axis=1, kind="stable")
                top5 = order[:, :5]
                rank = np.empty_like(order)
                np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), axis=1)
                index = {p: i for i, p in enumerate(pts)}
                ref = index[(0, 0)]
                for i, (dx, dy) in enumerate(pts):
                    nb = [index[q] for q in [(dx + 1, dy), (dx, dy + 1)] if q in index]
                    ch = sum(int(top1[i] != top1[j]) for j in nb)
                    ab = sum(abs(float(probs[i, top1[i]]) - float(probs[j, top1[i]])) for j in nb)
                    tr = sum(int((label in top5[i]) != (label in top5[j])) for j in nb) if label is not None else 0
                    # ImageNet-P top-5 distance: p's k-th class at rank r in q adds |k - min(r, 5)|.
                    t5 = sum(int(np.abs(np.arange(5) - np.minimum(rank[j, top5[i]], 5)).sum()) for j in nb)
                    pl = float(probs[i, label]) if label is not None else ""
                    out.writerow([kind, row["file"], dx, dy, int(top1[i]), " ".join(map(str, top5[i])),
                                  " ".join(f"{v:.6g}" for v in probs[i, top5[i]]), pl, float(probs[i, top1[ref]]),
                                  len(nb), ch, ab, tr, t5])
                n += len(pts)
    secs = time.perf_counter() - start
    print(json.dumps({"inferences": n, "seconds": secs, "per_sec": n / secs}))


if __name__ == "__main__":
    main()
