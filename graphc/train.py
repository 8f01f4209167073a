"""Trainer: mini-batch training of a compiled step, with validation, early stopping, learning-rate
schedules, a progress bar, history curves and k-fold cross-validation.

    trainer = gc.Trainer([x, y], loss, gc.optim.Adam(1e-3), metrics={"accuracy": gc.accuracy(logits, y)},
                         predict=gc.softmax(logits), backend="numba")
    history = trainer.fit(X, Y, epochs=30, batch_size=64, validation_data=(Xv, Yv), early_stopping=5)

It compiles three functions from one graph: the training step (training=True: optimizer updates,
dropout, batch statistics), an evaluation function (training=False: no dropout, running
statistics, nothing updated) and, on first use, a prediction function.

Data parallel over MPI (`gc.Trainer(..., distributed=True)`, run under `mpiexec -n N python -m
mpi4py script.py`): the step is a gradient function and an update function; between them each
rank's gradients, written into one flat buffer per dtype, are summed over the ranks by one MPI call
per dtype (graphc.distributed). batch_size is the global batch: every rank draws the same seeded
permutation and takes its contiguous shard of each batch; the gradients are weighted by shard size,
so N ranks step as one process with the whole batch would (to rounding). Rank 0 compiles first and
the others load its modules from GRAPHC_CACHE_DIR; parameters and optimizer state are broadcast
from rank 0; metrics and validation are summed over the ranks, so every rank logs (and stops
early) alike; the progress bar shows on rank 0 only.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .autodiff import grad
from .compiler import compile as gc_compile
from .errors import FeedError, GraphError
from .ir import Node, by_label, toposort, user_location
from .ops.build import placeholder
from .optim import Adam, Optimizer, trainable_parameters

__all__ = ["Trainer", "History", "EarlyStopping", "CrossValidation", "cross_validate"]


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs; then (with
    restore_best) put back the weights and statistics of the best epoch."""

    patience: int = 5
    monitor: str | None = None   # default: val_loss with validation data, else loss
    min_delta: float = 0.0
    mode: str = "min"            # "max" for accuracy-like metrics
    restore_best: bool = True


@dataclass
class History:
    """Per-epoch metrics (history['loss'], history['val_accuracy'], ...), the best epoch and why training stopped."""

    history: dict = field(default_factory=dict)
    best_epoch: int | None = None
    stopped_early: bool = False
    seconds: float = 0.0

    def __getitem__(self, key) -> list:
        return self.history[key]

    @property
    def epochs(self) -> int:
        return len(self.history.get("loss", []))

    def plot(self, path, title: str | None = None) -> str:
        """Write the training curves (loss and each metric, train and validation) to an image file."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise GraphError("History.plot needs matplotlib: pip install 'graphc[examples]'",
                             user_location()) from e
        names = [k for k in self.history if not k.startswith("val_") and k not in ("lr", "seconds")]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
        epochs = np.arange(1, self.epochs + 1)
        for ax, k in zip(axes[0], names):
            ax.plot(epochs, self.history[k], label=f"train {k}")
            if f"val_{k}" in self.history:
                ax.plot(epochs, self.history[f"val_{k}"], label=f"validation {k}")
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch + 1, color="gray", ls=":", lw=1, label="best epoch")
            ax.set_xlabel("epoch")
            ax.set_title(k)
            if k == "loss" and min(self.history[k]) > 0:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return str(path)

    def __repr__(self):
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items() if v and k != "seconds")
        return f"<History {self.epochs} epochs: {last}>"


def _count(value, what: str, least: int = 1) -> int:
    """value as an int >= least, or a GraphError naming the argument (a bool is not a count)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
        raise GraphError(f"{what} must be a whole number >= {least}, got {value!r}", user_location())
    return int(value)


def _early_stopping(value):
    """fit's early_stopping argument as an EarlyStopping or None: None/False off, True the defaults,
    a whole number the patience."""
    if value is None or value is False:
        return None
    if value is True:
        return EarlyStopping()
    if isinstance(value, EarlyStopping):
        _count(value.patience, "EarlyStopping.patience", 0)
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return EarlyStopping(patience=_count(value, "early_stopping (the patience)", 0))
    raise GraphError(f"early_stopping must be None, a bool, a patience (int) or a gc.EarlyStopping, got "
                     f"{value!r}", user_location())


