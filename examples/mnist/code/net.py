"""The MNIST classifier: the CNN of pytorch/examples ``mnist/main.py``.

Conv(1->32, 3x3) - ReLU - Conv(32->64, 3x3) - ReLU - MaxPool(2) - Dropout(0.25) -
Linear(9216->128) - ReLU - Dropout(0.5) - Linear(128->10) - log_softmax.

Input: float32 images of shape (N, 1, 28, 28) with pixel values scaled to 0..1 (raw
byte / 255). The network normalizes them itself with the ``mean``/``std`` buffers saved
in its state, so a served model needs no separate preprocessing step. Output: (N, 10)
log-probabilities; ``argmax(dim=1)`` is the predicted digit.

Load a trained model without TorchScript::

    import torch
    from net import Net

    model = Net()
    model.load_state_dict(torch.load("model_state.pt"))
    model.eval()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# MNIST's pixel statistics (on 0..1), the usual normalization constants.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class Net(nn.Module):
    def __init__(self, num_classes: int = 10, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, num_classes)
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)
