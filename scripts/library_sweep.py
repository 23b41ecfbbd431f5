"""Sweep the analyses over conv models of timm, MONAI, diffusers,
segmentation_models_pytorch and torchaudio, and compare them with the real model.

Not part of the test suite (none of these libraries is a dependency): a sweep for
finding what the analyses get wrong on published architectures. A library that is
not installed is skipped with a message; nothing is downloaded (random init,
``pretrained=False`` / ``encoder_weights=None``).

For each model of a curated list (small inputs), it runs ``trace``, ``report``,
``receptive_field``, ``empirical_receptive_field`` and ``checkerboard``, and checks
them against the model itself:

* the trace's output shapes equal those of a real CPU forward;
* the analytic field contains the real gradient support of the first output's
  centre position (float64, random weights and input; statistics included);
* the measured field's size and holes equal the analytic ones at the measured input.

Each step's outcome is ``ok``, ``disagree`` (the analysis contradicts the real
model), ``refused`` (the plugin declined with a reason: ``MeasurementRefused``,
``ModelStateError``), ``error`` (any other exception), ``timeout`` or ``n/a``. A
model whose own forward fails on CPU is listed as ``skipped`` (a catalogue
problem, not a finding). Prints one line per model, then totals::

    python scripts/library_sweep.py                      # every installed library
    python scripts/library_sweep.py --library timm monai --model resnet unet
    python scripts/library_sweep.py --timeout 60 --json sweep.json
    python scripts/library_sweep.py --list               # the catalogue only

``--timeout`` bounds each model (default 120 s) with ``SIGALRM``: a long C-level
op finishes before the alarm is seen, so keep inputs small (they are).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import inspect
import json
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import pytest_convcheck as cc

LIBRARIES = ("timm", "monai", "diffusers", "segmentation_models_pytorch", "torchaudio")
STEPS = ("forward", "trace", "report", "field", "measured", "checkerboard", "contains")


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Entry:
    library: str
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]


class Adapter(nn.Module):
    """``fn(self.inner, x)``: a model whose forward takes more than the image (a
    timestep, a length, a context) or returns an output object."""

    def __init__(self, inner: nn.Module, fn: Callable[[nn.Module, torch.Tensor], Any]) -> None:
        super().__init__()
        self.inner = inner
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(self.inner, x)


def _timm() -> list[Entry]:
    import timm

    known = set(timm.list_models())
    names = {
        # (name, input side)
        "resnet18": 96,
        "resnet50d": 96,
        "resnext26ts": 96,
        "seresnet18": 96,
        "ecaresnet26t": 96,
        "skresnet18": 96,
        "resnest14d": 96,
        "res2net50_14w_8s": 96,
        "tresnet_m": 128,
        "gcresnet33ts": 96,
        "convnext_atto": 96,
        "convnextv2_atto": 96,
        "efficientnet_b0": 96,
        "efficientnet_lite0": 96,
        "tinynet_e": 96,
        "mobilenetv2_050": 96,
        "mobilenetv3_small_050": 96,
        "lcnet_050": 96,
        "mixnet_s": 96,
        "ghostnet_050": 96,
        "rexnet_100": 96,
        "regnetx_002": 96,
        "regnety_002": 96,
        "dla34": 96,
        "densenet121": 96,
        "vgg11": 64,
        "dpn68": 96,
        "cspresnet50": 96,
        "cspdarknet53": 96,
        "hrnet_w18_small": 96,
        "selecsls42b": 96,
        "repvgg_a2": 96,
        "gernet_s": 96,
        "nf_resnet26": 96,
        "inception_v3": 160,
        "xception41": 96,
        "ese_vovnet19b_dw": 96,
        "fbnetc_100": 96,
    }
    entries = []
    for name, side in names.items():
        if name not in known:
            continue

        def build(name: str = name) -> nn.Module:
            return timm.create_model(name, pretrained=False, num_classes=10)

        entries.append(Entry("timm", name, build, (2, 3, side, side)))
    # a features_only variant of a few: spatial outputs (several, finest first)
    for name in ("resnet18", "efficientnet_b0", "convnext_atto"):
        if name in known:

            def features(name: str = name) -> nn.Module:
                return timm.create_model(name, pretrained=False, features_only=True)

            entries.append(Entry("timm", f"{name}.features", features, (2, 3, 96, 96)))
    return entries


def _monai() -> list[Entry]:
    from monai.networks import nets

    def unet(dims: int, units: int, norm: str = "INSTANCE") -> Callable[[], nn.Module]:
        return lambda: nets.UNet(
            spatial_dims=dims,
            in_channels=1,
            out_channels=2,
            channels=(4, 8, 16),
            strides=(2, 2),
            num_res_units=units,
            norm=norm,
        )

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("UNet-2d", unet(2, 0), (2, 1, 32, 32)),
        ("UNet-2d-res2", unet(2, 2), (2, 1, 32, 32)),
        ("UNet-3d-res2", unet(3, 2), (2, 1, 16, 16, 16)),
        ("UNet-3d-batch", unet(3, 1, "BATCH"), (2, 1, 16, 16, 16)),
        (
            "BasicUNet-2d",
            lambda: nets.BasicUNet(
                spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 16, 32, 4)
            ),
            (2, 1, 32, 32),
        ),
        (
            "BasicUNet-3d",
            lambda: nets.BasicUNet(
                spatial_dims=3, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4)
            ),
            (2, 1, 32, 32, 32),  # four downsamplings: 16³ reaches 1³ (InstanceNorm refuses)
        ),
        (
            "BasicUNetPlusPlus-2d",
            lambda: nets.BasicUNetPlusPlus(
                spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 16, 32, 4)
            ),
            (2, 1, 32, 32),
        ),
        (
            "AttentionUnet-2d",
            lambda: nets.AttentionUnet(
                spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2)
            ),
            (2, 1, 32, 32),
        ),
        (
            "SegResNet-3d",
            lambda: nets.SegResNet(spatial_dims=3, init_filters=8, in_channels=1, out_channels=2),
            (2, 1, 16, 16, 16),
        ),
        (
            "SegResNet-2d",
            lambda: nets.SegResNet(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2),
            (2, 1, 32, 32),
        ),
        (
            "DynUNet-2d",
            lambda: nets.DynUNet(
                spatial_dims=2,
                in_channels=1,
                out_channels=2,
                kernel_size=[3, 3, 3],
                strides=[1, 2, 2],
                upsample_kernel_size=[2, 2],
                filters=[4, 8, 16],
            ),
            (2, 1, 32, 32),
        ),
        (
            "DynUNet-3d-deep-supervision",
            lambda: nets.DynUNet(
                spatial_dims=3,
                in_channels=1,
                out_channels=2,
                kernel_size=[3, 3, 3],
                strides=[1, 2, 2],
                upsample_kernel_size=[2, 2],
                filters=[4, 8, 16],
                deep_supervision=True,
                deep_supr_num=1,
            ).eval(),
            (2, 1, 16, 16, 16),
        ),
        (
            "VNet-3d",
            lambda: nets.VNet(spatial_dims=3, in_channels=1, out_channels=2),
            (2, 1, 16, 16, 16),
        ),
        (
            "HighResNet-3d",
            lambda: nets.HighResNet(spatial_dims=3, in_channels=1, out_channels=2),
            (2, 1, 16, 16, 16),
        ),
        (
            "DenseNet121-2d",
            lambda: nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=2),
            (2, 1, 64, 64),
        ),
        (
            "SEResNet50-2d",
            lambda: nets.SEResNet50(spatial_dims=2, in_channels=1, num_classes=2),
            (2, 1, 64, 64),
        ),
        (
            "resnet18-3d",
            lambda: nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2),
            (2, 1, 16, 16, 16),
        ),
        (
            "EfficientNetBN-b0-2d",
            lambda: nets.EfficientNetBN(
                "efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=1, num_classes=2
            ),
            (2, 1, 64, 64),
        ),
        (
            "FlexibleUNet-effb0",
            lambda: nets.FlexibleUNet(
                in_channels=1,
                out_channels=2,
                backbone="efficientnet-b0",
                pretrained=False,
                spatial_dims=2,
            ),
            (2, 1, 64, 64),
        ),
        (
            "AutoEncoder-2d",
            lambda: nets.AutoEncoder(
                spatial_dims=2,
                in_channels=1,
                out_channels=1,
                channels=(4, 8, 16),
                strides=(2, 2, 2),
            ),
            (2, 1, 32, 32),
        ),
        (
            "UNETR-3d",
            lambda: nets.UNETR(
                in_channels=1,
                out_channels=2,
                img_size=(32, 32, 32),
                feature_size=8,
                hidden_size=96,
                mlp_dim=192,
                num_heads=4,
            ),
            (2, 1, 32, 32, 32),
        ),
        (
            "SwinUNETR-2d",
            lambda: (
                nets.SwinUNETR(
                    img_size=(64, 64),
                    in_channels=1,
                    out_channels=2,
                    feature_size=12,
                    spatial_dims=2,
                )
                if "img_size" in inspect.signature(nets.SwinUNETR).parameters
                else nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2)
            ),
            (2, 1, 64, 64),
        ),
    ]
    return [Entry("monai", name, build, shape) for name, build, shape in specs]


def _diffusers() -> list[Entry]:
    import diffusers
    from diffusers.models.resnet import ResnetBlock2D

    def vae() -> nn.Module:
        return diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(8, 16),
            latent_channels=4,
            norm_num_groups=4,
            layers_per_block=1,
        )

    def unet2d(attention: bool) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            net = diffusers.UNet2DModel(
                sample_size=32,
                in_channels=3,
                out_channels=3,
                block_out_channels=(8, 16),
                norm_num_groups=4,
                layers_per_block=1,
                down_block_types=("DownBlock2D", "AttnDownBlock2D" if attention else "DownBlock2D"),
                up_block_types=("AttnUpBlock2D" if attention else "UpBlock2D", "UpBlock2D"),
                attention_head_dim=4,
            )
            return Adapter(net, lambda m, x: m(x, 10).sample)

        return build

    def unet_condition() -> nn.Module:
        net = diffusers.UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=8,
            attention_head_dim=4,
        )
        return Adapter(
            net,
            lambda m, x: m(x, 10, encoder_hidden_states=x.new_ones(x.shape[0], 3, 8)).sample,
        )

    def resnet_block() -> nn.Module:
        block = ResnetBlock2D(in_channels=8, out_channels=8, temb_channels=None, groups=4)
        return Adapter(block, lambda m, x: m(x, None))

    def vq() -> nn.Module:
        return diffusers.VQModel(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(8, 16),
            latent_channels=4,
            norm_num_groups=4,
            layers_per_block=1,
            num_vq_embeddings=16,
            vq_embed_dim=4,
        )

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("AutoencoderKL", lambda: Adapter(vae(), lambda m, x: m(x).sample), (2, 3, 32, 32)),
        ("AutoencoderKL.encoder", lambda: vae().encoder, (2, 3, 32, 32)),
        ("AutoencoderKL.decoder", lambda: vae().decoder, (2, 4, 16, 16)),
        ("UNet2DModel", unet2d(False), (2, 3, 32, 32)),
        ("UNet2DModel-attn", unet2d(True), (2, 3, 32, 32)),
        ("UNet2DConditionModel", unet_condition, (2, 4, 16, 16)),
        ("ResnetBlock2D", resnet_block, (2, 8, 16, 16)),
        ("VQModel", lambda: Adapter(vq(), lambda m, x: m(x).sample), (2, 3, 32, 32)),
        (
            "AutoencoderTiny",
            lambda: Adapter(diffusers.AutoencoderTiny(), lambda m, x: m(x).sample),
            (2, 3, 32, 32),
        ),
        # the full model rounds its latents to bytes (no gradient through them): its halves
        ("AutoencoderTiny.encoder", lambda: diffusers.AutoencoderTiny().encoder, (2, 3, 32, 32)),
        ("AutoencoderTiny.decoder", lambda: diffusers.AutoencoderTiny().decoder, (2, 4, 4, 4)),
    ]
    return [Entry("diffusers", name, build, shape) for name, build, shape in specs]


def _smp() -> list[Entry]:
    import segmentation_models_pytorch as smp

    archs = (
        "Unet",
        "UnetPlusPlus",
        "FPN",
        "PSPNet",
        "DeepLabV3",
        "DeepLabV3Plus",
        "Linknet",
        "PAN",
        "MAnet",
        "UPerNet",
        "Segformer",
    )
    encoders = ("resnet18", "mobilenet_v2", "efficientnet-b0")
    entries = []
    for arch in archs:
        if not hasattr(smp, arch):
            continue
        for encoder in encoders if arch in ("Unet", "FPN", "DeepLabV3Plus") else encoders[:1]:

            def build(arch: str = arch, encoder: str = encoder) -> nn.Module:
                return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=2)

            side = 128 if arch == "PAN" else 64  # PAN pools its 1/32 map 7×7: 64 is too small
            entries.append(Entry("smp", f"{arch}-{encoder}", build, (2, 3, side, side)))
    return entries


def _torchaudio() -> list[Entry]:
    from torchaudio import models

    def tasnet(stacks: int) -> Callable[[], nn.Module]:
        return lambda: models.ConvTasNet(
            num_sources=2,
            enc_kernel_size=16,
            enc_num_feats=32,
            msk_kernel_size=3,
            msk_num_feats=16,
            msk_num_hidden_feats=32,
            msk_num_layers=4,
            msk_num_stacks=stacks,
            msk_activate="sigmoid",
        )

    def wav2vec2_features(mode: str) -> nn.Module:
        model = models.wav2vec2_model(
            extractor_mode=mode,
            extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2), (16, 3, 2)],
            extractor_conv_bias=False,
            encoder_embed_dim=16,
            encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=8,
            encoder_pos_conv_groups=4,
            encoder_num_layers=1,
            encoder_num_heads=2,
            encoder_attention_dropout=0.0,
            encoder_ff_interm_features=16,
            encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0,
            encoder_layer_norm_first=False,
            encoder_layer_drop=0.0,
            aux_num_out=None,
        )
        # (N, 1, T) → (N, T) → features (N, frames, C) → (N, C, frames)
        return Adapter(
            model.feature_extractor, lambda m, x: m(x.squeeze(1), None)[0].transpose(1, 2)
        )

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("ConvTasNet-1stack", tasnet(1), (2, 1, 800)),
        ("ConvTasNet-2stacks", tasnet(2), (2, 1, 800)),
        (
            "Wav2Letter-waveform",
            lambda: models.Wav2Letter(num_classes=5, input_type="waveform", num_features=1),
            (2, 1, 4000),
        ),
        (
            "Wav2Letter-mfcc",
            lambda: models.Wav2Letter(num_classes=5, input_type="mfcc", num_features=13),
            (2, 13, 200),
        ),
        ("wav2vec2.features-group_norm", lambda: wav2vec2_features("group_norm"), (2, 1, 800)),
        ("wav2vec2.features-layer_norm", lambda: wav2vec2_features("layer_norm"), (2, 1, 800)),
        (
            "HDemucs",
            lambda: Adapter(
                models.HDemucs(sources=["a", "b"], audio_channels=2, channels=8, depth=4, nfft=256),
                lambda m, x: m(x).flatten(1, 2),  # (N, sources, C, T) → (N, sources·C, T)
            ),
            (2, 2, 2048),
        ),
    ]
    return [Entry("torchaudio", name, build, shape) for name, build, shape in specs]


CATALOGUES: dict[str, Callable[[], list[Entry]]] = {
    "timm": _timm,
    "monai": _monai,
    "diffusers": _diffusers,
    "segmentation_models_pytorch": _smp,
    "torchaudio": _torchaudio,
}


# --------------------------------------------------------------------------- running one model


class StepTimeout(BaseException):
    """A model over its time budget: a ``BaseException`` (as ``KeyboardInterrupt``), so
    that no ``except Exception`` in the model or in the analyses swallows it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`StepTimeout` after ``seconds`` (SIGALRM; a no-op where there is none)."""
    if seconds <= 0:
        raise StepTimeout("no time left for this model")
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise StepTimeout(f"over the model's time budget ({seconds:.0f} s left at the start)")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def tensors(value: Any) -> list[torch.Tensor]:
    """The tensors of a model's output (nested tuples, lists, dict values), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors(item)]
    if hasattr(value, "to_tuple"):  # output dataclasses (diffusers, transformers)
        return tensors(value.to_tuple())
    return []