def _as_data(data, names, what):
    arrays = [np.asarray(a) for a in data]
    if len(arrays) != len(names):
        raise FeedError(f"{what} needs {len(names)} arrays ({', '.join(names)}), got {len(arrays)}",
                        user_location())
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise FeedError(f"{what}: arrays {', '.join(names)} have different numbers of samples "
                        f"{[len(a) for a in arrays]}", user_location())
    return arrays, n.pop()


class Trainer:
    """Compiles a training step from (inputs, loss, optimizer) and runs epochs of mini-batches.

    inputs: the placeholders, each fed a slice of one data array along axis 0. metrics: name ->
    scalar node averaged over samples (e.g. gc.accuracy(logits, y)). predict: the node predict()
    returns. params: what the optimizer trains (default: the model's, else every trainable parameter
    of the loss). model: a gc.nn.Module, for checkpoint names. distributed=True (or comm=, an MPI
    communicator): data parallel over the MPI ranks (the module's docstring).
    """

    def __init__(self, inputs, loss, optimizer: Optimizer | None = None, *, metrics=None, predict=None,
                 params=None, model=None, backend: str = "numba", distributed: bool = False, comm=None):
        self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.loss = loss
        self.metrics = dict(metrics or {})
        for k, m in self.metrics.items():
            if not isinstance(m, Node) or m.shape != ():
                raise GraphError(f"metric {k!r} must be a scalar node, got {m!r}", user_location())
        self.optimizer = optimizer if optimizer is not None else Adam(1e-3)
        self.model = model
        if params is None:
            params = model.parameters() if model is not None else trainable_parameters(loss)
        self.backend = backend
        self._outs = [loss] + list(self.metrics.values())
        self._names = ["loss"] + list(self.metrics)
        self.world = None
        if distributed or comm is not None:
            from . import distributed as dist
            self.world = dist.init(comm)
            self._parallel_steps(list(params))
        else:
            self.train_step = gc_compile(self.inputs, self._outs, self.optimizer.updates(loss, params),
                                         backend=backend, training=True)
        self._predict_node = predict
        self._eval = self._predict = None

    def _parallel_steps(self, params) -> None:
        """grad_step (loss, metrics and every gradient, written into self.gradients' views) and
        update_step (the optimizer's rule on fed gradients); rank 0 compiles them first, the others
        then load what it compiled from the module cache; rank 0's parameters are broadcast."""
        from . import distributed as dist
        w = self.world
        self.gradients = dist.GradientBuffer(params)
        fed = [placeholder(p.shape, p.dtype, name=f"grad{k}") for k, p in enumerate(params)]
        updates = self.optimizer.apply_gradients(fed, params)
        grads = grad(self.loss, params)
        self._random = dist.RandomShards(self._outs + list(grads))  # dropout: one process's masks
        if not w.is_root:
            w.comm.Barrier()
        self.grad_step = gc_compile(self.inputs, self._outs + list(grads), backend=self.backend, training=True)
        self.update_step = gc_compile(fed, [], updates, backend=self.backend)
        if w.is_root:
            w.comm.Barrier()
        self._grad_out = [None] * len(self._outs) + self.gradients.views
        dist.broadcast(self, world=w)

    def _parallel_step(self, batch) -> tuple[list, int]:
        """One data-parallel step on the global batch (arrays): this rank's shard's loss and metrics,
        its size; every rank's parameters take the same step."""
        from . import distributed as dist
        n = len(batch[0])
        part = dist.shard(n, self.world)
        k = part.stop - part.start
        self._random.shift(part.start)
        try:
            if k:
                vals = self.grad_step(*[a[part] for a in batch], out=self._grad_out)[:len(self._outs)]
                self.gradients.scale(k / n)  # the global batch's mean: the sum of k/n x the shard's mean
            else:  # fewer samples than ranks: this one adds nothing
                vals = [0.0] * len(self._outs)
                self.gradients.zero()
        finally:  # a failed step changed no key: advance() then puts back the unshifted one
            self._random.advance(ran=bool(k))
        self.gradients.allreduce(self.world)
        self.update_step(*self.gradients.views)
        return vals, k

    def _sum_over_ranks(self, values: np.ndarray) -> np.ndarray:
        if self.world is None:
            return values
        from . import distributed as dist
        return dist.allreduce(np.ascontiguousarray(values, np.float64), "sum", self.world)

    @property
    def step_function(self):
        """The compiled function holding the step's graph: train_step, or grad_step when data
        parallel (the update is then update_step's)."""
        return self.train_step if self.world is None else self.grad_step

    # ------------------------------------------------------------ compiled functions, on first use
    @property
    def eval_step(self):
        """The inference-mode function of (loss, metrics): no dropout, running statistics, no updates."""
        if self._eval is None:
            self._eval = gc_compile(self.inputs, self._outs, backend=self.backend, training=False)
        return self._eval

    @property
    def predict_fn(self):
        if self._predict is None:
            if self._predict_node is None:
                raise GraphError("this Trainer has no predict node: pass predict=... (e.g. gc.softmax(logits))",
                                 user_location())
            reach = set(toposort([self._predict_node]))
            ins = [p for p in self.inputs if p in reach]
            self._predict = gc_compile(ins, self._predict_node, backend=self.backend, training=False)
        return self._predict

    # ------------------------------------------------------------ state
    def _weights(self) -> list[Node]:
        return [p for p in self.step_function.program.parameters if p.data.role in ("weight", "statistics")]

    def named_state(self) -> dict[str, Node]:
        """Model parameters (and statistics) and optimizer state by name: what gc.save writes."""
        model = self.model.named_state() if self.model is not None else by_label(self._weights())
        out = {f"model/{k}": v for k, v in model.items()}
        out.update({f"optimizer/{k}": v for k, v in self.optimizer.state().items()})
        return out

    # ------------------------------------------------------------ running
    def _batches(self, arrays, n, batch_size):
        for start in range(0, n, batch_size):
            yield [a[start:start + batch_size] for a in arrays]

    def evaluate(self, *data, batch_size: int = 512) -> dict[str, float]:
        """Loss and metrics over data (inference mode), averaged over samples."""
        batch_size = _count(batch_size, "evaluate: batch_size")
        arrays, n = _as_data(data, [p.label for p in self.inputs], "evaluate")
        if n == 0:
            raise FeedError("evaluate: no samples (a mean over none is not defined)", user_location())
        if self.world is not None:  # each rank its contiguous shard, the sums added up
            from . import distributed as dist
            part = dist.shard(n, self.world)
            arrays = [a[part] for a in arrays]
        sums = np.zeros(len(self._outs))
        for batch in self._batches(arrays, len(arrays[0]), batch_size):
            sums += np.array([float(v) for v in self.eval_step(*batch)]) * len(batch[0])
        sums = self._sum_over_ranks(sums)
        return {k: float(s / n) for k, s in zip(self._names, sums)}

    def predict(self, *data, batch_size: int = 512) -> np.ndarray:
        """The predict node for data (inference mode): one array per input the node needs."""
        batch_size = _count(batch_size, "predict: batch_size")
        fn = self.predict_fn
        arrays, n = _as_data(data, [p.label for p in fn.inputs], "predict")
        if n == 0:
            raise FeedError("predict: no samples", user_location())
        outs = [fn(*batch) for batch in self._batches(arrays, n, batch_size)]
        return np.concatenate(outs) if outs else np.empty((0,))

    def fit(self, *data, epochs: int = 10, batch_size: int = 32, validation_data=None, shuffle: bool = True,
            seed: int = 0, early_stopping=None, schedule=None, verbose: bool | None = None) -> History:
        """Train for `epochs` passes over data (one array per input), in shuffled mini-batches.

        validation_data: arrays evaluated after each epoch (val_* entries). early_stopping: patience
        (int) or an EarlyStopping. schedule: epoch -> learning rate, set before each epoch.
        verbose: a tqdm progress bar (default: only when stderr is a terminal)."""
        from tqdm.auto import tqdm

        epochs = _count(epochs, "fit: epochs")
        batch_size = _count(batch_size, "fit: batch_size")
        arrays, n = _as_data(data, [p.label for p in self.inputs], "fit")
        if n == 0:
            raise FeedError("fit: no training samples", user_location())
        if validation_data is not None:
            validation_data, _ = _as_data(validation_data, [p.label for p in self.inputs], "validation_data")
        stop = _early_stopping(early_stopping)
        monitor = None
        if stop is not None:
            monitor = stop.monitor or ("val_loss" if validation_data is not None else "loss")
        rng = np.random.default_rng(seed)
        history = History({k: [] for k in self._names})
        if validation_data is not None:
            history.history.update({f"val_{k}": [] for k in self._names})
        history.history["lr"] = []
        verbose = sys.stderr.isatty() if verbose is None else verbose
        verbose = verbose and (self.world is None or self.world.is_root)
        steps = math.ceil(n / batch_size)
        best, best_state, wait = None, None, 0
        if validation_data is not None:
            self.eval_step  # compile before the clock and the progress bar start  # noqa: B018
        t0 = time.perf_counter()
        with tqdm(total=epochs * steps, disable=not verbose, unit="step", dynamic_ncols=True,
                  file=sys.stderr, mininterval=0.2) as bar:
            for epoch in range(epochs):
                if schedule is not None:
                    self.optimizer.lr = schedule(epoch)
                order = rng.permutation(n) if shuffle else np.arange(n)
                sums, seen = np.zeros(len(self._outs)), 0
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
                for start in range(0, n, batch_size):
                    idx = order[start:start + batch_size]
                    if self.world is None:
                        vals, k = self.train_step(*[a[idx] for a in arrays]), len(idx)
                    else:
                        vals, k = self._parallel_step([a[idx] for a in arrays])
                    sums += np.array([float(v) for v in vals]) * k
                    seen += k
                    if verbose:  # formatting the bar costs more than a small model's step
                        bar.update(1)
                        bar.set_postfix({k: f"{s / seen:.4f}" for k, s in zip(self._names, sums)}, refresh=False)
                if self.world is not None:  # every rank logs the same: the sums over all of them
                    sums, seen = self._sum_over_ranks(sums), n
                logs = {k: float(s / seen) for k, s in zip(self._names, sums)}
                if validation_data is not None:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(*validation_data).items()})
                logs["lr"] = self.optimizer.lr
                for k, v in logs.items():
                    history.history[k].append(v)
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k != "lr"})
                if not math.isfinite(logs["loss"]):
                    bar.write(f"graphc: stopping at epoch {epoch + 1}: the training loss is {logs['loss']}")
                    history.stopped_early = True
                    break
                if stop is not None:
                    if monitor not in logs:
                        raise GraphError(f"early stopping monitors {monitor!r}, which is not among "
                                         f"{sorted(logs)}", user_location())
                    value = logs[monitor] if stop.mode == "min" else -logs[monitor]
                    if best is None or value < best - stop.min_delta:
                        best, wait, history.best_epoch = value, 0, epoch
                        if stop.restore_best:
                            best_state = [(p, p.value.copy()) for p in self._weights()]
                    else:
                        wait += 1
                        if wait >= stop.patience:
                            history.stopped_early = True
                            break
        if best_state is not None:
            for p, v in best_state:
                np.copyto(p.data.array, v)
        history.seconds = time.perf_counter() - t0
        return history


