"""The training examples run and reach their numbers (reduced where a full run is slow)."""
from __future__ import annotations

import pathlib
import runpy
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name):
    sys.path.insert(0, str(ROOT / "examples"))  # examples import their shared datasets module
    try:
        return runpy.run_path(str(ROOT / "examples" / f"{name}.py"), run_name=f"{name}_test")
    finally:
        sys.path.pop(0)


def test_mlp_digits_reaches_97_percent():
    # the full run on the NumPy backend (the numba backend computes the same numbers: same graph,
    # same seeds; tests/backends compare the two op by op)
    r = _example("mlp_digits")["main"](["--backend", "numpy", "--quiet", "--out", ""])
    assert r["test_accuracy"] >= 0.97


def test_mlp_digits_trains_on_numba_and_writes_curves_and_checkpoint(tmp_path):
    r = _example("mlp_digits")["main"](["--epochs", "3", "--quiet", "--out", str(tmp_path)])
    assert r["test_accuracy"] > 0.85
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    import graphc as gc
    assert "model/0.W" in gc.load(tmp_path / "mlp_digits.npz")
    # the drawing of the compiled step (DOT text where Graphviz is missing; make installs it)
    drawn = [p.name for p in tmp_path.glob("mlp_graph.*")]
    assert drawn == ["mlp_graph.svg"] or drawn == ["mlp_graph.dot"]
    text = (tmp_path / drawn[0]).read_text()
    assert text.count("cluster_k") >= 40 and "0.W :=" in text


def test_softmax_digits():
    r = _example("softmax_digits")["main"](["--epochs", "10", "--backend", "numpy", "--quiet"])
    assert r["test_accuracy"] > 0.93


def test_logistic_regression_beats_the_baseline():
    r = _example("logistic_regression")["main"](["--epochs", "8", "--folds", "3", "--backend", "numpy", "--quiet"])
    assert r["test_accuracy"] > 0.93 > r["baseline"] + 0.2
    assert r["cv_accuracy"] > 0.93


def test_polynomial_fit_shows_under_and_over_fitting():
    rows = _example("polynomial_fit")["main"](["--backend", "numpy", "--steps", "6000"])
    (tr1, te1), (tr4, te4), (tr20, te20), (tr20l2, te20l2) = rows.values()
    assert tr1 > 0.4 and te1 > 0.4                # underfit: both errors far above the noise (0.2)
    assert tr20 < tr4 < 0.2 < te4 < 0.3           # degree 4 is about right
    assert te20 > 3 * te4                          # degree 20 overfits
    assert te20l2 < 0.3                            # and the L2 penalty repairs it


@pytest.mark.parametrize("backend", ["numpy"])
def test_regularization_digits_compares_all_variants(backend):
    r = _example("regularization_digits")["main"](["--epochs", "4", "--train", "200", "--backend", backend])
    assert list(r) == ["plain", "dropout 0.5", "weight decay", "batch norm"]
    assert all(v["val_accuracy"] > 0.8 for v in r.values())


def test_cnn_digits_reaches_98_percent():
    # the full run on the NumPy backend (~8 s; numba computes the same numbers but compiles its 105
    # kernels for ~45 s first, which CI's fresh cache would pay)
    r = _example("cnn_digits")["main"](["--backend", "numpy", "--quiet"])
    assert r["test_accuracy"] >= 0.98


def test_lstm_sequence_beats_the_persistence_baseline():
    # the full run on NumPy (~3 s): the LSTM's test error is a fraction of the baseline's
    r = _example("lstm_sequence")["main"](["--backend", "numpy", "--quiet"])
    assert r["lstm_mse"] < r["baseline_mse"] / 3


def test_char_gpt_trains_samples_and_draws(tmp_path):
    # a small configuration on the NumPy backend (tests/backends/test_torch_reference.py runs this
    # model on numba against torch); the full one (3000 steps) is `python examples/char_gpt.py`
    r = _example("char_gpt")["main"](["--backend", "numpy", "--steps", "60", "--eval-every", "30",
                                      "--eval-batches", "4", "--batch", "8",
                                      "--context", "16", "--d-model", "32", "--heads", "2", "--lr", "1e-2",
                                      "--warmup", "10", "--sample", "30", "--quiet", "--out", str(tmp_path)])
    first, last = r["curve"]["val"]
    assert last < first and r["val_bpc"] < 5.0  # below 6.66 bits, the uniform guess over 101 ids
    assert len(r["sample"]) == 30
    assert (tmp_path / "char_gpt_curves.png").read_bytes()[:4] == b"\x89PNG"
    step = (tmp_path / "char_gpt_step.dot").read_text()
    assert step.startswith("digraph") and "matmul" in step and "W_in :=" in step
    assert any(p.name.startswith("char_gpt_model.") for p in tmp_path.iterdir())


def test_char_lstm_trains_and_samples(tmp_path):
    r = _example("char_lstm")["main"](["--backend", "numpy", "--steps", "40", "--eval-every", "20",
                                       "--eval-batches", "4", "--batch", "8",
                                       "--context", "8", "--embed", "16", "--hidden", "32", "--lr", "2e-2",
                                       "--warmup", "5", "--sample", "20", "--quiet", "--out", str(tmp_path)])
    first, last = r["curve"]["val"]
    assert last < first and len(r["sample"]) == 20
    assert (tmp_path / "char_lstm_curves.png").exists() and (tmp_path / "char_lstm_step.dot").exists()


def test_onnx_finetune_improves_an_exported_torch_model():
    pytest.importorskip("onnx")
    r = _example("onnx_finetune")["main"](["--epochs", "8", "--backend", "numpy", "--quiet"])
    assert r["after"] > r["before"] + 0.03
    assert r["onnxruntime_diff"] is None or r["onnxruntime_diff"] < 1e-4
