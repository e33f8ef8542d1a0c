"""``RawData``: what a dataset builder returns, before scaling and splitting."""

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class RawData:
    """What a builder returns: the source arrays, unscaled, with an official test split or not."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: Optional[np.ndarray] = None
    y_test: Optional[np.ndarray] = None