@dataclass
class CrossValidation:
    """Per-fold scores of k-fold cross-validation, with their mean and standard deviation."""

    folds: list
    histories: list

    def mean(self, key: str = "loss") -> float:
        return float(np.mean([f[key] for f in self.folds]))

    def std(self, key: str = "loss") -> float:
        return float(np.std([f[key] for f in self.folds]))

    def __repr__(self):
        keys = list(self.folds[0]) if self.folds else []
        return f"<CrossValidation {len(self.folds)} folds: " + ", ".join(
            f"{k}={self.mean(k):.4g}±{self.std(k):.2g}" for k in keys) + ">"


def cross_validate(build, *data, k: int = 5, seed: int = 0, **fit_kwargs) -> CrossValidation:
    """k-fold cross-validation: for each fold, build() a fresh Trainer, fit it on the other k-1 folds
    and evaluate it on this one (samples shuffled once by seed)."""
    arrays = [np.asarray(a) for a in data]
    n = len(arrays[0])
    if not 2 <= k <= n:
        raise GraphError(f"cross_validate needs 2 <= k <= number of samples ({n}), got k={k}", user_location())
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, k)
    folds, histories = [], []
    for i in range(k):
        held = parts[i]
        rest = np.concatenate([parts[j] for j in range(k) if j != i])
        trainer = build()
        if not isinstance(trainer, Trainer):
            raise GraphError(f"cross_validate's build() must return a gc.Trainer, got {type(trainer).__name__}",
                             user_location())
        histories.append(trainer.fit(*[a[rest] for a in arrays], seed=seed + i, **fit_kwargs))
        folds.append(trainer.evaluate(*[a[held] for a in arrays]))
    return CrossValidation(folds, histories)
