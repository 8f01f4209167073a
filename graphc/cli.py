"""The `graphc` console command: draw an example's graph, run its training, run the benchmarks.

An example (any Python file) follows two conventions, which examples/ all keep:
  build(**options)  callable with no arguments; returns what `graphc viz` draws: a Trainer (its
                    training step), a compiled Function, a node or a list of nodes, or a tuple whose
                    first item is one of those. If it takes a `backend` argument, --backend is passed.
  main(argv=None)   parses argv (a list of strings) and trains; `graphc train FILE.py ARGS` calls it.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import runpy
import sys

EPILOG = """\
examples:
  graphc viz examples/mlp_digits.py --stage optimized -o mlp.svg
  graphc viz examples/xor.py --stage backward --rankdir LR -o xor.png
  graphc viz examples/mlp_digits.py --stage forward -o -        (DOT text to stdout)
  graphc viz examples/mlp_digits.py -o mlp.html                 (the explorer: stages, kernels, sources)
  graphc train examples/mlp_digits.py --epochs 10 --backend numpy
  graphc bench --quick

An example file defines build() (returns a Trainer, a compiled Function or graph nodes: what
`viz` draws) and main(argv) (what `train` runs). Rendering SVG/PNG/PDF needs Graphviz's `dot`
program (apt-get install graphviz); without it `viz` writes the DOT text and says so.
"""


class CLIError(Exception):
    """A mistake in the command line or the example file: printed as one line, exit status 2."""


def load_example(path: str):
    """Import an example file as a module (its folder first on sys.path, for its sibling imports)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "graphc_example_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def drawable(module, path: str, backend: str | None):
    """What the example's build() returns, reduced to something gc.to_dot draws."""
    from .function import Function
    from .ir import Node
    from .train import Trainer

    build = getattr(module, "build", None)
    if not callable(build):
        raise CLIError(f"{path} defines no build() function; `graphc viz` draws what build() returns "
                       "(a Trainer, a compiled Function or graph nodes)")
    params = inspect.signature(build).parameters
    required = [p for p, v in params.items() if v.default is inspect.Parameter.empty
                and v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
    if required:
        raise CLIError(f"{path}: build() needs arguments {', '.join(required)}; give them defaults so "
                       "`graphc viz` can call build()")
    kwargs = {}
    if backend is not None:
        if "backend" not in params:
            raise CLIError(f"{path}: build() takes no backend argument, so --backend cannot be used")
        kwargs["backend"] = backend
    obj = build(**kwargs)
    if isinstance(obj, tuple) and obj and not all(isinstance(o, Node) for o in obj):
        obj = obj[0]
    ok = isinstance(obj, (Trainer, Function, Node)) or (
        isinstance(obj, list) and obj and all(isinstance(o, Node) for o in obj))
    if not ok:
        raise CLIError(f"{path}: build() returned {type(obj).__name__}; `graphc viz` draws a Trainer, a "
                       "compiled Function, a node or a list of nodes (or a tuple starting with one)")
    return obj


def onnx_function(path: str, backend: str | None, inputs=()):
    """An ONNX file imported and compiled (values: inputs fixed at import, for shape-like ones)."""
    from . import onnx as gonnx
    from .compiler import compile as compile_
    if not os.path.isfile(path):
        raise CLIError(f"no such file: {path}")
    try:
        model = gonnx.load(path, values=dict(inputs))
        return model, compile_(model.inputs, model.outputs, backend=backend or "numba")
    except gonnx.UnsupportedError as e:
        raise CLIError(str(e)) from None


def cmd_viz(args) -> int:
    from .viz import render, to_dot
    if args.file.endswith(".onnx"):  # an ONNX model, imported and compiled
        obj = onnx_function(args.file, args.backend)[1]
    else:
        obj = drawable(load_example(args.file), args.file, args.backend)
    if args.output and args.output.endswith(".html"):  # the interactive page: every stage, kernels, sources
        from .explore import explore
        print(f"wrote {explore(obj, args.output)}")
        return 0
    dot = to_dot(obj, stage=args.stage, collapse=args.collapse, rankdir=args.rankdir,
                 edge_labels=not args.no_edge_labels)
    if args.output == "-":
        sys.stdout.write(dot.source)
        return 0
    out = args.output or f"{os.path.splitext(os.path.basename(args.file))[0]}_{args.stage}.{args.format or 'svg'}"
    written = render(dot, out, format=args.format)
    print(f"wrote {written}")
    return 0


def cmd_onnx_run(args) -> int:
    """Run an ONNX model on arrays from .npy files; print each output's shape, dtype and values (or
    save them with --save DIR)."""
    import numpy as np
    feeds = {}
    for item in args.input:
        name, _, file = item.partition("=")
        if not file:
            raise CLIError(f"--input wants NAME=FILE.npy, got {item!r}")
        feeds[name] = np.load(file)
    model, fn = onnx_function(args.file, args.backend)
    missing = [n for n in model.input_names if n not in feeds]
    if missing:
        raise CLIError(f"the model's inputs {missing} have no --input NAME=FILE.npy")
    outs = fn(*[feeds[n] for n in model.input_names])
    for name, out in zip(model.output_names, outs):
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            np.save(os.path.join(args.save, f"{name}.npy"), out)
        print(f"{name}: {out.shape} {out.dtype}\n{np.array2string(out, threshold=20)}")
    return 0


def cmd_train(args) -> int:
    module = load_example(args.file)
    main = getattr(module, "main", None)
    if not callable(main):
        raise CLIError(f"{args.file} defines no main(argv) function for `graphc train` to run")
    main(list(args.args))
    return 0


def find_bench() -> str:
    """tools/bench.py of the graphc checkout: beside the installed package (editable installs) or
    in the current folder or one of its parents."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    places = [here]
    d = os.getcwd()
    while True:
        places.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    for d in places:
        path = os.path.join(d, "tools", "bench.py")
        if os.path.isfile(path):
            return path
    raise CLIError("tools/bench.py not found: run `graphc bench` inside a graphc checkout "
                   "(the benchmarks are not installed with the package)")


def cmd_bench(args) -> int:
    path = find_bench()
    argv = sys.argv
    sys.argv = [path] + list(args.args)
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return 0


def parser() -> argparse.ArgumentParser:
    from . import __version__
    ap = argparse.ArgumentParser(
        prog="graphc", description="graphc: a compiler for static computation graphs. Draw an example's "
        "graph at any stage of the compiler, train it, or run the benchmarks.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"graphc {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="{viz,onnx-run,train,bench}")

    v = sub.add_parser("viz", help="draw the graph an example's build() returns",
                       description="Draw the graph an example's build() returns with Graphviz.")
    v.add_argument("file", help="an example file defining build(), or an ONNX model (.onnx)")
    v.add_argument("--stage", choices=["forward", "backward", "optimized"], default="optimized",
                   help="forward: the graph as built; backward: plus gradient and update nodes; "
                        "optimized: after the passes, fused kernels as clusters (default)")
    v.add_argument("-o", "--output", help="output file (.svg, .png, .pdf or .dot; '-' prints DOT text; .html: "
                                          "the interactive explorer, every stage); default FILE_STAGE.svg")
    v.add_argument("--format", choices=["svg", "png", "pdf", "dot"], help="default: the output's extension")
    v.add_argument("--backend", help="passed to build(backend=...) (the optimized stage draws that "
                                     "backend's kernels; numpy fuses nothing)")
    v.add_argument("--collapse", action="store_true", help="draw each fused kernel as one box")
    v.add_argument("--rankdir", choices=["TB", "LR"], default="TB", help="top-to-bottom or left-to-right")
    v.add_argument("--no-edge-labels", action="store_true", help="leave the shapes off the edges")
    v.set_defaults(run=cmd_viz)

    r = sub.add_parser("onnx-run", help="run an ONNX model on .npy inputs",
                       description="Import an ONNX model (gc.onnx.load), compile it and run it once.")
    r.add_argument("file", help="the model (.onnx; external data beside it loads too)")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="one per graph input")
    r.add_argument("--backend", default="numba", help="numba (default), numpy or cuda")
    r.add_argument("--save", metavar="DIR", help="write each output to DIR/NAME.npy")
    r.set_defaults(run=cmd_onnx_run)

    t = sub.add_parser("train", help="run an example's training: its main(ARGS)",
                       description="Run an example's main(argv) with the arguments that follow the file.")
    t.add_argument("file", help="an example file defining main(argv)")
    t.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the example (see FILE --help)")
    t.set_defaults(run=cmd_train)

    b = sub.add_parser("bench", help="run the benchmarks (tools/bench.py; see graphc bench --help)",
                       description="Run tools/bench.py of this checkout with the arguments given.",
                       add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER)
    b.set_defaults(run=cmd_bench)
    return ap


def main(argv=None) -> int:
    """Entry point of the `graphc` command."""
    ap = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after `bench` is the benchmark's own (argparse would
        args = argparse.Namespace(command="bench", run=cmd_bench, args=argv[1:])  # take --options)
    else:
        args = ap.parse_args(argv)
    if args.command is None:
        ap.print_help()
        return 2
    try:
        return args.run(args)
    except CLIError as e:
        print(f"graphc {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
