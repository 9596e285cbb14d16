"""A learned gain map after the network, ablated on local_exposure.py's measures (not shipped).

The uneven-light measure (b) is held back by the exposure decision: scaling each 4 x 4 cell
of the output to its reference's mean luma would reach about 23 dB (local_exposure.py
prints that ceiling). This script asks how much of it a small learned model gets from the
photo alone. A CNN of a few thousand weights looks at a 48-pixel thumbnail of the input and
of the network's output (log luma of both, the output's chroma) and predicts a smooth
log2 gain map at the thumbnail's size (three pooling levels, a global branch, one skip).
The map is brought to full size bilinearly and multiplies the network's output (no
channel raised past 0.97), before the shadow lift.

Training data, all from the shipped pair's own outputs (``--shadows 0``) and never the
held-out photos of (b) and (c):

* the BSDS500 photos outside ``data.extra_clean_holdout``, darkened by ``data.degrade``
  three times with uneven light and once evenly, and once as themselves (identity);
* ``--lol-highs`` LOL ``train`` references darkened with uneven light (more scenes);
* ``--lol-pairs`` LOL ``train`` real pairs.

The target is ``log2(reference luma / output luma)`` on the thumbnail; the loss is L1.
Rows, at the same data, epochs and seed:

* ``shipped``: the shipped default, no gain map;
* ``gain map``: trained on everything above;
* ``gain map, zero mean``: its log gain made zero-mean per photo, so only the *local*
  distribution of light changes and the booster keeps the overall exposure;
* ``gain map, no LOL pairs``: trained without LOL's real pairs.

    python benchmarks/gain_map_ablation.py --lol-prepared DIR [--epochs 100]

About 15 minutes on 2 cores. It prints (b) uneven light, (c) well-lit photos and (d) LOL
``val``; docs/results.md, "Local exposure", has the figures and what they say.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_exposure as measures  # noqa: E402  (the four measures, as that script prints them)

THUMB = 48  # the thumbnail's short side
EPS = 1 / 255
CAP = 0.97


def _thumb(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[:2]
    s = THUMB / min(h, w)
    return np.asarray(Image.fromarray(x).resize((max(2, round(w * s)), max(2, round(h * s))), Image.BOX))


def _features(low_t: np.ndarray, out_t: np.ndarray) -> np.ndarray:
    from lowlight.evaluation.exposure_measures import luma01

    yl, yo = luma01(low_t), luma01(out_t)
    chroma = (out_t.astype(np.float32) / 255 - yo[..., None]).transpose(2, 0, 1)
    return np.stack([np.log2(yo + EPS), np.log2(yl + EPS), *chroma]).astype(np.float32)


def _network(zero_mean: bool):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class GainNet(nn.Module):
        def __init__(self, c: int = 16):
            super().__init__()
            self.c1 = nn.Conv2d(5, c, 3, padding=1)
            self.d1 = nn.Conv2d(c, 2 * c, 3, padding=1)
            self.d2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
            self.d3 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
            self.glob = nn.Linear(2 * c, 2 * c)
            self.up = nn.Conv2d(3 * c, c, 3, padding=1)
            self.out = nn.Conv2d(c, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = F.relu(self.c1(x))
            b = F.relu(self.d1(F.avg_pool2d(a, 2)))
            b = F.relu(self.d2(F.avg_pool2d(b, 2)))
            b = F.relu(self.d3(F.avg_pool2d(b, 2)))
            b = b + self.glob(b.mean((2, 3)))[..., None, None]
            b = F.interpolate(b, size=a.shape[2:], mode="bilinear", align_corners=False)
            g = self.out(F.relu(self.up(torch.cat([a, b], 1))))[:, 0]
            return g - g.mean((1, 2), keepdim=True) if zero_mean else g

    return GainNet()


def _landscape(*arrays):
    return [a.transpose(1, 0, 2) if a.shape[0] > a.shape[1] else a for a in arrays]


def training_set(enhancer, args) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(features, target log2 gain, kind) thumbnails, all turned landscape (the CNN is fully convolutional)."""
    from lowlight.config import load_params
    from lowlight.data.degrade import darken
    from lowlight.data.pairs import list_pairs

    cfg = load_params(args.params).data.degrade
    uneven, even = replace(cfg, uneven=1.0), replace(cfg, uneven=0.0)
    held = set(measures._heldout(args.clean, args.holdout))
    clean = [p for p in sorted(args.clean.iterdir()) if p.is_file() and p not in held]
    rng = np.random.default_rng(args.seed)
    pairs = [p for p in list_pairs(args.lol_prepared, "train") if not p.stem.startswith(("clean_", "id_"))]
    highs = sorted({p.high for p in pairs})
    jobs = [(measures._read(p), kinds) for p, kinds in ((p, "uuuei") for p in clean)]
    jobs += [(measures._read(p), "u") for p in rng.choice(highs, min(args.lol_highs, len(highs)), replace=False)]
    samples = []
    for i, (high, kinds) in enumerate(jobs):
        for kind in kinds:
            low = high if kind == "i" else darken(high, uneven if kind == "u" else even, rng)
            samples.append((low, high, kind))
        print(f"\rtraining set: {i + 1}/{len(jobs)} clean photos", end="", flush=True)
    for p in [pairs[i] for i in rng.choice(len(pairs), min(args.lol_pairs, len(pairs)), replace=False)]:
        samples.append((measures._read(p.low), measures._read(p.high), "lol"))
    print()
    rows = []
    from lowlight.evaluation.exposure_measures import luma01

    for low, high, kind in samples:
        lt, ot, rt = _landscape(_thumb(low), _thumb(enhancer(low)), _thumb(high))
        rows.append((_features(lt, ot), np.log2(luma01(rt) + EPS) - np.log2(luma01(ot) + EPS), kind))
    return rows


