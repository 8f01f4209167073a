"""Layers that own their parameters, so a model is a few lines: gc.nn.Sequential(gc.nn.Linear(64, 128), ...).

A layer called on a node returns a node (it builds graph, it computes nothing). Parameters are
named by their place in the model ("0.W", "2.bn.running_mean"), the names checkpoints use.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import api as F
from . import functional as fn
from . import init as initializers
from .errors import DTypeError, GraphError, ShapeError
from .ir import Node, fmt_shape, user_location
from .ops.build import reshape_keep

__all__ = [
    "Module", "Linear", "LayerNorm", "RMSNorm", "MultiheadAttention", "TransformerBlock", "Sequential",
    "ReLU", "Tanh", "Sigmoid", "LeakyReLU", "GELU", "Identity", "Dropout", "BatchNorm", "Embedding",
    "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "RNNCell", "LSTMCell", "RNN", "LSTM", "unroll",
    "rnn_step", "lstm_step", "GRUCell", "GRU", "gru_step",
]


class Module:
    """Base class: parameters are Node attributes, sub-layers are Module attributes (or Sequential items)."""

    def __call__(self, x) -> Node:
        return self.forward(F.as_node(x))

    def forward(self, x: Node) -> Node:  # pragma: no cover - abstract
        raise NotImplementedError

    def _children(self):
        for k, v in vars(self).items():
            if isinstance(v, Module):
                yield k, v

    def named_state(self, prefix: str = "") -> dict[str, Node]:
        """Every parameter (trainable and statistics) by its path in the model."""
        out = {}
        for k, v in vars(self).items():
            if isinstance(v, Node) and v.op.name == "parameter":
                out[prefix + k] = v
        for k, child in self._children():
            out.update(child.named_state(f"{prefix}{k}."))
        return out

    def named_parameters(self) -> dict[str, Node]:
        """The trainable parameters by path."""
        return {k: p for k, p in self.named_state().items() if p.attrs["trainable"]}

    def parameters(self) -> list[Node]:
        """The trainable parameters, in model order (what an optimizer updates)."""
        return list(self.named_parameters().values())

    def _name(self, prefix: str = "") -> None:
        """Give every parameter node its path as its name (drawings and messages show it)."""
        for path, p in self.named_state(prefix).items():
            object.__setattr__(p, "name", path)

    def __repr__(self):
        inner = ", ".join(f"{k}={tuple(p.shape)}" for k, p in vars(self).items()
                          if isinstance(p, Node))
        return f"{type(self).__name__}({inner})"

    # ------------------------------------------------------------ PyTorch's names and layouts
    # torch's name of each own parameter -> (the attribute, whether torch stores it transposed)
    torch_names: dict[str, tuple[str, bool]] = {}
    torch_ignored: tuple[str, ...] = ()  # torch entries with no graphc counterpart (counters)

    def _torch_entries(self, prefix: str = ""):
        """(torch key, parameter node, transposed) for every parameter, children included."""
        mapped = set()
        for key, (attr, transposed) in self.torch_names.items():
            p = getattr(self, attr, None)
            if p is not None:
                mapped.add(attr)
                yield prefix + key, p, transposed
        for k, v in vars(self).items():
            if isinstance(v, Node) and v.op.name == "parameter" and k not in mapped:
                raise GraphError(f"{type(self).__name__}.{k} has no PyTorch name", user_location())
        for k, child in self._children():
            yield from child._torch_entries(f"{prefix}{k}.")

    def _torch_ignored(self, prefix: str = ""):
        out = {prefix + k for k in self.torch_ignored}
        for k, child in self._children():
            out |= child._torch_ignored(f"{prefix}{k}.")
        return out

    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """The parameters as the equivalent torch module's state_dict() names them, in torch's
        layouts (a Linear's weight is (out, in); here W is (in, out)): NumPy arrays, no torch
        import. torch.nn.Module.load_state_dict({k: torch.from_numpy(v) ...}) reads it."""
        return {k: np.ascontiguousarray(p.value.T if t else p.value).copy() for k, p, t in self._torch_entries()}

    def load_torch_state_dict(self, state: dict, strict: bool = True) -> None:
        """Set the parameters from a torch state_dict (NumPy arrays, or anything np.asarray takes:
        {k: v.numpy() for k, v in model.state_dict().items()}), transposing where the layouts
        differ. Every name and shape is checked before anything is written; strict: the keys must
        match exactly (torch's counters such as num_batches_tracked are ignored)."""
        entries = list(self._torch_entries())
        want = {k for k, _, _ in entries}
        given = {k for k in state if k not in self._torch_ignored()}
        missing, unexpected = sorted(want - given), sorted(given - want)
        if missing or (strict and unexpected):
            raise GraphError(f"load_torch_state_dict: missing {missing or 'nothing'}, unexpected "
                             f"{unexpected or 'nothing'}", user_location())
        values = []
        for k, p, t in entries:
            arr = np.asarray(state[k])
            arr = arr.T if t else arr
            if arr.shape != p.shape:
                raise ShapeError(f"load_torch_state_dict: {k} has shape {arr.shape} (torch layout), "
                                 f"{p.label} needs {p.shape}" + (" transposed" if t else ""), user_location())
            if not np.can_cast(arr.dtype, p.dtype, "same_kind"):
                raise DTypeError(f"load_torch_state_dict: {k} is {arr.dtype}, {p.label} is {p.dtype}", user_location())
            values.append((p, arr))
        for p, arr in values:
            p.value = arr


def _initializer(init) -> Callable:
    if callable(init):
        return init
    f = getattr(initializers, str(init), None)
    if f is None or str(init).startswith("_") or str(init) == "fans":
        raise GraphError(f"unknown initializer {init!r}; use a gc.init name or a function(shape, seed=, dtype=)",
                         user_location())
    return f


class Linear(Module):
    """y = x @ W + b with W of shape (in_features, out_features); W from `init` (default Glorot
    uniform, as Keras; pass init="he_normal" before ReLUs), b zeros."""

    torch_names = {"weight": ("W", True), "bias": ("b", False)}

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="xavier_uniform",
                 seed=None, dtype="float32"):
        W = _initializer(init)((in_features, out_features), seed=seed, dtype=dtype)
        self.W = F.parameter(W, name="W")
        self.b = F.parameter(np.zeros(out_features, W.dtype), name="b") if bias else None
        self.in_features, self.out_features = in_features, out_features

    def forward(self, x):
        y = F.matmul(x, self.W)  # any rank: the leading dims are one GEMM's rows
        return y if self.b is None else F.add(y, self.b)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.b is not None})"


