"""First-render and slider-change times of every page, with the app warm (Streamlit's AppTest).

    python benchmarks/pages.py [--repeats 3]

Targets on a 2-core CPU: first render <= 3 s per page; a slider change <= 1 s on the 2D pages.
Times are the page script's run on the server (what the user waits for before the browser draws);
"cold" is the first visit in a fresh process (models loading, caches empty), "warm" a later visit;
"slider" moves the page's first slider by one notch (a new computation, not a cache hit).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from dashboard.ui.sitemap import existing_pages

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
# The slider to move on a page, where its first one is not the control that matters (by widget key); others: the first.
SLIDERS = {
    "latent.py": "latent.w",  # the latent sampling grid's guidance scale (the first slider draws the 2-D paths)
    "text_to_image.py": "text_to_image.w",  # the guidance scale: a new grid and its word-changed twin (16 + 16)
}


def _opened() -> AppTest:
    """A fresh session of the app after its first run (the router's: it lists the pages, then Home runs)."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    return at


def _timed(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# torch threads: {torch.get_num_threads()}; median of {args.repeats}")
    header = f"{'page':<22} {'cold s':>7} {'warm s':>7} {'slider s':>9}  {'slider moved':<28} exceptions"
    print(header)
    print("-" * len(header))
    at = _opened()
    for i, spec in enumerate(existing_pages()):  # the pages the router listed in its first run
        at = at if i == 0 else _opened()
        at.switch_page(spec.path)
        cold = _timed(at)
        warm, slides, moved = [], [], "-"
        for _ in range(args.repeats):
            at.switch_page(spec.path)
            warm.append(_timed(at))
            if at.slider:  # one notch, as a user nudges it (ArrowRight, or ArrowLeft at the maximum)
                chosen = [s for s in at.slider if s.key == SLIDERS.get(spec.file)]
                s = chosen[0] if chosen else at.slider[0]
                value = s.value[0] if isinstance(s.value, tuple) else s.value
                notch = s.step or 1
                target = value + notch if value + notch <= s.max else value - notch
                s.set_value((target, s.value[1]) if isinstance(s.value, tuple) else target)
                slides.append(_timed(at))
                moved = f"{s.label[:18]} {value} -> {target}"
        slide = f"{statistics.median(slides):9.2f}" if slides else f"{'-':>9}"
        print(f"{spec.title:<22} {cold:7.2f} {statistics.median(warm):7.2f} {slide}  {moved:<28} {len(at.exception)}",
              flush=True)


if __name__ == "__main__":
    main()
