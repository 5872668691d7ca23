"""ProGAN's growth schedule, measured in real images shown to the discriminator (§3, App. A.1).

Training starts at 4x4 and stabilises there for ``stable`` images; every later resolution first
fades its new blocks in for ``fade`` images (alpha rising linearly from 0 to 1), then stabilises
for ``stable`` images. The final resolution keeps training after its stabilisation until the run
ends (``--kimg``; the official runs go on to 12-15M images). The paper uses 800k + 800k images
(App. A.1); the official TensorFlow code defaults to 600k + 600k (``lod_training_kimg`` and
``lod_transition_kimg`` of its ``TrainingSchedule``), with the same order: stabilise at 4x4, then
fade in and stabilise each doubling. Alpha at n images into a fade-in is n / fade, so a fade-in
starts one image after the previous stabilisation ends, as in the official code. The position is a pure function of the images seen, so a
checkpoint only needs to store that count.

With lod = log2(final / 4) - (resolution steps done) + (1 - alpha) while fading, as the official
code counts it, a phase change (where both codes reset Adam) is a change of floor(lod) or
ceil(lod): the start of each fade-in and the start of each stabilisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    resolution: int
    steps: int            # log2(resolution / 4), what G and D are called with
    alpha: float          # 1.0 outside fade-in
    fading: bool

    @classmethod
    def stable_at(cls, resolution: int) -> "Phase":
        """``resolution`` with its block fully faded in (alpha 1)."""
        return cls(int(resolution), int(resolution).bit_length() - 3, 1.0, False)


class ProGANSchedule:
    def __init__(self, final_resolution: int, fade_images: int, stable_images: int,
                 start_resolution: int = 4) -> None:
        if fade_images < 1 or stable_images < 1:
            raise ValueError(f"fade and stabilisation lengths must be >= 1 image; got "
                             f"{fade_images} and {stable_images}")
        self.start_steps = int(math.log2(start_resolution)) - 2
        self.final_steps = int(math.log2(final_resolution)) - 2
        self.fade = int(fade_images)
        self.stable = int(stable_images)

    @property
    def total_images(self) -> int:
        """Images until the final resolution has been faded in and stabilised once."""
        return self.stable + (self.final_steps - self.start_steps) * (self.fade + self.stable)

    def phase_end(self, steps: int) -> int:
        """Images seen when training at ``steps`` ends (the final resolution: the schedule's end)."""
        return self.stable + (steps - self.start_steps) * (self.fade + self.stable)

    def at(self, images_seen: int) -> Phase:
        if images_seen < self.stable:
            steps, alpha = self.start_steps, 1.0
        else:
            k, rest = divmod(images_seen - self.stable, self.fade + self.stable)
            if rest == 0:
                # exactly where a fade-in starts the official lod is still a whole number: the
                # previous resolution, fully faded in (the next one at alpha 0 computes the same
                # images, but this way the resolution changes where the official code's does)
                steps, alpha = self.start_steps + k, 1.0
            else:
                steps = self.start_steps + 1 + k
                alpha = min(1.0, rest / self.fade)
            if steps > self.final_steps:
                steps, alpha = self.final_steps, 1.0
        return Phase(4 * 2**steps, steps, alpha, alpha < 1.0)