def gradient_support(
    model: nn.Module, x: torch.Tensor, position: tuple[int, ...]
) -> tuple[tuple[int, ...], ...]:
    """Per spatial axis, the input positions with a non-zero gradient of the first
    output at ``position`` (batch and channels summed with random positive weights)."""
    x = x.detach().clone().requires_grad_(True)
    out = tensors(model(x))[0]
    target = out[(slice(None), slice(None), *position)]
    weights = torch.rand(
        target.shape, generator=torch.Generator().manual_seed(1), dtype=target.dtype
    )
    (grad,) = torch.autograd.grad((target * (weights + 0.5)).sum(), x, allow_unused=True)
    if grad is None:
        return tuple(() for _ in position)
    mask = grad.ne(0).any(dim=0).any(dim=0)
    result = []
    for axis in range(mask.dim()):
        others = tuple(a for a in range(mask.dim()) if a != axis)
        line = mask.any(dim=others) if others else mask
        result.append(tuple(int(i) for i in torch.nonzero(line).flatten()))
    return tuple(result)


def _takes(function: Callable[..., Any], keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _refusal_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for name in ("MeasurementRefused", "ModelStateError"):
        with contextlib.suppress(AttributeError, ImportError):
            found.append(getattr(cc, name))
    return tuple(found)


def _line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


@dataclass
class Result:
    library: str
    model: str
    input_shape: tuple[int, ...]
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)  # step → (status, detail)
    seconds: float = 0.0
    skipped: str = ""

    def status(self, step: str) -> str:
        return self.steps.get(step, ("n/a", ""))[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "model": self.model,
            "input_shape": list(self.input_shape),
            "seconds": round(self.seconds, 2),
            "skipped": self.skipped or None,
            "steps": {k: {"status": s, "detail": d} for k, (s, d) in self.steps.items()},
        }


