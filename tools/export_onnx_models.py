"""Export the real models tests/onnx/test_real_models.py checks graphc against onnxruntime on.

Run once, where torch, onnx, onnxscript, scikit-learn and skl2onnx are installed (not graphc's
.venv): `python tools/export_onnx_models.py --setup` makes that venv (the peers' venv, with the
exporters added) and runs this script in it. Writes tests/data/onnx/:

- digits_mlp.onnx (torch.onnx.export, TorchScript exporter): 64 -> 32 -> 10 MLP on the 8x8 digits;
- digits_cnn.onnx + digits_cnn.onnx.data (the dynamo exporter, weights as external data): conv
  3x3 1->8, relu, maxpool 2, conv 3x3 8->16, relu, global average pool, linear 16 -> 10;
- digits_sklearn_mlp.onnx (skl2onnx, zipmap=False): scikit-learn's MLPClassifier (32 hidden).

Each torch model is trained for a few epochs on the digits first (seeded), so
examples/onnx_finetune.py starts from a useful model. Every file stays small (< 2 MB in all).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "onnx")


def setup_and_run() -> int:
    venv = os.environ.get("PEERS_VENV", os.path.expanduser("~/.cache/graphc-peers/venv"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call(["bash", os.path.join(ROOT, "..", "shared", "peers", "setup_venv.sh")])
    subprocess.check_call([py, "-m", "pip", "install", "-q", "onnx==1.23.2", "onnxscript", "scikit-learn", "skl2onnx"])
    return subprocess.call([py, os.path.abspath(__file__)])


def digits():
    import numpy as np
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return x, d.target.astype(np.int64)


def train(model, x, y, epochs=30):
    import torch
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for i in range(0, len(tx), 64):
            loss = torch.nn.functional.cross_entropy(model(tx[i:i + 64]), ty[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(tx).argmax(1) == ty).float().mean().item()
    return acc


def main() -> int:
    import torch
    from torch import nn
    os.makedirs(OUT, exist_ok=True)
    x, y = digits()
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    print(f"mlp train accuracy {train(mlp, x, y):.3f}")
    torch.onnx.export(mlp, (torch.from_numpy(x[:4]),), os.path.join(OUT, "digits_mlp.onnx"), dynamo=False,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "batch"}},
                      opset_version=17)

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
            self.head = nn.Linear(16, 10)

        def forward(self, img):
            h = torch.max_pool2d(torch.relu(self.c1(img)), 2)
            h = torch.relu(self.c2(h)).mean(dim=(2, 3))
            return self.head(h)
    torch.manual_seed(0)
    cnn = CNN()
    imgs = x.reshape(-1, 1, 8, 8)
    print(f"cnn train accuracy {train(cnn, imgs, y, epochs=20):.3f}")
    batch = torch.export.Dim("batch")
    prog = torch.onnx.export(cnn, (torch.from_numpy(imgs[:4]),), dynamo=True, input_names=["img"],
                             output_names=["logits"], dynamic_shapes={"img": {0: batch}})
    prog.save(os.path.join(OUT, "digits_cnn.onnx"), external_data=True)

    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(x, y)
    print(f"sklearn mlp train accuracy {clf.score(x, y):.3f}")
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    with open(os.path.join(OUT, "digits_sklearn_mlp.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", action="store_true", help="make the exporters' venv and run there")
    sys.exit(setup_and_run() if ap.parse_args().setup else main())