def train(rows, zero_mean: bool, epochs: int, seed: int):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _network(zero_mean)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    groups: dict[tuple, list] = {}
    for x, y, _ in rows:
        groups.setdefault(x.shape, []).append((x, y))
    for epoch in range(epochs):
        total = 0.0
        for group in groups.values():
            order = rng.permutation(len(group))
            for b in range(0, len(order), 16):
                xb = torch.from_numpy(np.stack([group[i][0] for i in order[b:b + 16]]))
                yb = torch.from_numpy(np.stack([group[i][1] for i in order[b:b + 16]]))
                if rng.uniform() < 0.5:
                    xb, yb = xb.flip(-1), yb.flip(-1)
                loss = (net(xb) - yb).abs().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(xb)
        sched.step()
        print(f"\r  epoch {epoch + 1}/{epochs}: L1 {total / len(rows):.3f} (log2 units)", end="", flush=True)
    print()
    return net.eval()


def apply_gain_map(net, low: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` times the net's gain map (bilinear to full size), no channel raised past CAP."""
    import torch

    lt, ot = _thumb(low), _thumb(out)
    turned = lt.shape[0] > lt.shape[1]
    lt, ot = _landscape(lt, ot)
    with torch.no_grad():
        g = net(torch.from_numpy(_features(lt, ot))[None])[0].numpy()
    g = g.T if turned else g
    h, w = out.shape[:2]
    gain = np.exp2(np.asarray(Image.fromarray(g.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)))
    top = out.max(axis=2).astype(np.float32)
    gain = np.where(gain > 1, np.minimum(gain, np.maximum(1.0, CAP * 255 / np.maximum(top, 1))), gain)
    return np.clip(np.rint(out * gain[..., None]), 0, 255).astype(np.uint8)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lol-prepared", type=Path, required=True,
                    help="a prepared LOL folder: train pairs, and val for (d)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lol-highs", type=int, default=250, help="LOL train references darkened with uneven light")
    ap.add_argument("--lol-pairs", type=int, default=120, help="LOL train real pairs")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--dark", type=Path, default=measures.SHARED / "dark")
    ap.add_argument("--clean", type=Path, default=measures.SHARED / "BSDS500" / "train")
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--params", type=Path, default=measures.ROOT / "params.yaml")
    args = ap.parse_args(argv)

    from lowlight.inference.shadows import lift_shadows

    no_lift = measures.shipped_without_lift()  # each photo through the network once, for all rows

    rows = training_set(no_lift, args)
    methods = {"shipped": lambda x: lift_shadows(no_lift(x), x)}
    for name, zero_mean, keep in (("gain map", False, None), ("gain map, zero mean", True, None),
                                  ("gain map, no LOL pairs", False, {"u", "e", "i"})):
        print(f"training '{name}' on {sum(keep is None or r[2] in keep for r in rows)} thumbnails")
        net = train([r for r in rows if keep is None or r[2] in keep], zero_mean, args.epochs, args.seed)
        methods[name] = (lambda net: lambda x: lift_shadows(apply_gain_map(net, x, no_lift(x)), x))(net)
    held = measures._heldout(args.clean, args.holdout)
    measures.uneven(methods, held, args.params)
    measures.well_lit(methods, held)
    measures.lol_val(methods, args.lol_prepared)


if __name__ == "__main__":
    main()