def run_entry(entry: Entry, budget: float) -> Result:
    result = Result(entry.library, entry.name, entry.input_shape)
    start = time.perf_counter()
    refusals = _refusal_types()

    def left() -> float:
        return budget - (time.perf_counter() - start)

    def step(name: str, action: Callable[[], tuple[str, str]]) -> None:
        try:
            with deadline(left()):
                result.steps[name] = action()
        except StepTimeout as error:
            result.steps[name] = ("timeout", str(error))
        except refusals as error:
            result.steps[name] = ("refused", _line(error))
        except Exception as error:
            where = traceback.extract_tb(error.__traceback__)[-1]
            result.steps[name] = ("error", f"{_line(error)} [{where.name}:{where.lineno}]")

    # build and run the real model: a model that fails here is a catalogue problem
    try:
        with deadline(left()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = entry.build().eval()
            x = torch.randn(entry.input_shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                real = [tuple(t.shape) for t in tensors(model(x))]
        if not real:
            raise ValueError("the forward returned no tensor")
    except (Exception, StepTimeout) as error:
        result.skipped = f"build/forward: {_line(error)}"
        result.seconds = time.perf_counter() - start
        return result
    result.steps["forward"] = ("ok", "×".join(map(str, real[0])))
    shape = entry.input_shape
    stats = {"include_statistics": True} if _takes(cc.receptive_field, "include_statistics") else {}
    fields: dict[str, Any] = {}

    def do_trace() -> tuple[str, str]:
        traced = cc.trace(model, shape)
        outputs = [tuple(s) for _, s in traced.outputs]
        if not outputs or outputs[0] != real[0]:
            return "disagree", f"trace {outputs[:1]} vs CPU {real[0]}"
        if outputs != real:
            return "disagree", f"trace outputs {outputs} vs CPU {real}"
        return "ok", f"{len(traced.layers)} rows" + (
            f", on CPU: {traced.fallback}" if traced.fallback else ""
        )

    def do_report() -> tuple[str, str]:
        json.dumps(cc.report(model, shape).to_dict())
        return "ok", ""

    def do_field() -> tuple[str, str]:
        fields["analytic"] = found = cc.receptive_field(model, shape, **stats)
        detail = f"{format_shape(found.size)} stride {format_shape(found.stride)}"
        if found.holes:
            detail += " holes"
        if getattr(found, "statistics", ()):
            detail += f" stats:{len(found.statistics)}"
        return "ok", detail

    def do_measured() -> tuple[str, str]:
        measured_stats = stats if _takes(cc.empirical_receptive_field, "include_statistics") else {}
        measured = cc.empirical_receptive_field(model, shape, **measured_stats)
        if any(int(s) < 1 for s in measured.size):
            return "disagree", f"measured size {measured.size} has an empty axis"
        analytic = cc.receptive_field(model, tuple(measured.input_shape), **stats)
        if getattr(measured, "clipped", False):
            # measured on an input the field does not fit (memory budget): the measured
            # positions must lie inside the analytic field, not equal it
            contained, why = _inside(measured, analytic)
            if contained:
                return "ok", f"{format_shape(measured.size)} (clipped by the input)"
            return "disagree", f"clipped measurement {format_shape(measured.size)}: {why}"
        if tuple(measured.size) != tuple(analytic.size):
            return "disagree", (
                f"measured {format_shape(measured.size)} ≠ analytic {format_shape(analytic.size)} "
                f"at input {format_shape(measured.input_shape)}; {_inside(measured, analytic)[1]}"
            )
        if tuple(measured.hole_positions) != tuple(analytic.hole_positions):
            return "disagree", (
                f"holes: measured {measured.hole_positions} ≠ analytic "
                f"{analytic.hole_positions} at input {format_shape(measured.input_shape)}"
            )
        return "ok", format_shape(measured.size) + (" holes" if measured.holes else "")

    def do_checkerboard() -> tuple[str, str]:
        board = cc.checkerboard(model, shape)
        return "ok", "uneven" if board.structural else "even"

    def do_contains() -> tuple[str, str]:
        analytic = fields.get("analytic")
        if analytic is None:
            return "n/a", "no analytic field"
        out = real[0]
        if len(out) - 2 != len(shape) - 2:
            return "n/a", f"first output {format_shape(out)} has no matching spatial axes"
        centre = tuple(s // 2 for s in out[2:])
        work = copy.deepcopy(model).double().eval()
        x64 = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        with default_dtype(torch.float64):  # tensors the forward creates (AutoencoderTiny: /255.)
            support = gradient_support(work, x64, centre)
        if not all(support):
            return "n/a", f"no gradient reaches the input from {centre}"
        claimed = analytic.positions(centre)
        for axis, (got, allowed) in enumerate(zip(support, claimed, strict=True)):
            outside = sorted(set(got) - set(allowed))
            if outside:
                return "disagree", (
                    f"centre {centre}, axis {axis}: real support reaches {_short(outside)} "
                    f"outside the analytic field"
                )
        return "ok", f"centre {centre}"

    step("trace", do_trace)
    step("report", do_report)
    step("field", do_field)
    step("measured", do_measured)
    step("checkerboard", do_checkerboard)
    step("contains", do_contains)
    result.seconds = time.perf_counter() - start
    return result


def _inside(measured: Any, analytic: Any) -> tuple[bool, str]:
    """Whether every measured position lies in the analytic field (the analytic one
    conservative) or not (the analytic one misses inputs), at the measured input."""
    spatial = len(analytic.axes)
    for position, found in getattr(measured, "measured", {}).items():
        claimed = analytic.positions(tuple(position) or (0,) * spatial)
        for axis, (got, allowed) in enumerate(zip(found, claimed, strict=True)):
            outside = sorted(set(got) - set(allowed))
            if outside:
                return False, (
                    f"at output {tuple(position)}, axis {axis}: measured inputs "
                    f"{_short(outside)} lie outside the analytic field"
                )
    return True, "the measured positions lie inside the analytic field (analytic conservative)"


def format_shape(values: Any) -> str:
    return "×".join(str(v) for v in values)


def _short(values: list[int]) -> str:
    return str(values) if len(values) <= 6 else f"[{values[0]}…{values[-1]}] ({len(values)})"


# --------------------------------------------------------------------------- table and totals


_MARK = {
    "ok": "ok",
    "disagree": "DIS",
    "refused": "ref",
    "error": "ERR",
    "timeout": "T/O",
    "n/a": "-",
}


def print_row(result: Result) -> None:
    name = f"{result.library}:{result.model}"
    if result.skipped:
        print(f"{name:48} skipped ({result.skipped})", flush=True)
        return
    marks = " ".join(f"{_MARK[result.status(s)]:>4}" for s in STEPS[1:])
    status, detail = result.steps.get("field", ("n/a", ""))
    field = detail if status == "ok" else ""
    print(f"{name:48} {marks}  {result.seconds:6.1f}s  {field}", flush=True)
    for step in STEPS[1:]:
        status, detail = result.steps.get(step, ("n/a", ""))
        if status in ("disagree", "refused", "error", "timeout"):
            print(f"    {step}: {status}: {detail}", flush=True)


def totals(results: list[Result]) -> dict[str, Any]:
    ran = [r for r in results if not r.skipped]
    counts: dict[str, int] = {}
    listed: dict[str, list[str]] = {"disagree": [], "refused": [], "error": [], "timeout": []}
    for r in ran:
        for step, (status, detail) in r.steps.items():
            if step == "forward":
                continue
            counts[status] = counts.get(status, 0) + 1
            if status in listed:
                listed[status].append(f"{r.library}:{r.model} {step}: {detail}")
    return {
        "models": len(results),
        "models_run": len(ran),
        "models_skipped": len(results) - len(ran),
        "analyses_ok": counts.get("ok", 0),
        "disagreements": len(listed["disagree"]),
        "refusals": len(listed["refused"]),
        "errors": len(listed["error"]),
        "timeouts": len(listed["timeout"]),
        "not_applicable": counts.get("n/a", 0),
        "details": listed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", nargs="*", choices=LIBRARIES, help="default: every installed")
    parser.add_argument("--model", nargs="*", default=[], help="substrings of model names to run")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON ('-': stdout)")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    args = parser.parse_args(argv)
    if args.json == "-":  # the JSON alone on stdout; the table goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            payload = sweep(args)
        print(json.dumps(payload, indent=1))
        return 0
    payload = sweep(args)
    if args.json and payload is not None:
        with open(args.json, "w") as handle:
            handle.write(json.dumps(payload, indent=1) + "\n")
    return 0


def sweep(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run the catalogue that ``args`` selects, print the table and the totals; the
    JSON payload (``None`` with ``--list``)."""
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    results: list[Result] = []
    missing: list[str] = []
    for library in args.library or LIBRARIES:
        if importlib.util.find_spec(library) is None:
            print(f"{library}: not installed, skipped", flush=True)
            missing.append(library)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entries = CATALOGUES[library]()
        except Exception as error:
            print(f"{library}: cannot list its models ({_line(error)}), skipped", flush=True)
            missing.append(library)
            continue
        entries = [e for e in entries if not args.model or any(m in e.name for m in args.model)]
        print(f"{library}: {len(entries)} models", flush=True)
        if args.list:
            for e in entries:
                print(f"  {e.name}  {format_shape(e.input_shape)}")
            continue
        print(f"{'model':48} {' '.join(f'{s[:4]:>4}' for s in STEPS[1:])}  {'time':>7}  field")
        for entry in entries:
            result = run_entry(entry, args.timeout)
            results.append(result)
            print_row(result)
    if args.list:
        return None
    summary = totals(results)
    print(
        f"\nmodels: {summary['models']} ({summary['models_run']} run, "
        f"{summary['models_skipped']} skipped); analyses ok: {summary['analyses_ok']}; "
        f"disagreements: {summary['disagreements']}; refusals: {summary['refusals']}; "
        f"errors: {summary['errors']}; timeouts: {summary['timeouts']}; "
        f"n/a: {summary['not_applicable']}"
    )
    for kind in ("disagree", "refused", "error", "timeout"):
        for line in summary["details"][kind]:
            print(f"  {kind}: {line}")
    if missing:
        print(f"libraries not installed or not listable: {', '.join(missing)}")
    return {
        "torch": torch.__version__,
        "libraries": {
            lib: getattr(importlib.import_module(lib), "__version__", "?")
            for lib in LIBRARIES
            if lib not in missing and importlib.util.find_spec(lib) is not None
        },
        "results": [r.to_dict() for r in results],
        "totals": summary,
    }


if __name__ == "__main__":
    sys.exit(main())
