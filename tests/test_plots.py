"""Tests of beatdbn.plots: every plot decodes as a PNG of the expected size, and the data
arrangement behind the pictures (filter mosaics, row normalization, CSV parsing) is right."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.models.dbn import ConvDBN, DBNConfig
from beatdbn.plots import DPI, plot_confusion, plot_filters, plot_learning_curves, plot_pretraining, read_csv_rows
from beatdbn.plots.confusion import normalize_rows
from beatdbn.plots.filters import filter_mosaic


def _size(img, height, width):
    """Pixel size within one of height x width (matplotlib truncates fractional pixels)."""
    return abs(img.shape[0] - height) <= 1 and abs(img.shape[1] - width) <= 1


def _png(path, min_side=150):
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert min(img.shape[:2]) >= min_side
    assert float(img[..., :3].std()) > 0.01  # not blank
    return img


@pytest.fixture
def tiny_dbn():
    return ConvDBN(DBNConfig(n_maps_1a=4, n_maps_1b=4, n_maps_3=4))


# -- filters -------------------------------------------------------------------------------


def test_filter_mosaic_orders_by_norm_flips_rows_and_scales_per_filter():
    w = np.zeros((3, 12, 8))
    w[0, 0, 0] = 0.5  # norm 0.5, row 0 (C), beat 0
    w[1, 11, 7] = -2.0  # norm 2
    w[2, 3, 2] = 1.0  # norm 1
    m, order, max_abs = filter_mosaic(w, ncols=2)
    assert order.tolist() == [1, 2, 0]
    assert max_abs == 2.0
    assert m.shape == (2 * 13 - 1, 2 * 9 - 1)
    # tile 0 = filter 1: row 11 (B) is the top row of the tile, beat 7 its last column
    assert m[0, 7] == -1.0
    # tile 2 = filter 0 (second tile row): row 0 (C) is the bottom row of its tile, scaled to 1
    assert m[13 + 11, 0] == 1.0
    # tile 1 = filter 2: row 3 sits 3 rows above the bottom of its tile
    assert m[11 - 3, 9 + 2] == 1.0
    assert np.isnan(m[12]).all() and np.isnan(m[:, 8]).all()  # gaps
    assert np.isnan(m[13:, 9:]).all()  # the empty fourth tile
    ml, _, _ = filter_mosaic(w, ncols=2, scale="layer")
    assert ml[13 + 11, 0] == 0.25  # 0.5 / 2.0
    m1, order1, _ = filter_mosaic(w, ncols=3, max_filters=1)
    assert order1.tolist() == [1] and m1.shape == (12, 26)


def test_plot_filters_writes_one_png_per_layer(tmp_path, tiny_dbn):
    paths = plot_filters(tiny_dbn, tmp_path / "f")
    assert sorted(paths) == ["1a", "1b", "3"]
    for stage, p in paths.items():
        assert p == tmp_path / "f" / f"filters_{stage}.png"
        _png(p)
    # layer 3 tiles are 8 wide and 8 tall inputs: a taller figure than the 1a mosaic of 2x2 tiles
    assert imread(paths["3"]).shape[0] > 0


def test_plot_filters_from_saved_directory_and_bad_arguments(tmp_path, tiny_dbn):
    with torch.no_grad():
        tiny_dbn.layer1a.weight.zero_()
        tiny_dbn.layer1a.weight[2, 0, 0] = 1.0
    tiny_dbn.save(tmp_path / "dbn")
    paths = plot_filters(tmp_path / "dbn", tmp_path / "out", stages=("1a",), max_filters=2)
    assert list(paths) == ["1a"]
    _png(paths["1a"])
    with pytest.raises(ParameterError, match="max_filters"):
        plot_filters(tiny_dbn, tmp_path, max_filters=0)
    with pytest.raises(ParameterError, match="stage"):
        plot_filters(tiny_dbn, tmp_path, stages=("2",))
    with pytest.raises(ParameterError, match="scale"):
        plot_filters(tiny_dbn, tmp_path, scale="global")


# -- pretraining -----------------------------------------------------------------------------


def _pretrain_rows():
    rows = []
    for stage in ("1a", "1b", "3"):
        for i in range(1, 41):
            gaussian = stage == "1b"
            rows.append({"stage": stage, "pass": 1 if i <= 20 else 2, "batch": i, "tracks": 8 * i,
                         "beats": 4000 * i, "reconstruction_error": 1.0 / i, "mean_hidden": 0.05 + 0.5 / i,
                         "free_energy_data": math.nan if gaussian else -10.0 - i,
                         "free_energy_recon": math.nan if gaussian else -9.0 - i, "seconds": 0.1 * i})
    return rows


def test_plot_pretraining_from_rows_and_csv(tmp_path):
    rows = _pretrain_rows()
    p = plot_pretraining(rows, tmp_path / "a" / "pre.png")
    img = _png(p)
    # 3 stages: width 3.6 * 3 + 0.6 inches, height 7.2 inches at DPI
    assert _size(img, round(7.2 * DPI), round((3.6 * 3 + 0.6) * DPI))
    csv_path = tmp_path / "pretrain.csv"
    keys = list(rows[0])
    csv_path.write_text(",".join(keys) + "\n" + "\n".join(",".join(str(r[k]) for k in keys) for r in rows) + "\n")
    back = read_csv_rows(csv_path)
    assert back[0]["stage"] == "1a" and back[0]["tracks"] == 8 and isinstance(back[0]["tracks"], int)
    assert math.isnan(back[40]["free_energy_data"]) and back[40]["stage"] == "1b"
    only_1b = [r for r in back if r["stage"] == "1b"]
    img = _png(plot_pretraining(only_1b, tmp_path / "one.png"))
    assert abs(img.shape[1] - (3.6 + 0.6) * DPI) <= 1
    _png(plot_pretraining(csv_path, tmp_path / "from_csv.png"))


def test_plot_pretraining_rejects_empty_input(tmp_path):
    with pytest.raises(DataError, match="stage"):
        plot_pretraining([], tmp_path / "x.png")
    with pytest.raises(DataError, match="cannot read"):
        read_csv_rows(tmp_path / "absent.csv")


# -- learning curves ---------------------------------------------------------------------------


def test_plot_learning_curves(tmp_path):
    curves = {}
    for init, tau in (("pretrained", 4.0), ("random", 9.0)):
        for lr in (0.05, 0.005, 0.0005):
            curves[f"{init} lr={lr}"] = [
                {"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.5, "valid_accuracy": 0.4 * (1 - math.exp(-e / tau))}
                for e in range(1, 31)]
    img = _png(plot_learning_curves(curves, tmp_path / "lc.png", title="genre", chance=0.05))
    assert _size(img, round(3.8 * DPI), round(10.5 * DPI))
    # without any training loss: one panel only, a narrower figure
    only_valid = {"pretrained lr=0.05": [{"epoch": e, "valid_accuracy": 0.1 * e} for e in range(1, 4)]}
    img = _png(plot_learning_curves(only_valid, tmp_path / "v.png"))
    assert _size(img, round(3.8 * DPI), round(6.5 * DPI))
    with pytest.raises(ParameterError, match="empty"):
        plot_learning_curves({}, tmp_path / "none.png")


# -- confusion ------------------------------------------------------------------------------------


def test_normalize_rows():
    m = normalize_rows(np.array([[1, 3], [0, 0], [2, 2]]))
    np.testing.assert_allclose(m, [[0.25, 0.75], [0, 0], [0.5, 0.5]])


@pytest.mark.parametrize("n", [12, 50])
def test_plot_confusion_sizes(tmp_path, n):
    rng = np.random.default_rng(n)
    m = rng.integers(0, 5, (n, n)) + 10 * np.eye(n, dtype=int)
    p = plot_confusion(m, [f"class {i}" for i in range(n)], tmp_path / f"cm{n}.png", title="t")
    side = float(np.clip(2.5 + 0.19 * n, 4.0, 13.0))
    img = _png(p)
    assert _size(img, round(side * DPI), round((side + 1.2) * DPI))


def test_plot_confusion_rejects_bad_matrices(tmp_path):
    with pytest.raises(ParameterError, match="2 class names"):
        plot_confusion(np.eye(3), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ParameterError, match="shape"):
        plot_confusion(np.ones((2, 3)), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ParameterError, match="negative"):
        plot_confusion([[1, -1], [0, 1]], ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
