"""Entry point, as train-classifier runs it: ``python -m blobs`` from the repository root.

Trains, then writes its results to ``artefacts/`` at the repository root (the folder above
this module), which ``mloop train blobs`` archives as ``artefacts.tar.gz``.
"""

import argparse
from pathlib import Path

from blobs.sample.runner import save, train

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()

result = train(epochs=args.epochs, lr=args.lr)
print(f"accuracy {result['accuracy']:.3f} after {result['epochs']} epochs")
save(result, Path(__file__).parent.parent.joinpath("artefacts"))
