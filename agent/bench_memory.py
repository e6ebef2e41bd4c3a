"""Peak memory of one edit of a big upload, beyond the loaded models:

    OMP_WAIT_POLICY=PASSIVE python -m promptartisan.agent.bench_memory [--size 7000]

Each case runs in a fresh process: the tiny models are loaded and a small warm-up edit is made
(imports, allocator pools); then the peak resident set is reset to the current one (Linux:
/proc/self/clear_refs), which is the baseline, a SIZE×SIZE PNG is uploaded (a new session) and
edited through `Editor.turn`, and `ru_maxrss` read. The difference is the edit's own peak (the
models' weights are in the baseline: tiny ones here; the rest of the cost does not depend on
them). Cases: a text target found by grounding, the person's mask (a disc),
the whole image (the paste-back's worst case: its box is the whole picture).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CASES = {
    "grounded": "make the face blue",
    "mask": "make it gold",
    "whole": "make the whole image warmer",
}


def peak_mib() -> float:
    """This process's peak resident set since the last reset (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> float:
    """Set the peak resident set to the current one; that current one, in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_mib()


def write_photo(path: Path, size: int) -> None:
    """A SIZE×SIZE RGB PNG with smooth gradients and some texture, like a large photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(path)


def run_case(case: str, size: int, steps: int, folder: Path) -> dict[str, object]:
    """One measured edit in this process; the figures as a dict."""
    import numpy as np
    from PIL import Image

    from promptartisan.agent.editor import Editor
    from promptartisan.agent.sessions.store import Session
    from promptartisan.settings import Settings

    settings = Settings(tiny=True, tiny_dir=folder / "tiny", session_dir=folder / "sessions",
                        device="cpu", dtype="float32", steps=steps, seed=7,
                        max_pixels=max(size * size, Settings().max_pixels))
    editor = Editor(settings)
    editor.pipeline, editor.grounder  # noqa: B018  (load both before the baseline)
    warm = Session.create(settings.session_dir, Image.new("RGB", (64, 48), (90, 120, 200)))
    editor.turn(warm, CASES[case], mask=np.ones((48, 64), dtype=bool))
    photo = folder / "photo.png"
    write_photo(photo, size)
    baseline = reset_peak()

    started = time.monotonic()
    session = Session.create(settings.session_dir, photo, settings.max_pixels)
    mask = None
    if case == "mask":
        ys, xs = np.ogrid[:size, :size]
        mask = (xs - size / 2) ** 2 + (ys - size / 2) ** 2 <= (size * 0.35) ** 2
    result = editor.turn(session, CASES[case], mask=mask)
    if result.kind == "clarify" and result.choices:
        result = editor.turn(session, result.choices[0])
    seconds = time.monotonic() - started
    peak = peak_mib()
    return {"case": case, "size": size, "kind": result.kind, "message": result.message,
            "baseline_mib": round(baseline), "peak_mib": round(peak),
            "edit_mib": round(peak) - round(baseline), "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=7000,
                        help="side of the square upload (max_pixels is raised to fit)")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (tiny engine)")
    parser.add_argument("--case", choices=sorted(CASES), action="append",
                        help="run only these cases (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cases = args.case or list(CASES)
    if args.child:
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(run_case(cases[0], args.size, args.steps, Path(folder))))
        return 0
    print(f"{'case':<9} {'size':>11} {'kind':<6} {'baseline MiB':>12} {'peak MiB':>9} "
          f"{'edit MiB':>9} {'seconds':>8}")
    failed = False
    rows = []
    for case in cases:
        child = subprocess.run(
            [sys.executable, "-m", "promptartisan.agent.bench_memory", "--child", "--case", case,
             "--size", str(args.size), "--steps", str(args.steps)],
            capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(f"{case}: failed\n{child.stderr[-2000:]}", file=sys.stderr)
            failed = True
            continue
        row = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append({"case": case, "size": args.size, **row})
        print(f"{case:<9} {f'{args.size}×{args.size}':>11} {row['kind']:<6} "
              f"{row['baseline_mib']:>12} {row['peak_mib']:>9} {row['edit_mib']:>9} "
              f"{row['seconds']:>8}")
        if row["kind"] != "edit":
            print(f"  {case}: {row['message']}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
