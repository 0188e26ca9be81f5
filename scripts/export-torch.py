#!/usr/bin/env python3
"""Export a torchvision or timm classifier to ONNX with its jagged model card.

    scripts/export-torch.py torchvision:resnet18 --out models/
    scripts/export-torch.py torchvision:resnet50 --weights none --out models/   # untrained
    scripts/export-torch.py timm:convnext_tiny --out models/
    scripts/export-torch.py torchvision:resnet18 --checkpoint my.pth --classes names.txt --out models/

Writes `<out>/<name>.onnx` (input `input`, NCHW float32 with a dynamic batch;
output `logits`) and `<out>/<name>.card.json` (input size, normalisation on the
0..255 scale jagged feeds, class names), checks ONNX Runtime against PyTorch on a
few images (the sample photos when given, else random inputs; the largest
difference of logits and the top-1 agreement are printed, and the export fails
past `--tolerance`), and prints the `[[models]]` entry to paste into a spec.

Needs the `torch` and `onnx` packages (and `torchvision` or `timm` for the model),
`onnxruntime`, numpy and Pillow. Weights come from the package's own cache or
download (`--weights default`), a local state dict (`--checkpoint`), or are left
random (`--weights none`: the card says `untrained`).
"""
import argparse
import json
import os
import sys

import numpy as np


