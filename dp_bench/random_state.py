"""Resuming a fit exactly: the random streams go on where the checkpoint left them.

A Lightning checkpoint holds the weights, the optimiser and the loops, not the random number
generators. A fit resumed from ``last.ckpt`` therefore drew its later shuffles, dropout masks
and Gumbel noise from the streams as seeded at start-up: a different run from the one its
command describes, which a rerun of that command could not reproduce. This callback saves the
global generators with every checkpoint and restores them on resume. The rest of what a
resume must continue is kept where it lives: the training shuffle's own generator and the
next multitask epoch in ``SuperGLUEDataModule.state_dict``, the cached backbone features in
the model's checkpoint (``FeatureCache``).

Written here rather than taken from Lightning because its equivalents
(``lightning.fabric.utilities.seed._collect_rng_states``) are private API.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RandomStateCheckpoint(L.Callback):
    """Saves torch's, CUDA's, NumPy's and Python's generator states in checkpoints; restores them on resume."""

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
        # NumPy's key array as a list of ints: checkpoints load with torch.load(weights_only=True)
        numpy_state = (name, keys.tolist(), position, has_gauss, cached_gaussian)
        state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()  # one per device
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, position, has_gauss, cached_gaussian = state_dict["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