class Conv2d(Module):
    """gc.conv2d with a learned weight (out, in/groups, kh, kw), He uniform by default (fans count
    the window: in/groups*kh*kw), and a zero bias (out,)."""

    torch_names = {"weight": ("W", False), "bias": ("b", False)}

    def __init__(self, in_channels: int, out_channels: int, kernel, stride=1, padding=0, dilation=1,
                 bias: bool = True, init="he_uniform", seed=None, dtype="float32", groups: int = 1):
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ShapeError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}", user_location())
        W = _initializer(init)((out_channels, in_channels // groups, kh, kw), seed=seed, dtype=dtype)
        self.W = F.parameter(W, name="W")
        self.b = F.parameter(np.zeros(out_channels, W.dtype), name="b") if bias else None
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.shape = (in_channels, out_channels, (kh, kw))

    def forward(self, x):
        return F.conv2d(x, self.W, self.b, self.stride, self.padding, self.dilation, self.groups)

    def __repr__(self):
        i, o, k = self.shape
        g = f", groups={self.groups}" if self.groups != 1 else ""
        return f"Conv2d({i}, {o}, kernel={k}, stride={self.stride}, padding={self.padding}{g})"


class MaxPool2d(Module):
    """gc.max_pool2d over kernel windows (stride defaults to the kernel)."""

    def __init__(self, kernel, stride=None, padding=0):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel, self.stride, self.padding)

    def __repr__(self):
        return f"MaxPool2d({self.kernel}, stride={self.stride}, padding={self.padding})"


class AvgPool2d(MaxPool2d):
    """gc.avg_pool2d over kernel windows (stride defaults to the kernel; padding counts as zeros)."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding)

    def __repr__(self):
        return f"AvgPool2d({self.kernel}, stride={self.stride}, padding={self.padding})"


class Flatten(Module):
    """Every axis from start_dim on merged into one (images to feature vectors)."""

    def __init__(self, start_dim: int = 1):
        self.start_dim = start_dim

    def forward(self, x):
        return F.flatten(x, self.start_dim)

    def __repr__(self):
        return f"Flatten({self.start_dim})"


class Embedding(Module):
    """table[ids] for integer ids: a learned (num_embeddings, dim) table, N(0, 1) by default as
    torch.nn.Embedding; its gradient scatter-adds into the rows that were looked up."""

    torch_names = {"weight": ("table", False)}

    def __init__(self, num_embeddings: int, dim: int, init="normal", seed=None, dtype="float32"):
        self.table = F.parameter(_initializer(init)((num_embeddings, dim), seed=seed, dtype=dtype), name="table")
        self.num_embeddings, self.dim = num_embeddings, dim

    def forward(self, ids):
        return F.embedding(ids, self.table)

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.dim})"


class _Activation(Module):
    fn: Callable = staticmethod(lambda x: x)

    def forward(self, x):
        return type(self).fn(x)

    def __repr__(self):
        return f"{type(self).__name__}()"


class ReLU(_Activation):
    """max(x, 0)."""
    fn = staticmethod(F.relu)


class Tanh(_Activation):
    """tanh(x)."""
    fn = staticmethod(F.tanh)


class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""
    fn = staticmethod(F.sigmoid)


class GELU(_Activation):
    """x * Phi(x)."""
    fn = staticmethod(F.gelu)


class Identity(_Activation):
    """x."""


class LeakyReLU(Module):
    """x if x > 0 else slope * x."""

    def __init__(self, slope: float = 0.01):
        self.slope = slope

    def forward(self, x):
        return F.leaky_relu(x, self.slope)


class Dropout(Module):
    """Inverted dropout while training (gc.dropout), the identity at inference."""

    def __init__(self, rate: float, seed=None):
        self.rate, self.seed = float(rate), seed

    def forward(self, x):
        return fn.dropout(x, self.rate, self.seed)

    def __repr__(self):
        return f"Dropout({self.rate})"


class BatchNorm(Module):
    """Batch normalization over channel axis 1 with learned scale/shift and running statistics
    (gc.batch_norm); works for (N, C) and (N, C, H, W)."""

    torch_names = {"weight": ("gamma", False), "bias": ("beta", False), "running_mean": ("running_mean", False),
                   "running_var": ("running_var", False)}
    torch_ignored = ("num_batches_tracked",)

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, dtype="float32"):
        c = int(num_features)
        self.gamma = F.parameter(np.ones(c, dtype), name="gamma")
        self.beta = F.parameter(np.zeros(c, dtype), name="beta")
        self.running_mean = F.parameter(np.zeros(c, dtype), name="running_mean", trainable=False)
        self.running_var = F.parameter(np.ones(c, dtype), name="running_var", trainable=False)
        self.running_mean.data.role = self.running_var.data.role = "statistics"
        self.momentum, self.eps = momentum, eps

    def forward(self, x):
        return fn.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var,
                             momentum=self.momentum, eps=self.eps)

    def __repr__(self):
        return f"BatchNorm({self.gamma.shape[0]})"


def _shape(normalized_shape) -> tuple:
    return (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else \
        tuple(int(d) for d in normalized_shape)


class LayerNorm(Module):
    """gc.layer_norm over the trailing dims `normalized_shape` (an int or a tuple, as torch), with a
    learned weight (ones) and bias (zeros) of that shape; torch's names weight and bias."""

    torch_names = {"weight": ("weight", False), "bias": ("bias", False)}

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype="float32"):
        self.shape = _shape(normalized_shape)
        self.eps = float(eps)
        self.weight = F.parameter(np.ones(self.shape, dtype), name="weight") if elementwise_affine else None
        self.bias = F.parameter(np.zeros(self.shape, dtype), name="bias") if elementwise_affine and bias else None

    def _check(self, x):
        if x.shape[x.ndim - len(self.shape):] != self.shape:
            raise ShapeError(f"{type(self).__name__}{self.shape}: input {x.shape} does not end in that shape",
                             user_location())

    def forward(self, x):
        self._check(x)
        return F.layer_norm(x, self.weight, self.bias, self.eps, axis=-len(self.shape))

    def __repr__(self):
        return f"{type(self).__name__}({self.shape}, eps={self.eps})"


