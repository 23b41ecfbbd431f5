"""How far a float32 CPU run lands from the float64 reference, in noise floors.

For each torchvision model (random weights, eval mode, batch 2): the float32 run's
largest difference per tensor (output, input and parameter gradients) divided by
the larger of the unscaled ``assert_close`` tolerance and the measured noise floor
(``pytest_convcheck.tolerances.noise_floor``), worst tensor shown. Then the same for
a lossy float32 path that rounds every conv and linear input through bfloat16, as
a device with a precision bug would. The parity check's ``FLOOR_FACTOR`` must sit
between the two columns.

    python scripts/parity_noise_floor.py [MODEL ...]

Needs torchvision (0.28 for torch 2.13); not part of the test suite.
"""

from __future__ import annotations

import sys
import warnings

import torch
from torch import nn

from pytest_convcheck import tolerances
from pytest_convcheck.calls import output_tensors
from pytest_convcheck.tracing import materialized_copy

_MODELS = {
    "resnet50": 224,
    "vgg16": 224,
    "mobilenet_v2": 224,
    "googlenet": 224,
    "resnet18": 224,
    "densenet121": 128,
    "convnext_tiny": 128,
    "squeezenet1_1": 224,
}


def _round_inputs_to_bfloat16(model: nn.Module) -> None:
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (args[0].to(torch.bfloat16).to(args[0].dtype), *args[1:])

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.register_forward_pre_hook(hook)


def worst_in_floors(model: nn.Module, shape: tuple[int, ...], *, lossy: bool) -> tuple[str, float]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=generator, dtype=torch.float64)
    reference_model = materialized_copy(model, "cpu", shape).double().eval()
    with torch.no_grad():
        sample = output_tensors(reference_model(x))
    assert sample
    weights = tolerances.draw_output_weights(sample, generator)
    reference = {
        k: v.clone() for k, v in tolerances.run_with_gradients(reference_model, x, weights).items()
    }
    floors = tolerances.noise_floor(reference_model, x, weights, reference, 2.0**-24)
    work = materialized_copy(model, "cpu", shape).float().eval()
    if lossy:
        _round_inputs_to_bfloat16(work)
    got = tolerances.run_with_gradients(work, x.float(), weights)
    rtol, atol = tolerances.DEFAULT_TOLERANCE[torch.float32]
    ratios = {
        name: tolerances.max_difference(got[name].double(), value)
        / max(atol + rtol * float(value.abs().max()), floors[name])
        for name, value in reference.items()
    }
    name = max(ratios, key=lambda k: ratios[k])
    return name, ratios[name]


def main(names: list[str]) -> None:
    import torchvision.models as tvm

    warnings.filterwarnings("ignore")
    print(f"{'model':16s} {'float32 (worst tensor)':48s} bfloat16-rounded path")
    for name in names or list(_MODELS):
        size = _MODELS.get(name, 224)
        torch.manual_seed(0)
        model = tvm.get_model(name, weights=None)
        shape = (2, 3, size, size)
        honest, honest_ratio = worst_in_floors(model, shape, lossy=False)
        _, lossy_ratio = worst_in_floors(model, shape, lossy=True)
        print(f"{name:16s} {honest_ratio:8.3g}× ({honest})".ljust(66) + f"{lossy_ratio:10.3g}×")


if __name__ == "__main__":
    main(sys.argv[1:])
