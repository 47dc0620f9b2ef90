"""Progress bars on the terminal: one tqdm bar per stage of a photo's run."""

from __future__ import annotations

import sys


class StageBars:
    """One tqdm bar per stage on stderr."""

    def __init__(self, prefix: str, enabled: bool) -> None:
        self.prefix, self.enabled = prefix, enabled
        self.stage, self.bar = None, None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=100,
                desc=f"{self.prefix}{message}",
                unit="%",
                leave=True,
                bar_format="{desc:<42.42} {percentage:3.0f}%|{bar:24}| {elapsed}",
                file=sys.stderr,
            )
        else:
            self.bar.set_description_str(f"{self.prefix}{message}", refresh=False)
        self.bar.update(max(0, round(fraction * 100) - self.bar.n))
        if fraction >= 1.0:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.stage = None, None
