# The README's two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# JIT caches inside the checkout, so CI and repeated runs reuse compiled kernels
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
export GRAPHC_CACHE_DIR ?= $(CURDIR)/.cache/graphc

.PHONY: demo test test-cuda test-mpi bench-mpi fuzz onnx-conformance onnx-conformance-1.19 install graphviz chromium docs bench peers clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Debian's `dot` binary for rendering graphs; without it graphc writes DOT text instead.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq graphviz) >/dev/null 2>&1 \
	      || echo "note: could not install graphviz; drawings fall back to DOT text"; \
	  else echo "note: install Graphviz (apt-get install graphviz) to render drawings"; fi; }

# Debian's headless chromium for the explorer's browser test (tests/numba/test_explore.py); without
# it that test is skipped and says why. apt-get update is run once, by the graphviz target or here.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)) >/dev/null 2>&1 \
	      || echo "note: could not install chromium; the explorer's browser test will be skipped"; \
	  else echo "note: install chromium (apt-get install chromium) for the explorer's browser test"; fi; }

# the main job: train the digits MLP on the numba backend; curves and checkpoint land in out/
demo: install graphviz
	$(PY) examples/mlp_digits.py --out out

# the drawings of the digits MLP's training step at each stage, shown in the README
docs: install graphviz chromium
	for stage in forward backward optimized; do \
	  $(VENV)/bin/graphc viz examples/mlp_digits.py --stage $$stage -o docs/mlp_$$stage.svg || exit 1; done
	$(PY) tools/explorer_screenshots.py --out docs

# the benchmark suite beside the peers (never in CI); `make peers` first makes the peers' venv
# (numpy, numba, pytensor, torch CPU, jax; scikit-learn for W9's data) so PyTorch, JAX and PyTensor are measured too
bench: install
	$(PY) tools/bench.py $(BENCH_ARGS)

peers:
	bash ../shared/peers/setup_venv.sh
	$${PEERS_VENV:-$$HOME/.cache/graphc-peers/venv}/bin/pip install -q scikit-learn  # W9's digits, for torch too

# lint (ruff, configured in pyproject.toml), then the tests on two workers: numba compiles dominate
# and use one core each
test: install graphviz chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -n 2

# the cross-backend fuzz suite at length (CI runs a seeded 10 graphs): FUZZ_EXAMPLES graphs, a
# quarter of them on the CUDA simulator too
FUZZ_EXAMPLES ?= 400
fuzz: install
	GRAPHC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) GRAPHC_FUZZ_CUDA=$$(( $(FUZZ_EXAMPLES) / 4 )) \
	  $(VENV)/bin/pytest -q tests/backends/test_fuzz.py -k random_graphs

# the ONNX backend conformance suite's node tests on numpy and numba, with pass counts per op
# (make test runs all of them on numpy and a subset on numba: tests/onnx)
onnx-conformance: install
	$(PY) tools/onnx_conformance.py --backends numpy,numba --per-op

# data parallelism: the training runs under mpiexec on 1, 2, 4 and 8 ranks (make test: 1, 2, 4)
test-mpi: install
	GRAPHC_TEST_RANKS=1,2,4,8 $(VENV)/bin/pytest -q tests/distributed

# W2 as 1 rank x 2 threads (the fused step) and as 2 ranks x 1 thread (grad, allreduce, update): JSON lines
bench-mpi: install
	$(PY) tools/bench_mpi.py
	$(VENV)/bin/mpiexec -n 2 $(PY) -m mpi4py tools/bench_mpi.py --ranks

# the node tests of onnx 1.19.0 (the release tinygrad's exclude list is written against) on numpy:
# a venv holding only that onnx, the rest of .venv on its path
ONNX119 := .cache/onnx119
onnx-conformance-1.19: install
	test -x $(ONNX119)/bin/python || $(PY) -m venv $(ONNX119)
	$(ONNX119)/bin/python -m pip install -q --no-deps onnx==1.19.0
	echo "import site; site.addsitedir('$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')')" \
	  > $$($(ONNX119)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_graphc.pth
	$(ONNX119)/bin/python tools/onnx_conformance.py --backends numpy

# on a machine with an NVIDIA GPU: the backends tier and tests/cuda on the real device
test-cuda: install
	NUMBA_ENABLE_CUDASIM=0 $(VENV)/bin/pytest -q tests/cuda tests/backends -k cuda

clean:
	rm -rf $(VENV) .cache out .pytest_cache