def load(spec, weights, checkpoint):
    """The model in eval mode, its preprocessing, class names and a source line."""
    import torch

    library, _, name = spec.partition(":")
    if not name:
        sys.exit(f"name the model as torchvision:<name> or timm:<name>, not `{spec}`")
    if library == "torchvision":
        import torchvision

        w = None
        if weights == "default" and checkpoint is None:
            w = torchvision.models.get_model_weights(name).DEFAULT
        elif weights not in ("default", "none"):
            w = torchvision.models.get_model_weights(name)[weights]
        model = torchvision.models.get_model(name, weights=w)
        if w is not None:
            t = w.transforms()
            pre = {
                "crop": int(t.crop_size[0]),
                "resize": int(t.resize_size[0]),
                "mean": list(t.mean),
                "std": list(t.std),
            }
            classes = list(w.meta.get("categories") or [])
            source = f"torchvision {torchvision.__version__} {name} weights {w}"
        else:
            pre = {"crop": 224, "resize": 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
            classes = []
            source = f"torchvision {torchvision.__version__} {name}"
    elif library == "timm":
        import timm

        model = timm.create_model(name, pretrained=(weights == "default" and checkpoint is None))
        cfg = model.pretrained_cfg
        side = int(cfg.get("input_size", (3, 224, 224))[-1])
        pre = {
            "crop": side,
            "resize": int(round(side / cfg.get("crop_pct", 0.875))),
            "mean": list(cfg.get("mean", (0.485, 0.456, 0.406))),
            "std": list(cfg.get("std", (0.229, 0.224, 0.225))),
        }
        classes = []
        try:
            from timm.data import ImageNetInfo

            if model.num_classes == 1000:
                info = ImageNetInfo()
                classes = [info.index_to_description(i) for i in range(1000)]
        except ImportError:
            pass
        source = f"timm {timm.__version__} {name}" + (" pretrained" if weights == "default" and checkpoint is None else "")
    else:
        sys.exit(f"unknown library `{library}`: torchvision or timm")
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        model.load_state_dict(state)
        source += f", weights from {os.path.basename(checkpoint)}"
    untrained = weights == "none" and checkpoint is None
    return model.eval(), pre, classes, source, untrained


def preprocess(path, pre):
    """torchvision's Resize(resize) + CenterCrop(crop) + Normalize, as uint8 math."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = pre["resize"]
    size = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    img = img.resize(size, Image.BILINEAR)
    c = pre["crop"]
    left, top = int(round((size[0] - c) / 2.0)), int(round((size[1] - c) / 2.0))
    x = np.asarray(img.crop((left, top, left + c, top + c)), dtype=np.float32)
    mean = np.array(pre["mean"], dtype=np.float32) * 255.0
    std = np.array(pre["std"], dtype=np.float32) * 255.0
    return ((x - mean) / std).transpose(2, 0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="torchvision:<name> or timm:<name>")
    ap.add_argument("--out", default=".", help="folder for the .onnx and .card.json (default: .)")
    ap.add_argument("--name", help="model name in the card and file names (default: the model's)")
    ap.add_argument("--weights", default="default", help="default (the package's pretrained), none (random, untrained), or a torchvision weights enum name")
    ap.add_argument("--checkpoint", help="a local state dict to load instead")
    ap.add_argument("--classes", help="text file of class names, one a line (default: the weights' own)")
    ap.add_argument("--images", help="folder of images to compare PyTorch and ONNX Runtime on (default: random inputs)")
    ap.add_argument("--check", type=int, default=4, help="images (or random inputs) compared (default 4)")
    ap.add_argument("--tolerance", type=float, default=1e-3, help="largest difference of logits allowed, relative to their range (default 1e-3)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ap.add_argument("--seed", type=int, default=0, help="seed of random weights and inputs (default 0)")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not installed: pip install torch torchvision onnx (or timm)")
    import onnxruntime as ort

    torch.manual_seed(args.seed)
    model, pre, classes, source, untrained = load(args.model, args.weights, args.checkpoint)
    name = args.name or args.model.partition(":")[2].replace("/", "_")
    side = pre["crop"]
    if args.classes:
        classes = [l.strip() for l in open(args.classes) if l.strip()]
    with torch.no_grad():
        probe = model(torch.zeros(1, 3, side, side))
    num_classes = int(probe.shape[-1])
    if classes and len(classes) != num_classes:
        sys.exit(f"{len(classes)} class names for {num_classes} outputs")

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, f"{name}.onnx")
    # The TorchScript exporter: it takes every torchvision and timm classifier
    # without extra packages (the newer one needs onnxscript).
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    torch.onnx.export(
        model,
        torch.zeros(1, 3, side, side),
        onnx_path,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=args.opset,
        dynamo=False,
    )

    # PyTorch against ONNX Runtime on the same tensors.
    rng = np.random.default_rng(args.seed)
    if args.images:
        files = sorted(f for f in os.listdir(args.images) if f.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))[: args.check]
        if not files:
            sys.exit(f"no images in {args.images}")
        x = np.stack([preprocess(os.path.join(args.images, f), pre) for f in files])
        what = f"{len(files)} images of {args.images}"
    else:
        x = rng.standard_normal((args.check, 3, side, side)).astype(np.float32)
        what = f"{args.check} random inputs"
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    diff = float(np.abs(ref - got).max())
    scale = float(np.abs(ref).max()) or 1.0
    agree = int((ref.argmax(1) == got.argmax(1)).sum())
    print(f"checked on {what}: largest logit difference {diff:.3g} (range {scale:.3g}), top-1 agrees on {agree}/{len(x)}", file=sys.stderr)
    if diff > args.tolerance * scale or agree != len(x):
        os.remove(onnx_path)
        sys.exit(f"ONNX Runtime disagrees with PyTorch beyond {args.tolerance} of the logits' range: not exported")

    card = {
        "name": name,
        "input_name": "input",
        "output_name": "logits",
        "input_size": side,
        "normalize": {"mean": [round(m * 255.0, 6) for m in pre["mean"]], "std": [round(s * 255.0, 6) for s in pre["std"]]},
        "num_classes": num_classes,
        "output": "logits",
        "classes": classes,
        "wnids": [],
        "untrained": untrained,
        "source": source + ", exported by scripts/export-torch.py",
        "license": "see the weights' source",
    }
    card_path = os.path.join(args.out, f"{name}.card.json")
    with open(card_path, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print(f"wrote {onnx_path} and {card_path}", file=sys.stderr)
    note = ""
    if pre["resize"] != side + 32:
        note = f"\n# its weights were evaluated after Resize({pre['resize']}); set `resize = {pre['resize']}` in crop-based families to match"
    print(f"[[models]]\npath = \"{onnx_path}\"{note}")


if __name__ == "__main__":
    main()