class RMSNorm(LayerNorm):
    """gc.rms_norm over the trailing dims `normalized_shape`, with a learned weight (ones)."""

    torch_names = {"weight": ("weight", False)}

    def __init__(self, normalized_shape, eps: float = 1e-6, elementwise_affine: bool = True, dtype="float32"):
        super().__init__(normalized_shape, eps, elementwise_affine, bias=False, dtype=dtype)

    def forward(self, x):
        self._check(x)
        return F.rms_norm(x, self.weight, self.eps, axis=-len(self.shape))


class MultiheadAttention(Module):
    """Multi-head attention on (batch, seq, d_model), as torch.nn.MultiheadAttention with
    batch_first=True: q, k, v = x W_q, x W_k, x W_v (one packed (d_model, 3 d_model) weight
    W_in and bias b_in), split into num_heads heads of d_model / num_heads, each
    gc.scaled_dot_product_attention (causal if asked; dropout on the attention weights while
    training), the heads joined and projected by out_proj (a Linear). attn(x) is self-attention;
    attn(x, key, value, mask=...) attends from x to key/value. Returns the output only (torch
    also returns the averaged weights). torch's names: in_proj_weight (W_in transposed),
    in_proj_bias, out_proj.weight, out_proj.bias. Weights Xavier uniform, biases zeros, as torch."""

    torch_names = {"in_proj_weight": ("W_in", True), "in_proj_bias": ("b_in", False)}

    def __init__(self, d_model: int, num_heads: int, causal: bool = False, dropout: float = 0.0, bias: bool = True,
                 seed=None, dtype="float32"):
        if d_model % num_heads:
            raise GraphError(f"MultiheadAttention: d_model {d_model} is not a multiple of num_heads {num_heads}",
                             user_location())
        self.W_in = F.parameter(initializers.xavier_uniform((d_model, 3 * d_model), seed=seed, dtype=dtype),
                                name="W_in")
        self.b_in = F.parameter(np.zeros(3 * d_model, dtype), name="b_in") if bias else None
        self.out_proj = Linear(d_model, d_model, bias=bias, seed=None if seed is None else seed + 1, dtype=dtype)
        self.d_model, self.num_heads, self.causal, self.dropout = d_model, num_heads, causal, float(dropout)

    def __call__(self, x, key=None, value=None, mask=None):
        return self.forward(F.as_node(x), key, value, mask)

    def _heads(self, t):
        """(B, T, d_model) -> (B, heads, T, d_head), run-time B and T kept."""
        b, n, _ = t.shape
        h = self.num_heads
        return F.transpose(reshape_keep(t, (b, n, h, self.d_model // h), (0, 1, -1, -1)), (0, 2, 1, 3))

    def _project(self, t, lo):
        E = self.d_model
        w = F.getitem(self.W_in, (slice(None), slice(lo, lo + E)))
        y = F.matmul(t, w)
        return y if self.b_in is None else F.add(y, F.getitem(self.b_in, slice(lo, lo + E)))

    def forward(self, x, key=None, value=None, mask=None):
        E = self.d_model
        if x.ndim != 3 or x.shape[2] != E:
            raise ShapeError(f"MultiheadAttention({E}): x must be (batch, seq, {E}), got {x.shape}", user_location())
        if key is None and value is None:
            qkv = F.matmul(x, self.W_in)
            qkv = qkv if self.b_in is None else F.add(qkv, self.b_in)
            q, k, v = F.split(qkv, E, axis=2)
        else:
            key = x if key is None else F.as_node(key)
            value = key if value is None else F.as_node(value)
            q, k, v = self._project(x, 0), self._project(key, E), self._project(value, 2 * E)
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        att = _attention(q, k, v, mask, self.causal, self.dropout)
        b, n = x.shape[0], x.shape[1]
        joined = reshape_keep(F.transpose(att, (0, 2, 1, 3)), (b, n, E), (0, 1, -1))
        return self.out_proj(joined)

    def __repr__(self):
        return f"MultiheadAttention({self.d_model}, num_heads={self.num_heads}, causal={self.causal})"


def _attention(q, k, v, mask, causal, dropout):
    """scaled_dot_product_attention, with dropout on the attention weights while training."""
    if not dropout:
        return F.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    return F.matmul(fn.dropout(F.attention_weights(q, k, mask=mask, causal=causal), dropout), v)


class TransformerBlock(Module):
    """One transformer layer on (batch, seq, d_model), as torch.nn.TransformerEncoderLayer with
    batch_first=True: self-attention (MultiheadAttention, causal if asked) and a feed-forward
    linear2(dropout(activation(linear1(x)))) of width d_ff, each added back to its input;
    norm_first (the default here, GPT-2's pre-norm): x + attn(norm1(x)), then x + ff(norm2(x));
    else post-norm norm1(x + attn(x)), norm2(x + ff(x)). activation "gelu" (exact), "gelu_tanh"
    or "relu". torch's names: self_attn.*, linear1.*, linear2.*, norm1.*, norm2.*."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = True,
                 activation: str = "gelu", causal: bool = False, eps: float = 1e-5, seed=None, dtype="float32"):
        acts = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, "tanh"), "relu": F.relu}
        if activation not in acts:
            raise GraphError(f"TransformerBlock: activation must be one of {sorted(acts)}, got {activation!r}",
                             user_location())
        s = (lambda k: None) if seed is None else (lambda k: seed + 10 * k)
        self.self_attn = MultiheadAttention(d_model, num_heads, causal, dropout, seed=s(1), dtype=dtype)
        self.linear1 = Linear(d_model, d_ff, seed=s(2), dtype=dtype)
        self.linear2 = Linear(d_ff, d_model, seed=s(3), dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps, dtype=dtype)
        self.dropout = Dropout(dropout, seed=s(4)) if dropout else Identity()
        self.activation, self.act, self.norm_first = activation, acts[activation], norm_first

    def _ff(self, x):
        return self.dropout(self.linear2(self.dropout(self.act(self.linear1(x)))))

    def _sa(self, x):
        return self.dropout(self.self_attn(x))

    def forward(self, x):
        if self.norm_first:
            x = F.add(x, self._sa(self.norm1(x)))
            return F.add(x, self._ff(self.norm2(x)))
        x = self.norm1(F.add(x, self._sa(x)))
        return self.norm2(F.add(x, self._ff(x)))

    def __repr__(self):
        return (f"TransformerBlock({self.self_attn.d_model}, heads={self.self_attn.num_heads}, "
                f"d_ff={self.linear1.out_features}, norm_first={self.norm_first}, {self.activation})")


class Sequential(Module):
    """Layers applied in order; parameters are named '<index>.<name>'."""

    def __init__(self, *layers: Module):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise GraphError(f"Sequential takes layers (gc.nn.Module), got {layer!r} at position {i}",
                                 user_location())
        self.layers = list(layers)
        self._name()

    def _children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}): {layer!r}\n" for i, layer in enumerate(self.layers)) + ")"


# ---------------------------------------------------------------- recurrent networks
# Gate layouts are PyTorch's: W_ih (input, G*H) and W_hh (H, G*H) hold the gates side by side
# (LSTM: input, forget, candidate, output; GRU: reset, update, new), two biases b_ih and b_hh.
def _affine(x, W, b):
    return F.matmul(x, W) if b is None else F.add(F.matmul(x, W), b)


def _gates(z, k):
    H = z.shape[-1] // k
    return F.split(z, H, axis=-1)


OWN_BIAS = object()  # update(..., b_hh=OWN_BIAS): the cell's own b_hh


def rnn_update(zx, h, W_hh, b_hh=None, nonlinearity: str = "tanh"):
    """An Elman step from its input gates zx = x @ W_ih + b_ih: act(zx + h @ W_hh + b_hh)."""
    z = F.add(zx, _affine(h, W_hh, b_hh))
    return F.tanh(z) if nonlinearity == "tanh" else F.relu(z)


def lstm_update(zx, h, c, W_hh, b_hh=None):
    """An LSTM step from its input gates zx = x @ W_ih + b_ih (gates input, forget, candidate,
    output, as PyTorch): returns (h', c')."""
    i, f, g, o = _gates(F.add(zx, _affine(h, W_hh, b_hh)), 4)
    c2 = F.add(F.mul(F.sigmoid(f), c), F.mul(F.sigmoid(i), F.tanh(g)))
    return F.mul(F.sigmoid(o), F.tanh(c2)), c2


def gru_update(zx, h, W_hh, b_hh=None):
    """A GRU step from its input gates zx = x @ W_ih + b_ih (gates reset r, update z, new n):
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), h' = (1 - z) * n + z * h."""
    xr, xz, xn = _gates(zx, 3)
    hr, hz, hn = _gates(_affine(h, W_hh, b_hh), 3)
    r, z = F.sigmoid(F.add(xr, hr)), F.sigmoid(F.add(xz, hz))
    n = F.tanh(F.add(xn, F.mul(r, hn)))
    return F.add(n, F.mul(z, F.sub(h, n)))


def rnn_step(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity: str = "tanh"):
    """One Elman step as a function of its weights: act(x @ W_ih + b_ih + h @ W_hh + b_hh)."""
    return rnn_update(_affine(x, W_ih, b_ih), h, W_hh, b_hh, nonlinearity)


def lstm_step(x, h, c, W_ih, W_hh, b_ih=None, b_hh=None):
    """One LSTM step as a function of its weights (W_ih (in, 4H), W_hh (H, 4H), biases (4H,); gates
    input, forget, candidate, output, as PyTorch): returns (h', c')."""
    return lstm_update(_affine(x, W_ih, b_ih), h, c, W_hh, b_hh)


def gru_step(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    """One GRU step (Cho et al. 2014) as PyTorch computes it (W_ih (in, 3H), W_hh (H, 3H))."""
    return gru_update(_affine(x, W_ih, b_ih), h, W_hh, b_hh)


def _zeros_state(x, hidden):
    return F.broadcast_to(F.constant(np.zeros(hidden, x.dtype)), (x.shape[0], hidden), like=x)


class _Cell(Module):
    """A recurrent cell: gates = x @ W_ih + b_ih + h @ W_hh + b_hh. Weights Xavier uniform, biases
    zeros. torch's names weight_ih, weight_hh (transposed: torch stores (G*H, input)), bias_ih,
    bias_hh."""

    gates = 1
    # whether h @ W_hh + b_hh enters the gates only through their sum with x @ W_ih + b_ih (RNN,
    # LSTM; not the GRU's new gate): then a scan adds b_hh to the input gates before the loop
    hh_bias_outside = True
    torch_names = {"weight_ih": ("W_ih", True), "weight_hh": ("W_hh", True), "bias_ih": ("b_ih", False),
                   "bias_hh": ("b_hh", False)}

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, seed=None, dtype="float32"):
        G, H = self.gates, hidden_size
        self.W_ih = F.parameter(initializers.xavier_uniform((input_size, G * H), seed=seed, dtype=dtype), name="W_ih")
        self.W_hh = F.parameter(initializers.xavier_uniform((H, G * H), seed=None if seed is None else seed + 1,
                                                            dtype=dtype), name="W_hh")
        self.b_ih = F.parameter(np.zeros(G * H, self.W_ih.dtype), name="b_ih") if bias else None
        self.b_hh = F.parameter(np.zeros(G * H, self.W_ih.dtype), name="b_hh") if bias else None
        self.input_size, self.hidden_size = input_size, hidden_size

    def __call__(self, x, state=None):
        return self.forward(F.as_node(x), state)

    def initial_state(self, x):
        """Zeros of shape (N, hidden) for a batch x (N, input): its run-time batch size included."""
        return _zeros_state(x, self.hidden_size)

    def weights(self):
        return self.W_ih, self.W_hh, self.b_ih, self.b_hh

    def input_gates(self, x):
        """x @ W_ih + b_ih for x (..., input): for a whole sequence, one GEMM before the loop."""
        z = F.matmul(x, self.W_ih)
        return z if self.b_ih is None else F.add(z, self.b_ih)

    def _b_hh(self, b_hh):
        return self.b_hh if b_hh is OWN_BIAS else b_hh

    def sequence_gates(self, xs):
        """(input gates of every step, the b_hh each step still adds): x @ W_ih + b_ih + b_hh
        for the whole sequence, one GEMM and one bias before the loop, where the cell allows."""
        z = self.input_gates(xs)
        if self.b_hh is None or not self.hh_bias_outside:
            return z, self.b_hh
        return F.add(z, self.b_hh), None

    def forward(self, x, state=None):
        """One step: the new state for input x (N, input)."""
        return self.update(self.input_gates(x), self.initial_state(x) if state is None else state)

    @staticmethod
    def output(state):
        """The step's output h of a state."""
        return state

    def scan(self, xs, state=None, reverse: bool = False):
        """The cell over a sequence xs (T, N, input) as one gc.scan (not unrolled; T may be known only
        at run time): (outputs (T, N, hidden), final state). The input gates of every step are one
        GEMM before the loop; the loop's body is h @ W_hh and the gates."""
        xs = F.as_node(xs)
        if xs.ndim != 3:
            raise ShapeError(f"{type(self).__name__}.scan: xs must be (T, N, input), got {fmt_shape(xs.shape)}",
                             user_location())
        s0 = self.initial_state(F.getitem(xs, 0)) if state is None else state
        single = not isinstance(s0, tuple)

        zs, b_hh = self.sequence_gates(xs)

        def step(carry, z):
            new = self.update(z, carry[0] if single else tuple(carry), b_hh)
            return ((new,) if single else tuple(new)), self.output(new)
        final, ys = F.scan(step, (F.as_node(s0),) if single else tuple(F.as_node(s) for s in s0),
                           zs, reverse=reverse)
        return ys, final[0] if single else tuple(final)

    def __repr__(self):
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


class RNNCell(_Cell):
    """One step of an Elman network: h' = tanh(x @ W_ih + b_ih + h @ W_hh + b_hh) (or relu).
    cell(x, h) -> h'; the state is h, of shape (N, hidden)."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True, seed=None,
                 dtype="float32"):
        if nonlinearity not in ("tanh", "relu"):
            raise GraphError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}", user_location())
        super().__init__(input_size, hidden_size, bias, seed, dtype)
        self.nonlinearity = nonlinearity

    def update(self, zx, h, b_hh=OWN_BIAS):
        return rnn_update(zx, F.as_node(h), self.W_hh, self._b_hh(b_hh), self.nonlinearity)


class LSTMCell(_Cell):
    """One step of a long short-term memory cell (Hochreiter & Schmidhuber; the forget gate of Gers
    et al.), as torch.nn.LSTMCell: gates split into input i, forget f, candidate g, output o;
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g), h' = sigmoid(o) * tanh(c'). The state is (h, c).
    The forget gate's b_ih starts at forget_bias (1: early gradients flow); torch's at a random value."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, seed=None, dtype="float32",
                 forget_bias: float = 1.0):
        super().__init__(input_size, hidden_size, bias, seed, dtype)
        if bias:
            b = self.b_ih.value.copy()
            b[hidden_size:2 * hidden_size] = forget_bias
            self.b_ih.value = b

    def initial_state(self, x):
        """(h, c) zeros of shape (N, hidden) for a batch x (N, input)."""
        z = _zeros_state(x, self.hidden_size)
        return z, z

    def update(self, zx, state, b_hh=OWN_BIAS):
        return lstm_update(zx, F.as_node(state[0]), F.as_node(state[1]), self.W_hh, self._b_hh(b_hh))

    @staticmethod
    def output(state):
        return state[0]


