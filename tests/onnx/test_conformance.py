"""The ONNX backend conformance suite (onnx's own node tests: model, inputs, outputs; compared at
rtol 1e-3 with exact dtypes) on graphc: every test on the numpy backend, a fixed subset spanning the
op families on numba. The expected failures, each with its reason, are tests/onnx/expected_failures.txt
(strict: one that passes fails here, so the list only shrinks). The full numba run, with counts per
op: `make onnx-conformance`."""
from __future__ import annotations

import pathlib
import re
import warnings

import pytest

onnx_test = pytest.importorskip("onnx.backend.test")  # the dev extra installs onnx

from graphc.onnx.backend import backend_for  # noqa: E402

warnings.filterwarnings("ignore", category=RuntimeWarning, module="onnx")
_LIST = (pathlib.Path(__file__).parent / "expected_failures.txt").read_text().splitlines()
EXPECTED = [line.split("\t")[0] for line in _LIST if line and not line.startswith("#")]

# on numba: one or two tests of each family (elementwise, reductions, movement, nn, recurrent, attention)
NUMBA = ["add_bcast", "mul", "div", "pow", "mod_mixed_sign_float64", "relu", "leakyrelu", "gelu_default_1",
         "sigmoid", "softmax_axis_1", "logsoftmax_axis_2", "hardmax_example", "where_example", "clip",
         "reduce_mean_keepdims_example", "reduce_sum_default_axes_keepdims_example", "argmax_default_axis_example",
         "reduce_log_sum_exp_do_not_keepdims_example", "matmul_3d", "gemm_all_attributes", "einsum_batch_matmul",
         "reshape_reordered_all_dims", "transpose_all_permutations_3", "concat_3d_axis_negative_1",
         "slice_neg_steps", "gather_1", "gather_elements_1", "expand_dim_changed", "tile", "constant_pad", "edge_pad",
         "depthtospace_crd_mode_example",
         "conv_with_strides_and_asymmetric_padding", "convtranspose_pads", "maxpool_2d_pads", "averagepool_2d_ceil",
         "globalaveragepool", "batchnorm_example", "layer_normalization_3d_axis1_epsilon", "instancenorm_example",
         "lstm_defaults", "gru_with_initial_bias", "rnn_seq_length", "attention_4d_gqa_causal",
         "attention_3d_with_past_and_present", "cumsum_2d_axis_1", "sce_mean_weight", "nllloss_NCd1d2_with_weight",
         "round", "floor", "mod_broadcast", "onehot_with_axis", "tril_neg", "range_float_type_positive_delta",
         "dft_irfft", "gridsample_bicubic", "affine_grid_3d", "linear_attention_gated_delta_gqa",
         "causal_conv_with_state_silu"]


def _suite(backend: str, only=None):
    bt = onnx_test.BackendTest(backend_for(backend), __name__)
    if only is not None:
        bt.include("^(" + "|".join(f"test_{re.escape(t)}_cpu" for t in only) + ")$")
    else:
        bt.include(r"_cpu$")
    for name in EXPECTED:
        bt.xfail(f"^{re.escape(name)}$")
    return bt.test_cases["OnnxBackendNodeModelTest"]


NumpyNodeTests = _suite("numpy")
NumbaNodeTests = _suite("numba", NUMBA)


def test_the_numba_subset_names_real_tests_that_pass():
    """Every name in the numba subset is one of onnx's tests, and none is an expected failure."""
    names = {m[5:-4] for m in dir(NumpyNodeTests) if m.startswith("test_") and m.endswith("_cpu")}
    assert set(NUMBA) <= names, sorted(set(NUMBA) - names)
    assert not {f"test_{t}_cpu" for t in NUMBA} & set(EXPECTED)
