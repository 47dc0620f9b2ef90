"""Lathe benchmark: the shape prior on many random lathe objects it was never tuned on, and its false use on others.

    python bench/lathes.py                       # 40 lathe objects + 16 others, 640 x 480
    python bench/lathes.py --count 20 --quick    # small images (smoke test)
    python bench/lathes.py --before before.json  # with a "before" column from an earlier --json

Each object of core.oracle.lathes (random profiles, elevations 0-60 degrees, 60 px tall
to the full frame, the axis tilted up to 10 degrees) is meshed through
core.surface.build.reconstruct_surface with the exact depth and with depth corrupted
like a network's (core.oracle.scores.network_like_depth, seeded per object), with the
shape chosen automatically and inflated (the baseline; where auto refuses the prior its
solid is the inflated one, and is not meshed twice). Scores: whether the prior was used,
the whole-object F-score at 2% of the diagonal, the reason for a refusal. Non-lathe
objects (a box, the monkey-head blob, a chair, the toy) give the false-use rate. The
table is printed (and written to --doc). About 6 s per lathe object on an idle core at 640 x 480,
15-40 s on a busy one: 40 objects and 16 others take about 15 minutes on two shared cores.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.oracle.lathes import random_lathe, random_other  # noqa: E402
from core.oracle.scores import network_like_depth, whole_object_score  # noqa: E402
from core.surface.build import reconstruct_surface  # noqa: E402
from core.surface.cloud import point_cloud  # noqa: E402

DOC = ROOT / "docs" / "lathe-benchmark.md"


def one(scene, kind: str, seed: int) -> list[dict]:
    """The rows of one scene: exact and network-like depth, auto and inflate."""
    rows = []
    view = dict(re.findall(r"(\w)=(\d+)", scene.name))
    for label, depth in (
        ("exact", scene.depth),
        ("network-like", network_like_depth(scene.depth, scene.mask, seed=seed)),
    ):
        cloud = point_cloud(depth, scene.rgb, scene.mask, scene.intrinsics)
        row = {
            "scene": scene.name,
            "kind": kind,
            "family": scene.name.split("-")[0],
            "elevation": int(view.get("e", -1)),
            "depth": label,
        }
        for shape in ("auto", "inflate"):
            if shape == "inflate" and row["prior"] != "revolve":
                row["f_inflate"] = row["f_auto"]
                continue
            start = time.perf_counter()
            mesh, info = reconstruct_surface(
                cloud, depth, scene.rgb, scene.mask, scene.intrinsics, shape=shape
            )
            f = round(whole_object_score(mesh, scene)["f_score"], 3)
            row[f"f_{shape}"] = f
            if shape == "auto":
                row["prior"] = info.get("shape")
                row["note"] = info.get("shape_note")
                row["fit"] = info.get("shape_fit")
                row["valid_volume"] = bool(info["watertight"])
                row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def run(count: int, others: int, quick: bool) -> list[dict]:
    size = {"width": 320, "height": 240} if quick else {}
    rows = []
    for seed in range(count):
        rows += one(random_lathe(seed, **size), "lathe", seed)
    for seed in range(others):
        rows += one(random_other(seed, **size), "other", seed)
    return rows


def _reason(note: str | None) -> str:
    """A refusal's note with its numbers taken out, to group them."""
    note = (note or "").removeprefix("inflate (").removesuffix(")")
    return re.sub(r"\d+%", "N%", note) or "-"


def _stats(values) -> str:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return "-"
    return f"{np.median(v):.3f} / {np.percentile(v, 10):.3f} / {v.min():.3f}"


def summary(rows: list[dict]) -> dict:
    """Per depth: detection rate, F (median / 10th percentile / min) of the detected,
    of all with auto and of inflate; share >= 0.90; false-use rate on others."""
    out = {}
    for depth in ("exact", "network-like"):
        lathes = [r for r in rows if r["kind"] == "lathe" and r["depth"] == depth]
        others = [r for r in rows if r["kind"] == "other" and r["depth"] == depth]
        used = [r for r in lathes if r["prior"] == "revolve"]
        out[depth] = {
            "lathes": len(lathes),
            "detected": len(used) / max(len(lathes), 1),
            "f_detected": _stats([r["f_auto"] for r in used]),
            "f_auto": _stats([r["f_auto"] for r in lathes]),
            "f_inflate": _stats([r["f_inflate"] for r in lathes]),
            "at_090": sum(r["f_auto"] >= 0.9 for r in used) / max(len(used), 1),
            "others": len(others),
            "false_use": sum(r["prior"] == "revolve" for r in others) / max(len(others), 1),
            "valid": sum(r["valid_volume"] for r in lathes + others),
        }
    return out


