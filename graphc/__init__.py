"""graphc: a compiler for static computation graphs (define-then-run, symbolic gradients, fusion)."""
from . import dtypes, errors, ops  # noqa: F401
from .api import (  # noqa: F401
    abs, add, argmax, argmin, as_node, avg_pool2d, binary_cross_entropy, binary_cross_entropy_with_logits,
    broadcast_to, cast, check_index, clip, concat, constant, conv2d, cos, cross_entropy, div, elu, embedding, equal,
    erf,
    exp, expand_dims, flatten, fold, gelu, getitem, greater, greater_equal, hinge, l1_loss, leaky_relu, less,
    less_equal, log, log1p, log_softmax, logical_and, logical_not, logical_or, logical_xor, logsumexp, matmul, max,
    max_pool2d, maximum, mean, min, minimum, mse, mul, neg, not_equal, one_hot, pad, parameter, permute,
    placeholder, pow, prelu, prod, random_uniform, reciprocal, relu, reshape, sigmoid, sign, sin, size_of, softmax,
    softplus, sqrt, square, squeeze, stack, std, step, sub, sum, take, tanh, train_switch, transpose, unfold, var,
    where,
)
from .autodiff import (  # noqa: F401
    GradientCheckError, check_grad, clip_by_global_norm, format_backward, grad, hessian, hvp, vjp,
)
from .compiler import compile  # noqa: F401
from .errors import (  # noqa: F401
    CompileError, DTypeError, FeedError, GraphError, GraphIndexError, GraphRuntimeError, OutOfMemoryError, ShapeError,
)
from .function import Function  # noqa: F401
from . import init, nn, optim  # noqa: F401,E402  (gc.init.he_normal, gc.nn.Linear, gc.optim.Adam)
from .checkpoint import CheckpointError, load, save  # noqa: F401
from .functional import accuracy, batch_norm, binary_accuracy, dropout, l1_penalty, l2_penalty  # noqa: F401
from .rng import seed  # noqa: F401
from .train import CrossValidation, EarlyStopping, History, Trainer, cross_validate  # noqa: F401
from .ir import Node, format_graph, toposort  # noqa: F401
from .viz import render, to_dot  # noqa: F401

__version__ = "0.1.0"
