"""``speed.schedule_free_eval``: the same trained state evaluated at x and at y."""

from __future__ import annotations

import numpy as np
import pytest

from speed import schedule_free_eval as sfe


def test_x_and_y_rows_and_the_interval(capsys):
    rows = sfe.measure(seeds=2, epochs=1, dataset="digits", model="logreg")
    assert len(rows) == 2
    for loss_x, acc_x, loss_y, acc_y in rows:
        assert loss_x > 0 and loss_y > 0 and 0 <= acc_x <= 1 and 0 <= acc_y <= 1
        assert loss_x != loss_y  # two different points of the same run
    table = sfe.table(rows)
    diffs = [r[2] - r[0] for r in rows]
    mean, half = sfe._interval(diffs)
    assert mean == pytest.approx(np.mean(diffs))
    assert half == pytest.approx(12.706 * np.std(diffs, ddof=1) / np.sqrt(2))
    assert f"{mean:+.4f} ± {half:.4f}" in table


def test_seeds_out_of_range_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sfe.main(["--seeds", "1"])
    assert exit_info.value.code == 2
    assert "seeds must be in [2, 10]" in capsys.readouterr().err