def markdown(rows: list[dict], before: list[dict] | None = None) -> str:
    now = summary(rows)
    was = summary(before) if before else None
    lines = [
        "| depth | measure | " + ("before | " if was else "") + "now |",
        "|---|---|" + ("---|" if was else "") + "---|",
    ]
    measures = [
        ("detected (lathe objects)", "detected", "{:.1%}"),
        ("F auto, detected: median / 10th pct / min", "f_detected", "{}"),
        ("share of detected with F >= 0.90", "at_090", "{:.1%}"),
        ("F auto, all lathe objects", "f_auto", "{}"),
        ("F inflate, all lathe objects", "f_inflate", "{}"),
        ("wrongly used on non-lathe objects", "false_use", "{:.1%}"),
    ]
    for depth in ("exact", "network-like"):
        for label, key, fmt in measures:
            cells = [fmt.format(now[depth][key])]
            if was:
                cells.insert(0, fmt.format(was[depth][key]))
            lines.append(f"| {depth} | {label} | " + " | ".join(cells) + " |")
    n = now["exact"]
    lines.append(
        f"\n{n['lathes']} lathe objects and {n['others']} others per depth; valid volumes: "
        f"{now['exact']['valid'] + now['network-like']['valid']} of {len(rows)} automatic solids."
    )
    lines += ["", "Refusals on lathe objects, grouped (count per depth):", ""]
    lines += ["| reason | exact | network-like |", "|---|---|---|"]
    reasons: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["kind"] == "lathe" and r["prior"] != "revolve":
            reasons.setdefault(_reason(r["note"]), {}).setdefault(r["depth"], 0)
            reasons[_reason(r["note"])][r["depth"]] += 1
    for reason, counts in sorted(reasons.items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"| {reason} | {counts.get('exact', 0)} | {counts.get('network-like', 0)} |")
    lines += ["", "By family and elevation (exact depth: detected, median F auto):", ""]
    lines += ["| family | e < 10 | 10 <= e < 30 | e >= 30 |", "|---|---|---|---|"]
    for family in dict.fromkeys(r["family"] for r in rows if r["kind"] == "lathe"):
        cells = []
        for lo, hi in ((0, 10), (10, 30), (30, 91)):
            sel = [
                r
                for r in rows
                if r["family"] == family and r["depth"] == "exact" and lo <= r["elevation"] < hi
            ]
            if not sel:
                cells.append("-")
                continue
            det = sum(r["prior"] == "revolve" for r in sel)
            cells.append(f"{det}/{len(sel)}, {np.median([r['f_auto'] for r in sel]):.2f}")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    worst = sorted((r for r in rows if r["kind"] == "lathe"), key=lambda r: r["f_auto"])[:8]
    lines += ["", "Lowest F auto on lathe objects:", ""]
    lines += ["| scene | depth | F auto | F inflate | prior |", "|---|---|---|---|---|"]
    for r in worst:
        lines.append(
            f"| {r['scene']} | {r['depth']} | {r['f_auto']:.3f} | {r['f_inflate']:.3f} "
            f"| {r['note']} |"
        )
    used = [r for r in rows if r["kind"] == "other" and r["prior"] == "revolve"]
    if used:
        lines += ["", "Non-lathe objects the prior was used on: "]
        lines[-1] += ", ".join(
            f"{r['scene']} ({r['depth']}, F {r['f_inflate']:.3f} -> {r['f_auto']:.3f})"
            for r in used
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="lathe objects (seeds 0..N-1)")
    parser.add_argument("--others", type=int, default=16, help="non-lathe objects")
    parser.add_argument("--quick", action="store_true", help="320 x 240 images")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--before", type=Path, help="an earlier run's --json, for a column")
    parser.add_argument("--doc", type=Path, default=None, help=f"write the table here (e.g. {DOC})")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(args.count, args.others, args.quick)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    before = json.loads(args.before.read_text()) if args.before else None
    table = markdown(rows, before)
    print(table)
    print(f"{time.perf_counter() - start:.0f} s")
    if args.doc:
        args.doc.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
