"""Checkpoints (atomic, checked) and the Trainer (batches, validation, early stopping, schedules,
progress, cross-validation). Backend-independent logic: run on the NumPy backend, except where
noted; the digits example trains on numba in tests/test_examples.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc as gc
from graphc.checkpoint import CheckpointError


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2, 0], [-2, 1], [0, -2]], np.float32)
    X = (centers[y] + rng.normal(size=(n, 2))).astype(np.float32)
    return X, y


def _classifier(hidden=8, seed=0, dropout=0.0, lr=0.05, backend="numpy"):
    gc.seed(seed)
    layers = [gc.nn.Linear(2, hidden, init="he_normal"), gc.nn.BatchNorm(hidden), gc.nn.ReLU()]
    if dropout:
        layers.append(gc.nn.Dropout(dropout))
    model = gc.nn.Sequential(*layers, gc.nn.Linear(hidden, 3))
    x = gc.placeholder((None, 2), "float32", name="x")
    y = gc.placeholder((None,), "int64", name="y")
    logits = model(x)
    loss = gc.cross_entropy(logits, y)
    return gc.Trainer([x, y], loss, gc.optim.Adam(lr), metrics={"accuracy": gc.accuracy(logits, y)},
                      predict=gc.softmax(logits), model=model, backend=backend)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_restores_model_and_optimizer(tmp_path):
    X, y = _blobs()
    tr = _classifier()
    tr.fit(X, y, epochs=2, batch_size=32, verbose=False)
    path = gc.save(tmp_path / "ck", tr)
    assert path.endswith(".npz") and os.path.exists(path)
    saved = {k: v.value.copy() for k, v in tr.named_state().items()}
    assert "optimizer/step" in saved and "model/1.running_mean" in saved and "optimizer/0.m" in saved
    tr.fit(X, y, epochs=1, batch_size=32, verbose=False)
    assert not np.array_equal(tr.named_state()["model/0.W"].value, saved["model/0.W"])
    gc.load(path, tr)
    for k, v in tr.named_state().items():
        np.testing.assert_array_equal(v.value, saved[k], err_msg=k)
    arrays = gc.load(path)
    assert set(arrays) == set(saved)


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    X, y = _blobs()
    a = _classifier(seed=1)
    a.fit(X, y, epochs=1, batch_size=40, seed=3, verbose=False)
    gc.save(tmp_path / "mid.npz", a)
    a.fit(X, y, epochs=1, batch_size=40, seed=4, verbose=False)
    b = _classifier(seed=99)  # other initial weights: everything must come from the checkpoint
    gc.load(tmp_path / "mid.npz", b)
    b.fit(X, y, epochs=1, batch_size=40, seed=4, verbose=False)
    for (k, p), q in zip(a.named_state().items(), b.named_state().values()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=k)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    W = gc.parameter(np.arange(6.0).reshape(2, 3), name="W")
    path = gc.save(tmp_path / "ck.npz", {"W": W})
    before = open(path, "rb").read()
    W.value = np.full((2, 3), 7.0)

    def crash(src, dst):  # the process dies between writing the temporary file and the rename
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        gc.save(path, {"W": W})
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(gc.load(path)["W"], np.arange(6.0).reshape(2, 3))


def test_loading_a_mismatched_checkpoint_names_it_and_changes_nothing(tmp_path):
    a = gc.parameter(np.zeros(3), name="a")
    b = gc.parameter(np.zeros((2, 2)), name="b")
    path = gc.save(tmp_path / "ck.npz", {"a": gc.parameter(np.ones(3)), "b": gc.parameter(np.ones((2, 3)))})
    with pytest.raises(CheckpointError) as e:
        gc.load(path, {"a": a, "b": b})
    assert "b: checkpoint has shape (2, 3), the parameter b has (2, 2)" in str(e.value)
    assert "nothing was loaded" in str(e.value)
    np.testing.assert_array_equal(a.value, np.zeros(3))  # 'a' fit, but was not loaded either
    with pytest.raises(CheckpointError, match="missing from the checkpoint: c"):
        gc.load(path, {"a": a, "b": gc.parameter(np.zeros((2, 3))), "c": gc.parameter(np.zeros(1))})
    with pytest.raises(CheckpointError, match="dtype float64, the parameter a has float32"):
        gc.load(path, {"a": gc.parameter(np.zeros(3, np.float32), name="a"), "b": gc.parameter(np.zeros((2, 3)))})
    # strict=False: a partial load still checks shapes of what it loads
    c = gc.parameter(np.zeros(3))
    gc.load(path, {"a": c}, strict=False)
    np.testing.assert_array_equal(c.value, np.ones(3))


def test_checkpoint_of_a_function_and_of_duplicate_names(tmp_path):
    x = gc.placeholder((None, 2))
    W = gc.parameter(np.ones((2, 2), np.float32), name="W")
    fn = gc.compile([x], gc.dropout(x @ W, 0.5), training=True)
    assert list(gc.load(gc.save(tmp_path / "f.npz", fn))) == ["W"]  # the random key is left out
    W2 = gc.parameter(np.ones((2, 2), np.float32), name="W")
    fn2 = gc.compile([x], x @ W + x @ W2)
    with pytest.raises(CheckpointError, match="two parameters are named 'W'"):
        gc.save(tmp_path / "g.npz", fn2)


# ---------------------------------------------------------------- Trainer
@pytest.fixture(scope="module")
def fitted():
    X, y = _blobs(240)
    tr = _classifier(dropout=0.1)
    sched = gc.optim.step_decay(0.05, 3, 0.5)
    h = tr.fit(X[:180], y[:180], epochs=8, batch_size=32, validation_data=(X[180:], y[180:]),
               schedule=sched, verbose=False)
    return tr, h, X, y, sched


def test_fit_learns_and_records_history(fitted):
    tr, h, X, y, sched = fitted
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert h.epochs == 8 and all(len(v) == 8 for v in h.history.values())
    assert h["lr"] == [sched(e) for e in range(8)]
    assert h["loss"][-1] < h["loss"][0]
    ev = tr.evaluate(X[180:], y[180:])
    assert ev["accuracy"] > 0.85
    assert ev == pytest.approx({"loss": h["val_loss"][-1], "accuracy": h["val_accuracy"][-1]})
    prob = tr.predict(X[180:])
    assert prob.shape == (60, 3)
    np.testing.assert_allclose(prob.sum(1), 1, rtol=1e-5)
    assert (prob.argmax(1) == y[180:]).mean() == pytest.approx(ev["accuracy"])


def test_evaluate_is_inference_mode_and_deterministic(fitted):
    tr, _, X, y, _ = fitted
    state = {k: v.value.copy() for k, v in tr.named_state().items()}
    assert tr.evaluate(X, y) == tr.evaluate(X, y)
    for k, v in tr.named_state().items():  # evaluation moved no running statistic and no key
        np.testing.assert_array_equal(v.value, state[k], err_msg=k)


def test_early_stopping_restores_the_best_epoch():
    X, y = _blobs()
    a = _classifier(seed=4)
    # "max" on a falling loss: epoch 0 stays best, so training stops after patience more epochs
    h = a.fit(X, y, epochs=10, batch_size=30, seed=1, verbose=False,
              early_stopping=gc.EarlyStopping(patience=2, monitor="loss", mode="max"))
    assert h.stopped_early and h.best_epoch == 0 and h.epochs == 3
    b = _classifier(seed=4)
    b.fit(X, y, epochs=1, batch_size=30, seed=1, verbose=False)
    for k, p in a.model.named_state().items():
        np.testing.assert_array_equal(p.value, b.model.named_state()[k].value, err_msg=k)


def test_fit_errors_and_quiet_output(capsys):
    X, y = _blobs(30)
    tr = _classifier()
    with pytest.raises(gc.FeedError, match="needs 2 arrays"):
        tr.fit(X, epochs=1)
    with pytest.raises(gc.FeedError, match="different numbers of samples"):
        tr.fit(X, y[:10], epochs=1)
    with pytest.raises(gc.GraphError, match="monitors 'val_loss'"):
        tr.fit(X, y, epochs=1, early_stopping=gc.EarlyStopping(monitor="val_loss"), verbose=False)
    tr.fit(X, y, epochs=2, batch_size=8, verbose=False)
    assert capsys.readouterr().err == ""
    tr.fit(X, y, epochs=1, batch_size=8, verbose=True)
    assert "epoch 1/1" in capsys.readouterr().err


def test_history_plot_writes_a_png(fitted, tmp_path):
    _, h, *_ = fitted
    path = h.plot(tmp_path / "curves.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cross_validate_trains_a_fresh_model_per_fold():
    X, y = _blobs(90)
    built = []

    def build():
        built.append(_classifier(seed=len(built)))
        return built[-1]
    cv = gc.cross_validate(build, X, y, k=3, epochs=3, batch_size=16, verbose=False)
    assert len(cv.folds) == 3 and len(built) == 3
    assert len({id(t.model) for t in built}) == 3
    accs = [f["accuracy"] for f in cv.folds]
    assert cv.mean("accuracy") == pytest.approx(np.mean(accs)) and cv.std("accuracy") == pytest.approx(np.std(accs))
    assert cv.mean("accuracy") > 0.6
    with pytest.raises(gc.GraphError, match="k <="):
        gc.cross_validate(build, X[:2], y[:2], k=3)


# ---------------------------------------------------------------- checkpoints a hostile user makes
def test_any_parameter_name_round_trips(tmp_path):
    names = ["file", "allow_pickle", "__format__", "format", "names", "a0", "x/y z", ""]
    state = {n: gc.parameter(np.full(2, k, np.float32)) for k, n in enumerate(names)}
    path = gc.save(tmp_path / "ck.npz", state)
    arrays = gc.load(path)
    assert list(arrays) == names
    for k, n in enumerate(names):
        np.testing.assert_array_equal(arrays[n], np.full(2, k))
    fresh = {n: gc.parameter(np.zeros(2, np.float32)) for n in names}
    gc.load(path, fresh)
    assert [float(fresh[n].value[0]) for n in names] == list(range(len(names)))


def test_damaged_or_foreign_files_are_checkpoint_errors_naming_the_file(tmp_path):
    path = gc.save(tmp_path / "ck.npz", {"W": gc.parameter(np.arange(60, dtype=np.float32).reshape(6, 10))})
    data = open(path, "rb").read()
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.npz"
    variants = [b"", data[:len(data) // 2], data[:30], bytes(rng.integers(0, 256, len(data), dtype=np.uint8)),
                b"not a zip at all"]
    for _ in range(40):  # single bit flips all over the file
        d = bytearray(data)
        d[int(rng.integers(len(d)))] ^= 1 << int(rng.integers(8))
        variants.append(bytes(d))
    for v in variants:
        bad.write_bytes(v)
        try:
            got = gc.load(bad)
        except CheckpointError as e:
            assert str(bad) in str(e)
        else:  # a flip in bytes nothing reads (padding, a timestamp): the same arrays, or an error
            assert list(got) == ["W"] and np.array_equal(got["W"], np.arange(60).reshape(6, 10))
    with pytest.raises(CheckpointError, match="no such file"):
        gc.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", W=np.ones(2))  # not written by graphc
    with pytest.raises(CheckpointError, match="no graphc format marker"):
        gc.load(tmp_path / "plain.npz")


class _Boom:
    """Unpickling this writes a file: a load that unpickles would leave it behind."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    arr = np.empty(1, object)
    arr[0] = _Boom(str(marker))
    np.savez(tmp_path / "evil.npz", names=np.array(["W"]), format=np.array("graphc-checkpoint-2"), a0=arr)
    with pytest.raises(CheckpointError, match="pickled object array"):
        gc.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_the_first_format_still_loads(tmp_path):
    np.savez(tmp_path / "old.npz", W=np.ones((2, 2), np.float32), __format__=np.array("graphc-checkpoint-1"))
    W = gc.parameter(np.zeros((2, 2), np.float32), name="W")
    gc.load(tmp_path / "old.npz", {"W": W})
    np.testing.assert_array_equal(W.value, np.ones((2, 2)))


