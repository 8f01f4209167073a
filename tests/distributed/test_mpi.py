"""Data parallelism over MPI: N ranks with global batch B train the model one process with batch B
trains (SGD, momentum, Adam; float64; an uneven last batch), every rank bit-identical; rank 0's
checkpoint loads in one process; a rank that raises ends the job at once. The ranks are started by
mpiexec (MPICH, from the mpi extra) with a timeout; `make test-mpi` runs the same with 4 ranks."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py, mpich) is not installed")

import graphc as gc  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "mpi_worker.py"
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
RANKS = [int(n) for n in os.environ.get("GRAPHC_TEST_RANKS", "1,2,4").split(",")]
sys.path.insert(0, str(HERE))
import mpi_worker  # noqa: E402


def _env():
    env = dict(os.environ)
    env.pop("PYTEST_XDIST_WORKER", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1])] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _mpirun(n, *args, timeout=240):
    assert MPIEXEC, "mpiexec is not on PATH (the mpi extra installs MPICH's into the venv)"
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", str(WORKER), *args],
                          capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "r"
    run = subprocess.run([sys.executable, str(WORKER), "--reference", "--out", str(out)], capture_output=True,
                         text=True, timeout=240, env=_env())
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.parametrize("n", RANKS)
def test_n_ranks_train_what_one_process_trains(n, reference, tmp_path):
    out = tmp_path / f"d{n}"
    run = _mpirun(n, "--out", str(out))
    assert run.returncode == 0, run.stderr[-3000:]
    for opt in mpi_worker.OPTIMIZERS:
        ref = np.load(f"{reference}.{opt}.rank0.npz")
        ranks = [np.load(f"{out}.{opt}.rank{r}.npz") for r in range(n)]
        assert sorted(ranks[0].files) == sorted(ref.files)
        for k in ref.files:
            np.testing.assert_allclose(ranks[0][k], ref[k], rtol=1e-6, atol=1e-12, err_msg=f"{opt} {k}")
            for r in range(1, n):  # the same bits on every rank
                assert np.array_equal(ranks[r][k], ranks[0][k]), (opt, k, r)
    ref_h = json.loads(pathlib.Path(f"{reference}.rank0.json").read_text())
    cpus = len(os.sched_getaffinity(0))
    for r in range(n):  # metrics and validation summed over the ranks: every rank logs the same
        h = json.loads(pathlib.Path(f"{out}.rank{r}.json").read_text())
        assert h["broadcast"] == [[[0.0] * 3] * 2, 1], h["broadcast"]  # rank 0's values
        if n > 1 and "NUMBA_NUM_THREADS" not in os.environ:  # the ranks share this machine's CPUs
            assert h["numba_threads"] == max(1, cpus // n), (h["numba_threads"], cpus, n)
        for opt in mpi_worker.OPTIMIZERS:
            for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
                np.testing.assert_allclose(h[opt][key], ref_h[opt][key], rtol=1e-9, err_msg=f"rank {r} {opt} {key}")


def test_a_batch_smaller_than_the_ranks_leaves_some_shards_empty(tmp_path):
    """Global batch 3 on 4 ranks (103 samples: the last batch has 1): ranks with no sample add
    nothing, and their dropout keys still advance as one process's."""
    ref = tmp_path / "r"
    run = subprocess.run([sys.executable, str(WORKER), "--reference", "--out", str(ref), "--optimizers", "momentum",
                          "--epochs", "1", "--batch", "3"], capture_output=True, text=True, timeout=240, env=_env())
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "d4"
    run = _mpirun(4, "--out", str(out), "--optimizers", "momentum", "--epochs", "1", "--batch", "3")
    assert run.returncode == 0, run.stderr[-3000:]
    want = np.load(f"{ref}.momentum.rank0.npz")
    for r in range(4):
        got = np.load(f"{out}.momentum.rank{r}.npz")
        for k in want.files:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-12, err_msg=f"rank {r} {k}")


