"""The `graphc` console command: viz, train, bench and help; bad example files get one clear line."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from graphc.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
XOR = str(ROOT / "examples" / "xor.py")


def test_help_documents_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("viz", "train", "bench", "build()", "main(argv)", "graphviz"):
        assert word in out
    assert main([]) == 2  # no command: the help, and a failing status


def test_console_script_is_installed():
    exe = pathlib.Path(sys.executable).parent / "graphc"
    r = subprocess.run([str(exe), "viz", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--stage" in r.stdout and "--collapse" in r.stdout


def test_viz_writes_the_example_graph(tmp_path, capsys):
    out = tmp_path / "xor.dot"
    assert main(["viz", XOR, "--stage", "backward", "-o", str(out)]) == 0
    src = out.read_text()
    assert src.startswith("digraph graphc_backward") and "W1 :=" in src and "backward" in src
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["viz", XOR, "--stage", "forward", "--rankdir", "LR", "-o", "-"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("digraph graphc_forward") and "rankdir=LR" in text and ":=" not in text


def test_viz_and_train_explain_what_an_example_lacks(tmp_path, capsys):
    bare = tmp_path / "bare.py"
    bare.write_text("x = 1\n")
    assert main(["viz", str(bare)]) == 2
    assert "defines no build()" in capsys.readouterr().err
    assert main(["train", str(bare)]) == 2
    assert "defines no main(argv)" in capsys.readouterr().err
    needs = tmp_path / "needs.py"
    needs.write_text("def build(width):\n    return None\n")
    assert main(["viz", str(needs)]) == 2
    assert "build() needs arguments width" in capsys.readouterr().err
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def build():\n    return 3\n")
    assert main(["viz", str(wrong)]) == 2
    assert "returned int" in capsys.readouterr().err
    assert main(["viz", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_train_runs_the_examples_main_with_its_arguments(capsys):
    assert main(["train", XOR, "--steps", "600"]) == 0
    out = capsys.readouterr().out
    assert "accuracy 1.00" in out and "step   480" in out


def test_bench_runs_tools_bench_with_its_arguments(capsys):
    assert main(["bench", "--help"]) == 0
    assert "W1" in capsys.readouterr().out


def test_bench_is_found_from_a_checkout_folder(tmp_path, monkeypatch):
    import graphc.cli as cli
    monkeypatch.chdir(tmp_path)
    assert cli.find_bench() == os.path.join(str(ROOT), "tools", "bench.py")