def test_unnamed_parameters_of_a_function_are_named_by_position(tmp_path):
    def build(seed):
        x = gc.placeholder((None, 2))
        W = gc.parameter(np.random.default_rng(seed).normal(size=(2, 2)).astype(np.float32))
        b = gc.parameter(np.full(2, seed, np.float32), name="b")
        c = gc.parameter(np.full(2, 10 * seed, np.float32))
        return gc.compile([x], x @ W + b + c), W, b, c
    fn, W, b, c = build(1)
    path = gc.save(tmp_path / "f.npz", fn)
    assert sorted(gc.load(path)) == ["#0", "#2", "b"]  # as another process building it would name them
    fn2, W2, b2, c2 = build(2)
    gc.load(path, fn2)
    for p, q in ((W, W2), (b, b2), (c, c2)):
        np.testing.assert_array_equal(p.value, q.value)


def test_fit_and_evaluate_arguments_are_checked():
    X, y = _blobs(64)
    tr = _classifier()
    for bad in (0, -1, 1.5, True, "32"):
        with pytest.raises(gc.GraphError, match="batch_size must be a whole number >= 1"):
            tr.fit(X, y, epochs=1, batch_size=bad, verbose=False)
        with pytest.raises(gc.GraphError, match="batch_size must be a whole number >= 1"):
            tr.evaluate(X, y, batch_size=bad)
    for bad in (0, -2, 2.0):
        with pytest.raises(gc.GraphError, match="epochs must be a whole number >= 1"):
            tr.fit(X, y, epochs=bad, verbose=False)
    for bad in (-1, 1.5, "yes"):
        with pytest.raises(gc.GraphError, match="early_stopping"):
            tr.fit(X, y, epochs=1, early_stopping=bad, verbose=False)
    with pytest.raises(gc.FeedError, match="evaluate: no samples"):
        tr.evaluate(X[:0], y[:0])
    # early_stopping=False is off (a bool is not a patience of 0): every epoch runs
    h = tr.fit(X, y, epochs=4, batch_size=16, early_stopping=False, verbose=False)
    assert h.epochs == 4 and not h.stopped_early
    assert tr.fit(X, y, epochs=2, early_stopping=True, verbose=False).epochs <= 2
