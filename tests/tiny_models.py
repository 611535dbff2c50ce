"""The tiny random digit UNet the UI tests run on (they must not depend on the shipped weights)."""

import torch

from explorer.model import UNet, UNetConfig


def tiny_model() -> UNet:
    torch.manual_seed(0)
    model = UNet(UNetConfig(patch=2, channels=(16, 32), blocks=(1, 1))).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.05)  # the head starts at zero; give ε̂ some signal
    return model