def test_rank_zeros_checkpoint_loads_in_one_process(tmp_path):
    out = tmp_path / "d2"
    run = _mpirun(2, "--out", str(out), "--optimizers", "adam", "--epochs", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = f"{out}.adam.ckpt.npz"
    t = mpi_worker.trainer("adam", "float64", distributed=False)
    gc.load(ckpt, t)
    saved = np.load(f"{out}.adam.rank0.npz")
    state = t.named_state()
    for k in saved.files:
        np.testing.assert_array_equal(state[k].value, saved[k], err_msg=k)


def test_a_rank_that_raises_ends_the_job_at_once(tmp_path):
    t0 = time.perf_counter()
    run = _mpirun(2, "--out", str(tmp_path / "f"), "--optimizers", "sgd", "--raise-on", "1", timeout=120)
    took = time.perf_counter() - t0
    assert run.returncode != 0
    assert "rank 1 fails on purpose" in run.stderr
    # the launcher has returned; its ranks get their kill signal as it exits and may take a moment
    # to be gone (a loaded host): they must be, within seconds, not linger until some timeout
    deadline = time.perf_counter() + 10
    while True:
        left = subprocess.run(["pgrep", "-f", f"{tmp_path}/f"], capture_output=True, text=True)
        if left.stdout.strip() == "" or time.perf_counter() > deadline:
            break
        time.sleep(0.2)
    assert left.stdout.strip() == "", f"processes left behind: {left.stdout}"
    assert took < 100, took  # not the timeout: rank 0 did not wait forever for rank 1


def test_shards_cover_the_batch_in_order():
    class W:
        size = 4
        rank = 0
    parts = [gc.distributed.shard(7, W(), rank=r) for r in range(4)]
    assert [(p.start, p.stop) for p in parts] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    parts = [gc.distributed.shard(2, W(), rank=r) for r in range(4)]
    assert [p.stop - p.start for p in parts] == [1, 1, 0, 0]


def test_gradient_buffer_views_share_one_flat_array_per_dtype():
    p32 = [gc.parameter(np.zeros((2, 3), np.float32)), gc.parameter(np.zeros(4, np.float32))]
    p64 = gc.parameter(np.zeros(3))
    buf = gc.distributed.GradientBuffer([p32[0], p64, p32[1]])
    assert {a.dtype for a in buf.flat.values()} == {np.dtype(np.float32), np.dtype(np.float64)}
    assert buf.flat[np.dtype(np.float32)].size == 10 and buf.nbytes == 10 * 4 + 3 * 8
    buf.views[0][...] = 1
    buf.views[2][...] = 2
    assert buf.flat[np.dtype(np.float32)].tolist() == [1] * 6 + [2] * 4
    assert all(np.shares_memory(v, buf.flat[v.dtype]) for v in buf.views)


def test_apply_gradients_is_the_update_of_fed_gradients():
    w = gc.parameter(np.array([1.0, -2.0]), name="w")
    g = gc.placeholder((2,), "float64", name="g")
    step = gc.compile([g], [], gc.optim.SGD(0.25).apply_gradients([g], [w]))
    step(np.array([2.0, -4.0]))  # loss's gradient at w
    np.testing.assert_allclose(w.value, [0.5, -1.0])
    w2 = gc.parameter(np.array([1.0, -2.0]), name="w2")
    gc.compile([], gc.sum(w2 * w2), gc.optim.SGD(0.25).updates(gc.sum(w2 * w2), [w2]))()
    np.testing.assert_allclose(w2.value, w.value)
    with pytest.raises(gc.GraphError, match="gradient of w"):
        gc.optim.SGD(0.1).apply_gradients([gc.placeholder((3,), "float64")], [w])


def test_the_digits_example_on_two_ranks_matches_one_process(tmp_path):
    """mpiexec -n 2 ... examples/mlp_digits.py --distributed prints one process's test accuracy (one
    epoch, no files: the parameters' equality is test_n_ranks_train_what_one_process_trains's)."""
    cmd = [str(HERE.parents[1] / "examples" / "mlp_digits.py"), "--epochs", "1", "--quiet", "--out", ""]
    one = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=240, env=_env())
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "mpi4py", *cmd, "--distributed"],
                         capture_output=True, text=True, timeout=240, env=_env())
    assert two.returncode == 0, two.stderr[-3000:]

    def accuracy(out):
        (line,) = [ln for ln in out.splitlines() if ln.startswith("test accuracy")]  # rank 0 prints, once
        return line
    assert accuracy(two.stdout) == accuracy(one.stdout)
    assert "on 2 ranks" in two.stdout
