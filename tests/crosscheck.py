"""Independent recomputation of jagged's per-point results, for the cross-check test.

Straightforward numpy + Pillow + onnxruntime, sharing no code with jagged: reads
the images, cuts the windows of the `crop`, `diagonal` (crop base) and `circular`
families by plain array slicing (images are given at the resize size, so no
resampling is involved), or, at fractional offsets, by its own separable
Kaiser-windowed sinc interpolation (16 taps, beta 8, edge pixels repeated, as
jagged documents its method), reads `sequence` frames in natural name order (frames
are given at the model input size), normalises, runs the model, and computes per
point the argmax, p(label) and the forward-pair metrics, the top-5 distance as
ImageNet-P's reference code does (rankdata + cumulative sums); then, per family,
every metric of the report's table from those per-image results. Prints JSON:
{"rows": {"<family><index>/<image>/<dx>/<dy>" (sequences: "sequence/<name>/<frame>"):
 [top1, p_label, fwd_pairs, fwd_changes, fwd_abs, fwd_transitions, fwd_top5_dist]},
 "summary": {"<family index>": {"<metric>": value or null}}}.

usage: crosscheck.py MODEL.onnx CARD.json IMAGES_DIR FAMILIES.json
"""
import csv
import json
import math
import os
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def in_top5(p, c):
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))
    return c in order[:5]


def ranks(p):
    """1-based ranks, ties in order of appearance (scipy's rankdata 'ordinal')."""
    order = np.argsort(-p, kind="stable")
    r = np.empty(len(p), dtype=np.int64)
    r[order] = np.arange(1, len(p) + 1)
    return r


def top5_dist(p, q):
    """hendrycks/robustness ImageNet-P/test.py: dist(perm2[argsort(perm1)])."""
    n = len(p)
    cum_sum_top5 = np.cumsum(np.asarray([0] + [1] * 5 + [0] * (n - 6)))
    sigma = ranks(q)[np.argsort(ranks(p))]
    return int(np.sum(np.abs(cum_sum_top5[:5] - cum_sum_top5[sigma - 1][:5])))


def taps(t):
    """First source index and normalised weights sampling position t."""
    i = math.floor(t)
    if t == i:
        return i, np.array([1.0])
    first = i - 7
    x = t - (first + np.arange(16))
    w = np.sinc(x) * np.i0(8.0 * np.sqrt(1.0 - (x / 8.0) ** 2)) / np.i0(8.0)
    return first, w / w.sum()


def subpixel_window(img, x0, y0, s):
    """The s x s window with fractional top-left (x0, y0), rows then columns, in float64."""
    h, w, _ = img.shape
    fx, wx = taps(x0)
    fy, wy = taps(y0)
    rows = img[np.clip(fy + np.arange(s + len(wy) - 1), 0, h - 1)].astype(np.float64)
    tmp = np.zeros((rows.shape[0], s, 3))
    for k, wk in enumerate(wx):
        tmp += rows[:, np.clip(fx + k + np.arange(s), 0, w - 1)] * wk
    out = np.zeros((s, s, 3))
    for k, wk in enumerate(wy):
        out += tmp[k:k + s] * wk
    return out.astype(np.float32)


def g(v):
    """An offset as jagged prints it: 3, -1, 0.5."""
    return "%g" % v


