"""Peak memory of a run on a 48-MP JPEG against a 640-px one: ``python bench/run.py --only memory``.

Each run is a fresh ``img2mesh`` process (weight-free: colour key, inflation, grid
mesh, so no model takes memory of its own); its peak resident set comes from the
kernel's accounting of that child (``os.wait4``). The two photos alternate, so a
busy machine weighs on both alike; medians are reported with their ratio (target:
the big photo's peak at most 1.2 times the small one's).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.2
BIG = (8000, 6000)  # 48 megapixels


def make_photos(folder: Path) -> dict[str, Path]:
    """The toy photo scaled to 8000 x 6000 and to 640 x 480, both as JPEG (made in a child process)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"48 MP (8000x6000)": folder / "big.jpg", "640 px (640x480)": folder / "small.jpg"}
    # sensor-like grain, so that the big file is as large as a camera's (about 20 MB)
    code = (
        "import sys; import numpy as np; from PIL import Image\n"
        "src = Image.open(sys.argv[1]).convert('RGB')\n"
        f"big = np.asarray(src.resize({BIG}, Image.Resampling.BICUBIC), dtype=np.int16)\n"
        "big += np.random.default_rng(0).integers(-8, 9, big.shape, dtype=np.int16)\n"
        "Image.fromarray(big.clip(0, 255).astype(np.uint8)).save(sys.argv[2], quality=90)\n"
        "src.resize((640, 480), Image.Resampling.LANCZOS).save(sys.argv[3], quality=90)\n"
    )
    big, small = paths.values()
    if not (big.exists() and small.exists()):
        subprocess.run(
            [sys.executable, "-c", code, str(ROOT / "examples" / "toy.jpg"), str(big), str(small)],
            check=True,
        )
    return paths


def peak_rss_mib(photo: Path, out: Path, home: Path) -> float:
    """Peak resident memory (MiB) of one weight-free ``img2mesh`` run on ``photo``."""
    args = [sys.executable, "-m", "core", str(photo), "-o", str(out), "--overwrite", "-q"]
    args += ["--segment", "key", "--depth", "inflate", "--mesh", "grid", "--no-cache"]
    env = {**os.environ, "IMG2MESH_HOME": str(home)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"img2mesh failed on {photo} (exit {proc.returncode})")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
    return usage.ru_maxrss * scale / 2**20


def measure(work: Path, repeat: int = 3) -> dict:
    photos = make_photos(work / "memory")
    peaks: dict[str, list[float]] = {name: [] for name in photos}
    for _ in range(repeat):
        for name, photo in photos.items():  # interleaved
            peaks[name].append(peak_rss_mib(photo, work / "memory" / "out.ply", work / "home"))
    medians = {name: statistics.median(v) for name, v in peaks.items()}
    big, small = medians.values()
    return {
        "peak_rss_mib": {k: round(v, 1) for k, v in medians.items()},
        "runs_mib": {k: [round(x, 1) for x in v] for k, v in peaks.items()},
        "file_mib": {k: round(p.stat().st_size / 2**20, 2) for k, p in photos.items()},
        "ratio": round(big / small, 3),
        "target_ratio": TARGET_RATIO,
        "met": big / small <= TARGET_RATIO,
        "repeat": repeat,
    }


def markdown(memory: dict) -> list[str]:
    lines = [
        "## Memory on a large photo",
        "",
        "Peak resident memory of a whole weight-free run (`--segment key --depth inflate "
        "--mesh grid`), each in a fresh process, photos alternating, median of "
        f"{memory['repeat']}. A JPEG is decoded straight at a reduced size (Pillow's draft "
        "mode), so a 48-MP photo costs about what a small one does "
        f"(target: at most {memory['target_ratio']}x).",
        "",
        "| photo | file | peak RSS |",
        "|---|---|---|",
    ]
    for name, peak in memory["peak_rss_mib"].items():
        lines.append(f"| {name} | {memory['file_mib'][name]} MiB | {peak:.0f} MiB |")
    verdict = "met" if memory["met"] else "NOT met"
    lines += ["", f"Ratio {memory['ratio']:.2f}x: target {verdict}.", ""]
    return lines


def main(repeat: int = 3, workdir: Path | None = None) -> int:
    import json

    work = workdir or Path(tempfile.mkdtemp(prefix="img2mesh-memory-"))
    memory = measure(work, repeat)
    print("\n".join(markdown(memory)))
    out = ROOT / "bench" / "results" / "memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(memory, indent=2) + "\n")
    return 0 if memory["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