class GRUCell(_Cell):
    """One step of a gated recurrent unit, as torch.nn.GRUCell (gates reset, update, new; see
    gru_update). cell(x, h) -> h'."""

    gates = 3
    hh_bias_outside = False  # r * (h @ W_hn + b_hn)

    def update(self, zx, h, b_hh=OWN_BIAS):
        return gru_update(zx, F.as_node(h), self.W_hh, self._b_hh(b_hh))


def unroll(cell, xs, state=None):
    """Run a cell over a sequence of fixed length: xs a list of (N, input) nodes or one node
    (T, N, input) with T known. Returns (outputs (T, N, hidden) stacked, the final state). The
    unrolled graph is ordinary IR: its gradient is backpropagation through time."""
    if isinstance(xs, (list, tuple)):
        steps = [F.as_node(x) for x in xs]
    else:
        xs = F.as_node(xs)
        if xs.ndim != 3 or xs.shape[0] is None:
            raise GraphError(f"unroll: xs must be (T, N, input) with T known, got shape {xs.shape}", user_location())
        steps = [F.getitem(xs, t) for t in range(xs.shape[0])]
    if not steps:
        raise GraphError("unroll: an empty sequence", user_location())
    outs = []
    for x in steps:
        state = cell(x, state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return F.stack(outs, axis=0), state


class RNN(Module):
    """num_layers RNNCells over x (T, N, input) (or (N, T, input) with batch_first), as
    torch.nn.RNN: layer k > 0 reads layer k - 1's outputs (with dropout between layers while
    training). layer(x, h0=None) -> (outputs (T, N, hidden) of the last layer, batch first if asked;
    h_n (num_layers, N, hidden)). torch's names weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
    bias_hh_l{k}; checkpoints name the cells l0, l1, ... Each layer is one gc.scan over the sequence
    (not unrolled: T may be known only at run time, and the compile time does not grow with it)."""

    cell_type = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, seed=None, dtype="float32", **cell_options):
        if num_layers < 1:
            raise GraphError(f"{type(self).__name__}: num_layers must be >= 1, got {num_layers}", user_location())
        for k in range(num_layers):
            setattr(self, f"l{k}", self.cell_type(input_size if k == 0 else hidden_size, hidden_size, bias=bias,
                                                  seed=None if seed is None else seed + 10 * k, dtype=dtype,
                                                  **cell_options))
        self.num_layers, self.batch_first = num_layers, batch_first
        self.dropout = Dropout(dropout, seed=seed) if dropout else None

    @property
    def cells(self) -> list:
        return [getattr(self, f"l{k}") for k in range(self.num_layers)]

    @property
    def cell(self):
        """The first layer's cell."""
        return self.l0

    def _children(self):
        for k in range(self.num_layers):
            yield f"l{k}", getattr(self, f"l{k}")

    def _torch_entries(self, prefix: str = ""):
        for k, cell in enumerate(self.cells):
            for key, p, t in cell._torch_entries():
                yield f"{prefix}{key}_l{k}", p, t

    def __call__(self, x, state=None):
        return self.forward(F.as_node(x), state)

    def _layer_states(self, state):
        """The initial state per layer (None: zeros), from (num_layers, N, H) nodes."""
        if state is None:
            return [None] * self.num_layers
        def pick(s, k):
            return F.getitem(F.as_node(s), k)
        if isinstance(state, (tuple, list)):
            return [tuple(pick(s, k) for s in state) for k in range(self.num_layers)]
        return [pick(state, k) for k in range(self.num_layers)]

    def forward(self, x, state=None):
        if x.ndim != 3:
            raise ShapeError(f"{type(self).__name__}: x must be (T, N, input) (batch_first: (N, T, input)), got "
                             f"{x.shape}", user_location())
        if self.batch_first:
            x = F.transpose(x, (1, 0, 2))
        finals = []
        for k, (cell, s0) in enumerate(zip(self.cells, self._layer_states(state))):
            if k and self.dropout is not None:
                x = self.dropout(x)
            x, s = cell.scan(x, s0)
            finals.append(s)
        out = F.transpose(x, (1, 0, 2)) if self.batch_first else x
        if isinstance(finals[0], tuple):
            return out, tuple(F.stack([f[j] for f in finals], 0) for j in range(len(finals[0])))
        return out, F.stack(finals, 0)

    def __repr__(self):
        c = self.l0
        return f"{type(self).__name__}({c.input_size}, {c.hidden_size}, num_layers={self.num_layers})"


class LSTM(RNN):
    """num_layers LSTMCells, as torch.nn.LSTM: layer(x, (h0, c0)=None) -> (outputs, (h_n, c_n)),
    each state (num_layers, N, hidden)."""

    cell_type = LSTMCell


class GRU(RNN):
    """num_layers GRUCells, as torch.nn.GRU: layer(x, h0=None) -> (outputs, h_n (num_layers, N, hidden))."""

    cell_type = GRUCell