def natural(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def sequences(fam, s):
    """(name, label, [frames as HxWx3 arrays]) per sequence folder."""
    root = fam["path"]
    labels = {r["sequence"]: r["label"] for r in csv.DictReader(open(f"{root}/labels.csv"))}
    out = []
    for name in sorted(labels):
        files = sorted(os.listdir(f"{root}/{name}"), key=natural)
        frames = [np.asarray(Image.open(f"{root}/{name}/{f}").convert("RGB")) for f in files]
        assert all(f.shape[:2] == (s, s) for f in frames), "frames must be at the input size"
        out.append((name, int(labels[name]) if labels[name] else None, frames))
    return out


def summary(kind, images):
    """The report's metrics for one family from per-image records: each image's
    label, its top-1 at every point, its reference point, and per pair
    (changed, |dp|, top-5 border crossed, top-5 distance)."""
    labelled = [im for im in images if im["label"] is not None]
    pairs = [p for im in images for p in im["pairs"]]
    paired = [im for im in images if im["pairs"]]

    def ratio(n, d):
        return n / d if d else None

    def right(im):
        return im["top1"][im["ref"]] == im["label"]

    def change_rate(ims):
        ps = [p for im in ims for p in im["pairs"]]
        return ratio(sum(p[0] for p in ps), len(ps))

    crossings = [sum(p[2] for p in im["pairs"]) for im in labelled]
    return {
        "acc1": ratio(sum(right(im) for im in labelled), len(labelled)),
        "acc5": ratio(sum(im["label"] in im["top5_ref"] for im in labelled), len(labelled)),
        "p_top1_change": change_rate(images),
        "p_top1_change_correct": change_rate([im for im in labelled if right(im)]),
        "p_top1_change_wrong": change_rate([im for im in labelled if not right(im)]),
        "mac": ratio(sum(p[1] for p in pairs), len(pairs)),
        "jagged_fraction": ratio(sum(c > 0 for c in crossings), len(labelled)),
        "mean_transitions": ratio(sum(crossings), len(labelled)),
        "worst_acc": ratio(sum(all(t == im["label"] for t in im["top1"]) for im in labelled), len(labelled)),
        "flip_prob": ratio(sum(sum(p[0] for p in im["pairs"]) / len(im["pairs"]) for im in paired), len(paired)),
        "top5_dist": ratio(sum(sum(p[3] for p in im["pairs"]) / len(im["pairs"]) for im in paired), len(paired)),
        "consistency": (1 - change_rate(images)) if kind == "random_pairs" and pairs else None,
    }


def record(probs, pairs, ref, label):
    """One image's record for `summary` from its probability vectors."""
    top1 = [int(np.argmax(p)) for p in probs]
    out = []
    for a, b in pairs:
        c = top1[a]
        crossed = label is not None and in_top5(probs[a], label) != in_top5(probs[b], label)
        out.append((int(top1[a] != top1[b]), abs(float(probs[a][c]) - float(probs[b][c])), int(crossed), top5_dist(probs[a], probs[b])))
    order = sorted(range(len(probs[ref])), key=lambda i: (-probs[ref][i], i))
    return {"label": label, "top1": top1, "ref": ref, "top5_ref": order[:5], "pairs": out}


def main():
    model, card_path, images, families_path = sys.argv[1:5]
    card = json.load(open(card_path))
    families = json.load(open(families_path))
    s = card["input_size"]
    mean = np.array(card["normalize"]["mean"], dtype=np.float32)
    std = np.array(card["normalize"]["std"], dtype=np.float32)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rows = list(csv.DictReader(open(f"{images}/labels.csv")))
    out = {}
    per_family = {}
    for index, fam in enumerate(families):
        kind = fam["kind"]
        records = per_family.setdefault(str(index), (kind, []))[1]
        if kind == "sequence":
            seqs = sequences(fam, s)
            n = fam.get("frames") or min(len(f) for _, _, f in seqs)
            st = fam.get("stride", 1)
            for name, label, frames in seqs:
                if len(frames) < n:
                    continue
                x = np.stack([((f.astype(np.float32) - mean) * (1.0 / std)).transpose(2, 0, 1) for f in frames[:n]])
                probs = [softmax(l) for l in sess.run([card["output_name"]], {card["input_name"]: x})[0]]
                records.append(record(probs, [(k, k + st) for k in range(n - st)], 0, label))
                for k in range(n):
                    p, c = probs[k], int(np.argmax(probs[k]))
                    nb = [k + st] if k + st < n else []
                    ch = sum(int(c != int(np.argmax(probs[j]))) for j in nb)
                    ab = sum(abs(float(p[c]) - float(probs[j][c])) for j in nb)
                    tr = sum(int(in_top5(p, label) != in_top5(probs[j], label)) for j in nb) if label is not None else 0
                    t5 = sum(top5_dist(p, probs[j]) for j in nb)
                    pl = float(p[label]) if label is not None else None
                    out[f"sequence/{name}/{k}"] = [c, pl, len(nb), ch, ab, tr, t5]
            continue
        for row in rows:
            img = np.asarray(Image.open(f"{images}/{row['file']}").convert("RGB"))
            label = int(row["label"]) if row["label"] else None
            h, w, _ = img.shape
            if kind == "diagonal":
                pts = [(c, c) for c in range(fam["steps"] + 1)]
                nbrs = {(c, c): [(c + 1, c + 1)] for c in range(fam["steps"])}
            else:
                m, st = fam["max_shift"], fam.get("step", 1)
                ax = [i * st for i in range(-round(m / st), round(m / st) + 1)]
                pts = [(dx, dy) for dy in ax for dx in ax]
                nbrs = {(dx, dy): [q for q in [(dx + st, dy), (dx, dy + st)] if q in set(pts)] for (dx, dy) in pts}
            y0, x0 = (h - s) // 2, (w - s) // 2
            wins = []
            for dx, dy in pts:
                if kind == "circular":
                    centre = img[y0:y0 + s, x0:x0 + s]
                    win = np.roll(centre, shift=(-dy, -dx), axis=(0, 1))
                elif dx != int(dx) or dy != int(dy):
                    win = subpixel_window(img, x0 + dx, y0 + dy, s)
                else:
                    dx, dy = int(dx), int(dy)
                    win = img[y0 + dy:y0 + dy + s, x0 + dx:x0 + dx + s]
                wins.append(((win.astype(np.float32) - mean) * (1.0 / std)).transpose(2, 0, 1))
            logits = sess.run([card["output_name"]], {card["input_name"]: np.stack(wins)})[0]
            probs = {pt: softmax(l) for pt, l in zip(pts, logits)}
            index_of = {pt: i for i, pt in enumerate(pts)}
            pairs = [(index_of[pt], index_of[q]) for pt in pts for q in nbrs.get(pt, [])]
            records.append(record([probs[pt] for pt in pts], pairs, index_of[(0, 0)], label))
            for pt in pts:
                p = probs[pt]
                c = int(np.argmax(p))
                ch, ab, tr, t5 = 0, 0.0, 0, 0
                for q in nbrs.get(pt, []):
                    t5 += top5_dist(p, probs[q])
                    ch += int(c != int(np.argmax(probs[q])))
                    ab += abs(float(p[c]) - float(probs[q][c]))
                    if label is not None:
                        tr += int(in_top5(p, label) != in_top5(probs[q], label))
                pl = float(p[label]) if label is not None else None
                out[f"{kind}{index}/{row['file']}/{g(pt[0])}/{g(pt[1])}"] = [c, pl, len(nbrs.get(pt, [])), ch, ab, tr, t5]
    json.dump({"rows": out, "summary": {i: summary(kind, recs) for i, (kind, recs) in per_family.items()}}, sys.stdout)


if __name__ == "__main__":
    main()
