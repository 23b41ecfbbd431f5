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


# --------------------------------------------------------------------------- sweep2 additions


def _timm_wide() -> list[Entry]:
    import timm

    known = set(timm.list_models())
    entries: list[Entry] = []

    def add(label: str, name: str, shape: tuple[int, ...], **kwargs: Any) -> None:
        if name not in known:
            return

        def build(name: str = name, kwargs: dict[str, Any] = kwargs) -> nn.Module:
            if not kwargs.get("features_only"):
                kwargs = {"num_classes": 10, **kwargs}
            return timm.create_model(name, pretrained=False, **kwargs)

        entries.append(Entry("timm", label, build, shape))

    sq = lambda s: (2, 3, s, s)  # noqa: E731
    # classifiers (the field is the whole input; trace and measured field checked)
    for name, side in {
        "efficientnetv2_rw_t": 96,
        "regnetz_b16": 96,
        "dla46x_c": 96,
        "cspresnext50": 96,
        "vovnet39a": 96,
        "res2next50": 96,
        "selecsls42": 96,
        "inception_v4": 128,
        "mobilevit_xxs": 128,
        "efficientformerv2_s0": 224,
        "levit_128s": 224,
        "ghostnetv2_100": 96,
        "repghostnet_050": 96,
        "fastvit_t8": 96,
        "edgenext_xx_small": 96,
        "convmixer_768_32": 56,
        "resnetaa34d": 96,
        "densenetblur121d": 96,
        "mobileone_s0": 96,
        "repvit_m1": 96,
        "poolformer_s12": 96,
        "hgnetv2_b0": 96,
        "mobilenetv4_conv_small": 96,
        "cs3darknet_focus_s": 96,
        "eca_nfnet_l0": 96,
        "starnet_s050": 96,
        "efficientvit_b0": 96,
        "test_mambaout": 96,
        "tresnet_l": 128,
    }.items():
        add(name, name, sq(side))
    add("test_maxvit", "test_maxvit", sq(64), img_size=64)
    # dense outputs (features_only): the first output's field is checked at its centre
    add("convnext_femto.feat-os", "convnext_femto", sq(96), features_only=True, out_indices=(1, 2))
    add(
        "efficientnetv2_rw_t.feat",
        "efficientnetv2_rw_t",
        sq(96),
        features_only=True,
        out_indices=(2, 3),
    )
    add("regnetz_b16.feat", "regnetz_b16", sq(96), features_only=True)
    add("hrnet_w18_small_v2.feat", "hrnet_w18_small_v2", sq(64), features_only=True)
    add("dla46_c.feat", "dla46_c", sq(96), features_only=True)
    add(
        "xception65.feat-os16",
        "xception65",
        sq(64),
        features_only=True,
        output_stride=16,
        out_indices=(1, 2),
    )
    add("resnetaa50.feat", "resnetaa50", sq(64), features_only=True, out_indices=(1, 2))
    add("res2net50_26w_4s.feat", "res2net50_26w_4s", sq(64), features_only=True, out_indices=(1, 2))
    add(
        "resnet50d.feat-os8",
        "resnet50d",
        sq(64),
        features_only=True,
        output_stride=8,
        out_indices=(3, 4),
    )
    add(
        "regnetx_002.feat-os8",
        "regnetx_002",
        sq(64),
        features_only=True,
        output_stride=8,
        out_indices=(3, 4),
    )
    add(
        "densenet121.feat-memeff",
        "densenet121",
        sq(64),
        features_only=True,
        memory_efficient=True,
        out_indices=(1, 2),
    )
    add("mobilevit_xxs.feat", "mobilevit_xxs", sq(64), features_only=True, out_indices=(2, 3))
    add(
        "edgenext_xx_small.feat",
        "edgenext_xx_small",
        sq(64),
        features_only=True,
        out_indices=(0, 1),
    )
    add("fastvit_t8.feat", "fastvit_t8", sq(64), features_only=True, out_indices=(0, 1))
    add(
        "cs3darknet_focus_s.feat",
        "cs3darknet_focus_s",
        sq(64),
        features_only=True,
        out_indices=(1, 2),
    )
    add("tresnet_m.feat", "tresnet_m", sq(64), features_only=True, out_indices=(1, 2))
    add("repghostnet_050.feat", "repghostnet_050", sq(64), features_only=True, out_indices=(1, 2))
    add("ghostnetv2_100.feat", "ghostnetv2_100", sq(64), features_only=True, out_indices=(1, 2))
    add("inception_v4.feat", "inception_v4", sq(96), features_only=True, out_indices=(1, 2))
    add(
        "resnet18d.feat-nonsquare",
        "resnet18d",
        (2, 3, 64, 96),
        features_only=True,
        out_indices=(1, 2),
    )
    add(
        "convnext_atto_ols.feat-nonsquare",
        "convnext_atto_ols",
        (2, 3, 48, 80),
        features_only=True,
        out_indices=(0, 1),
    )
    add(
        "mobilenetv4_conv_small.feat-nonsquare",
        "mobilenetv4_conv_small",
        (2, 3, 96, 64),
        features_only=True,
        out_indices=(1, 2),
    )
    return entries


def _monai_wide() -> list[Entry]:
    from monai.networks import nets

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        (
            "DenseNet121-3d",
            lambda: nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=2),
            (2, 1, 32, 32, 32),
        ),
        (
            "SegResNetVAE-2d",
            lambda: Adapter(
                nets.SegResNetVAE(
                    input_image_size=(32, 32),
                    spatial_dims=2,
                    init_filters=8,
                    in_channels=1,
                    out_channels=2,
                    vae_nz=16,
                ),
                lambda m, x: m(x)[0],
            ),
            (2, 1, 32, 32),
        ),
        (
            "SegResNetDS-2d",
            lambda: nets.SegResNetDS(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2),
            (2, 1, 32, 32),
        ),
        (
            "AttentionUnet-3d",
            lambda: nets.AttentionUnet(
                spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2)
            ),
            (2, 1, 16, 16, 16),
        ),
        (
            "BasicUNetPlusPlus-2d-deepsup",
            lambda: Adapter(
                nets.BasicUNetPlusPlus(
                    spatial_dims=2,
                    in_channels=1,
                    out_channels=2,
                    features=(4, 4, 8, 16, 32, 4),
                    deep_supervision=True,
                    upsample="pixelshuffle",
                ),
                lambda m, x: m(x)[0],
            ),
            (2, 1, 32, 32),
        ),
        (
            "VNet-2d",
            lambda: nets.VNet(spatial_dims=2, in_channels=1, out_channels=2),
            (2, 1, 32, 32),
        ),
        (
            "HighResNet-2d",
            lambda: nets.HighResNet(spatial_dims=2, in_channels=1, out_channels=2),
            (2, 1, 48, 48),
        ),
        (
            "DynUNet-2d-aniso-res",
            lambda: nets.DynUNet(
                spatial_dims=2,
                in_channels=1,
                out_channels=2,
                kernel_size=[[3, 1], [3, 3], [3, 3]],
                strides=[[1, 1], [2, 1], [2, 2]],
                upsample_kernel_size=[[2, 1], [2, 2]],
                filters=[4, 8, 16],
                res_block=True,
            ),
            (2, 1, 32, 24),
        ),
        (
            "FlexibleUNet-resnet18-3d",
            lambda: nets.FlexibleUNet(
                in_channels=1, out_channels=2, backbone="resnet18", pretrained=False, spatial_dims=3
            ),
            (2, 1, 32, 32, 32),
        ),
        (
            "Regressor-2d",
            lambda: nets.Regressor(
                in_shape=(1, 16, 16), out_shape=(3,), channels=(4, 8), strides=(2, 2)
            ),
            (2, 1, 16, 16),
        ),
        (
            "Discriminator-2d",
            lambda: nets.Discriminator(in_shape=(1, 16, 16), channels=(4, 8), strides=(2, 2)),
            (2, 1, 16, 16),
        ),
        (
            "PatchDiscriminator-2d",
            lambda: Adapter(
                nets.PatchDiscriminator(spatial_dims=2, channels=8, in_channels=1, num_layers_d=3),
                lambda m, x: m(x)[-1],
            ),
            (2, 1, 64, 64),
        ),
        (
            "MedNeXtS-3d",
            lambda: nets.MedNeXt(
                spatial_dims=3,
                init_filters=4,
                in_channels=1,
                out_channels=2,
                kernel_size=3,
                blocks_down=(1, 1, 1, 1),
                blocks_bottleneck=1,
                blocks_up=(1, 1, 1, 1),
            ),
            (2, 1, 32, 32, 32),
        ),
        (
            "MedNeXt-2d-k5-grn",
            lambda: nets.MedNeXt(
                spatial_dims=2,
                init_filters=4,
                in_channels=1,
                out_channels=2,
                kernel_size=5,
                blocks_down=(1, 1, 1, 1),
                blocks_bottleneck=1,
                blocks_up=(1, 1, 1, 1),
                use_residual_connection=True,
                global_resp_norm=True,
            ),
            (2, 1, 32, 32),
        ),
        (
            "LocalNet-2d",
            lambda: nets.LocalNet(
                spatial_dims=2,
                in_channels=1,
                num_channel_initial=4,
                extract_levels=(0, 1, 2),
                out_channels=2,
            ),
            (2, 1, 32, 32),
        ),
        (
            "Restormer-2d",
            lambda: nets.restormer.Restormer(
                spatial_dims=2,
                in_channels=1,
                out_channels=1,
                dim=8,
                num_blocks=(1, 1, 1, 1),
                heads=(1, 1, 1, 1),
                num_refinement_blocks=1,
            ),
            (2, 1, 32, 32),
        ),
        (
            "DiffusionModelUNet-2d",
            lambda: Adapter(
                nets.DiffusionModelUNet(
                    spatial_dims=2,
                    in_channels=1,
                    out_channels=1,
                    num_res_blocks=1,
                    channels=(8, 16),
                    attention_levels=(False, False),
                    norm_num_groups=4,
                    resblock_updown=True,
                ),
                lambda m, x: m(x, torch.full((x.shape[0],), 10, dtype=torch.long)),
            ),
            (2, 1, 32, 32),
        ),
        (
            "AutoencoderKL-monai-2d",
            lambda: Adapter(
                nets.AutoencoderKL(
                    spatial_dims=2,
                    in_channels=1,
                    out_channels=1,
                    channels=(8, 16),
                    latent_channels=2,
                    num_res_blocks=1,
                    norm_num_groups=4,
                    attention_levels=(False, False),
                    with_encoder_nonlocal_attn=False,
                    with_decoder_nonlocal_attn=False,
                ),
                lambda m, x: m.reconstruct(x),
            ),
            (2, 1, 32, 32),
        ),
        (
            "VQVAE-2d",
            lambda: Adapter(
                nets.VQVAE(
                    spatial_dims=2,
                    in_channels=1,
                    out_channels=1,
                    channels=(8, 16),
                    num_res_channels=(8, 16),
                    num_res_layers=1,
                    downsample_parameters=((2, 4, 1, 1), (2, 4, 1, 1)),
                    upsample_parameters=((2, 4, 1, 1, 0), (2, 4, 1, 1, 0)),
                    num_embeddings=16,
                    embedding_dim=4,
                ),
                lambda m, x: m(x)[0],
            ),
            (2, 1, 32, 32),
        ),
    ]
    return [Entry("monai", name, build, shape) for name, build, shape in specs]


def _diffusers_wide() -> list[Entry]:
    import diffusers
    from diffusers.models import downsampling, upsampling

    def unet1d() -> nn.Module:
        net = diffusers.UNet1DModel(
            sample_size=64,
            in_channels=2,
            out_channels=2,
            extra_in_channels=16,
            time_embedding_dim=16,
            block_out_channels=(32, 32, 64),
            norm_num_groups=8,
            down_block_types=("DownBlock1DNoSkip", "DownBlock1D", "AttnDownBlock1D"),
            up_block_types=("AttnUpBlock1D", "UpBlock1D", "UpBlock1DNoSkip"),
            use_timestep_embedding=False,
            time_embedding_type="fourier",
            flip_sin_to_cos=True,
        )
        return Adapter(net, lambda m, x: m(x, 10).sample)

    def unet1d_conv() -> nn.Module:
        # the RL (value/trajectory) variant: conv blocks only
        net = diffusers.UNet1DModel(
            sample_size=32,
            in_channels=4,
            out_channels=4,
            extra_in_channels=0,
            down_block_types=("DownResnetBlock1D", "DownResnetBlock1D"),
            up_block_types=("UpResnetBlock1D",),
            mid_block_type="MidResTemporalBlock1D",
            out_block_type="OutConv1DBlock",
            block_out_channels=(8, 16),
            norm_num_groups=4,
            act_fn="mish",
            layers_per_block=1,
            use_timestep_embedding=True,
            time_embedding_type="positional",
            flip_sin_to_cos=False,
            freq_shift=1,
            downsample_each_block=False,
        )
        return Adapter(net, lambda m, x: m(x, 10).sample)

    def unet2d_variant(
        down: tuple[str, ...], up: tuple[str, ...], **kw: Any
    ) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            kw.setdefault("block_out_channels", (8, 16))
            kw.setdefault("norm_num_groups", 4)
            net = diffusers.UNet2DModel(
                sample_size=32,
                in_channels=3,
                out_channels=3,
                layers_per_block=1,
                down_block_types=down,
                up_block_types=up,
                attention_head_dim=4,
                **kw,
            )
            return Adapter(net, lambda m, x: m(x, 10).sample)

        return build

    def vae_conv() -> nn.Module:
        return diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(8, 8, 16),
            latent_channels=4,
            norm_num_groups=4,
            layers_per_block=1,
            mid_block_add_attention=False,
        )

    def vq_spatial() -> nn.Module:
        return diffusers.VQModel(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
            up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(32, 32),
            latent_channels=4,
            norm_num_groups=8,
            layers_per_block=1,
            num_vq_embeddings=16,
            vq_embed_dim=4,
            norm_type="spatial",
        )

    def asym() -> nn.Module:
        net = diffusers.AsymmetricAutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            down_block_out_channels=(8, 16),
            up_block_types=("UpDecoderBlock2D",) * 2,
            up_block_out_channels=(8, 16),
            layers_per_down_block=1,
            layers_per_up_block=1,
            latent_channels=4,
            norm_num_groups=4,
        )
        return Adapter(net, lambda m, x: m(x).sample)

    def oobleck() -> nn.Module:
        net = diffusers.AutoencoderOobleck(
            encoder_hidden_size=8,
            downsampling_ratios=[2, 4],
            channel_multiples=[1, 2],
            decoder_channels=8,
            decoder_input_channels=4,
            audio_channels=2,
        )
        return net

    def controlnet() -> nn.Module:
        net = diffusers.ControlNetModel(
            in_channels=4,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            cross_attention_dim=8,
            attention_head_dim=4,
            conditioning_embedding_out_channels=(4, 8),
        )
        return Adapter(
            net,
            lambda m, x: m(
                x,
                10,
                encoder_hidden_states=x.new_ones(x.shape[0], 3, 8),
                controlnet_cond=x.new_zeros(x.shape[0], 3, x.shape[2] * 2, x.shape[3] * 2),
                return_dict=False,
            )[0][-1],
        )

    def t2i(kind: str) -> Callable[[], nn.Module]:
        return lambda: Adapter(
            diffusers.T2IAdapter(
                in_channels=3,
                channels=[8, 16],
                num_res_blocks=1,
                downscale_factor=4,
                adapter_type=kind,
            ),
            lambda m, x: m(x)[0],
        )

    def block(
        make: Callable[[], nn.Module], fn: Callable[[nn.Module, torch.Tensor], Any] | None = None
    ):
        return lambda: Adapter(make(), fn or (lambda m, x: m(x)))

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("UNet1DModel", unet1d, (2, 2, 64)),
        ("UNet1DModel-resnet", unet1d_conv, (2, 4, 32)),
        (
            "UNet2DModel-skip-fir",
            unet2d_variant(
                ("SkipDownBlock2D", "AttnSkipDownBlock2D"),
                ("AttnSkipUpBlock2D", "SkipUpBlock2D"),
                block_out_channels=(32, 64),
                norm_num_groups=8,
            ),
            (2, 3, 32, 32),
        ),
        (
            "UNet2DModel-resnet-updown",
            unet2d_variant(
                ("DownBlock2D", "DownBlock2D"),
                ("UpBlock2D", "UpBlock2D"),
                downsample_type="resnet",
                upsample_type="resnet",
                resnet_time_scale_shift="scale_shift",
                add_attention=False,
            ),
            (2, 3, 32, 32),
        ),
        (
            "UNet2DModel-nonsquare",
            unet2d_variant(
                ("DownBlock2D", "DownBlock2D"), ("UpBlock2D", "UpBlock2D"), add_attention=False
            ),
            (2, 3, 16, 40),
        ),
        (
            "AutoencoderKL-noattn",
            lambda: Adapter(vae_conv(), lambda m, x: m(x).sample),
            (2, 3, 32, 32),
        ),
        ("AutoencoderKL-noattn.encoder", lambda: vae_conv().encoder, (2, 3, 32, 32)),
        ("AutoencoderKL-noattn.decoder", lambda: vae_conv().decoder, (2, 4, 8, 8)),
        (
            "VQModel-spatialnorm",
            lambda: Adapter(vq_spatial(), lambda m, x: m(x).sample),
            (2, 3, 32, 32),
        ),
        ("AsymmetricAutoencoderKL", asym, (2, 3, 32, 32)),
        ("AutoencoderOobleck.encoder", lambda: oobleck().encoder, (2, 2, 256)),
        ("AutoencoderOobleck.decoder", lambda: oobleck().decoder, (2, 4, 16)),
        ("ControlNetModel-mid", controlnet, (2, 4, 16, 16)),
        ("T2IAdapter-full", t2i("full_adapter"), (2, 3, 32, 32)),
        ("T2IAdapter-light", t2i("light_adapter"), (2, 3, 32, 32)),
        (
            "FirUpsample2D",
            block(lambda: upsampling.FirUpsample2D(8, 8, use_conv=True)),
            (2, 8, 8, 8),
        ),
        (
            "FirDownsample2D",
            block(lambda: downsampling.FirDownsample2D(8, 8, use_conv=True)),
            (2, 8, 16, 16),
        ),
        ("KUpsample2D", block(lambda: upsampling.KUpsample2D()), (2, 4, 8, 8)),
        ("KDownsample2D", block(lambda: downsampling.KDownsample2D()), (2, 4, 16, 16)),
        (
            "Upsample2D-convT",
            block(lambda: upsampling.Upsample2D(8, use_conv_transpose=True)),
            (2, 8, 8, 8),
        ),
        ("Upsample1D-conv", block(lambda: upsampling.Upsample1D(8, use_conv=True)), (2, 8, 16)),
        (
            "Downsample1D-conv",
            block(lambda: downsampling.Downsample1D(8, use_conv=True)),
            (2, 8, 16),
        ),
    ]
    return [Entry("diffusers", name, build, shape) for name, build, shape in specs]


def _smp_wide() -> list[Entry]:
    import segmentation_models_pytorch as smp

    combos: list[tuple[str, str, dict[str, Any], int]] = [
        ("UnetPlusPlus", "mobilenet_v2", {}, 64),
        ("MAnet", "efficientnet-b0", {}, 64),
        ("Linknet", "mobilenet_v2", {}, 64),
        ("PSPNet", "mobilenet_v2", {}, 64),
        ("PAN", "efficientnet-b0", {}, 128),
        ("DeepLabV3", "efficientnet-b0", {}, 64),
        ("DeepLabV3Plus", "tu-regnetx_002", {}, 64),
        ("DeepLabV3Plus", "resnet18", {"encoder_output_stride": 8}, 64),
        ("Unet", "densenet121", {}, 64),
        ("Unet", "vgg11_bn", {}, 64),
        ("FPN", "dpn68", {}, 64),
        ("Unet", "mit_b0", {}, 64),
        ("Unet", "mobileone_s0", {}, 64),
        ("Unet", "timm-skresnet18", {"decoder_attention_type": "scse"}, 64),
        ("Unet", "tu-convnext_atto", {}, 64),
        ("UnetPlusPlus", "timm-efficientnet-b0", {}, 64),
        (
            "Unet",
            "resnet18",
            {
                "decoder_interpolation": "bilinear",
                "encoder_depth": 4,
                "decoder_channels": (64, 32, 16, 8),
            },
            64,
        ),
        ("FPN", "mobilenet_v2", {"upsampling": 1}, 64),
        ("Unet", "resnet18", {}, (48, 96)),
    ]
    entries = []
    for arch, encoder, kw, side in combos:
        if not hasattr(smp, arch):
            continue

        def build(arch: str = arch, encoder: str = encoder, kw: dict[str, Any] = kw) -> nn.Module:
            return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=2, **kw)

        suffix = "".join(
            f"-{k.split('_')[-1]}={v}" for k, v in kw.items() if k != "decoder_channels"
        )
        hw = side if isinstance(side, tuple) else (side, side)
        if isinstance(side, tuple):
            suffix += "-nonsquare"
        entries.append(Entry("smp", f"{arch}-{encoder}{suffix}.s2", build, (2, 3, *hw)))
    return entries


def _torchaudio_wide() -> list[Entry]:
    from torchaudio import models

    def tasnet_deep() -> nn.Module:
        return models.ConvTasNet(
            num_sources=2,
            enc_kernel_size=20,
            enc_num_feats=16,
            msk_kernel_size=3,
            msk_num_feats=8,
            msk_num_hidden_feats=16,
            msk_num_layers=5,
            msk_num_stacks=2,
            msk_activate="relu",
        )

    def hubert_features() -> nn.Module:
        model = models.hubert_base()
        return Adapter(
            model.feature_extractor, lambda m, x: m(x.squeeze(1), None)[0].transpose(1, 2)
        )

    def wavlm_features() -> nn.Module:
        model = models.wavlm_model(
            extractor_mode="layer_norm",
            extractor_conv_layer_config=[(8, 10, 5), (8, 3, 2), (8, 2, 2)],
            extractor_conv_bias=True,
            encoder_embed_dim=16,
            encoder_projection_dropout=0.0,
            encoder_pos_conv_kernel=8,
            encoder_pos_conv_groups=4,
            encoder_num_layers=1,
            encoder_num_heads=2,
            encoder_num_buckets=8,
            encoder_max_distance=16,
            encoder_attention_dropout=0.0,
            encoder_ff_interm_features=16,
            encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.0,
            encoder_layer_norm_first=True,
            encoder_layer_drop=0.0,
            aux_num_out=None,
        )
        return Adapter(model, lambda m, x: m(x.squeeze(1))[0].transpose(1, 2))

    def conformer() -> nn.Module:
        model = models.Conformer(
            input_dim=16, num_heads=2, ffn_dim=32, num_layers=1, depthwise_conv_kernel_size=7
        )
        return Adapter(
            model,
            lambda m, x: m(
                x.transpose(1, 2), torch.full((x.shape[0],), x.shape[2], dtype=torch.long)
            )[0].transpose(1, 2),
        )

    def conformer_conv() -> nn.Module:
        from torchaudio.models.conformer import _ConvolutionModule

        module = _ConvolutionModule(input_dim=16, num_channels=16, depthwise_kernel_size=7)
        return Adapter(module, lambda m, x: m(x.transpose(1, 2)).transpose(1, 2))

    def postnet() -> nn.Module:
        from torchaudio.models.tacotron2 import _Postnet

        return _Postnet(
            n_mels=8, postnet_embedding_dim=16, postnet_kernel_size=5, postnet_n_convolution=5
        )

    def wavernn_upsample() -> nn.Module:
        from torchaudio.models.wavernn import UpsampleNetwork

        return Adapter(
            UpsampleNetwork(
                upsample_scales=[2, 2],
                n_res_block=1,
                n_freq=8,
                n_hidden=8,
                n_output=8,
                kernel_size=5,
            ),
            lambda m, x: m(x)[0],
        )

    def squim_obj() -> nn.Module:
        model = models.squim_objective_model(
            feat_dim=16,
            win_len=16,
            d_model=16,
            nhead=2,
            hidden_dim=16,
            num_blocks=1,
            rnn_type="LSTM",
            chunk_size=20,
        )
        return Adapter(model, lambda m, x: torch.stack(m(x.squeeze(1)), 1).unsqueeze(2))

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("ConvTasNet-deep-relu", tasnet_deep, (2, 1, 640)),
        ("hubert_base.features", hubert_features, (2, 1, 1600)),
        ("WavLM-tiny", wavlm_features, (2, 1, 800)),
        ("Conformer-tiny", conformer, (2, 16, 40)),
        ("Conformer._ConvolutionModule", conformer_conv, (2, 16, 40)),
        ("Tacotron2._Postnet", postnet, (2, 8, 40)),
        ("WaveRNN.UpsampleNetwork", wavernn_upsample, (2, 8, 20)),
        (
            "Wav2Letter-power_spectrum",
            lambda: models.Wav2Letter(num_classes=5, input_type="power_spectrum", num_features=16),
            (2, 16, 200),
        ),
        (
            "DeepSpeech",
            lambda: Adapter(
                models.DeepSpeech(n_feature=16, n_hidden=16, n_class=5),
                lambda m, x: m(x).transpose(1, 2),
            ),
            (2, 1, 20, 16),
        ),
        ("SquimObjective-tiny", squim_obj, (2, 1, 800)),
    ]
    return [Entry("torchaudio", name, build, shape) for name, build, shape in specs]


def _timm_token_mixers() -> list[Entry]:
    """Token mixers and hybrids, dense through ``forward_intermediates`` (NCHW maps)."""
    import timm

    known = set(timm.list_models())
    entries: list[Entry] = []

    def add(name: str, index: int, side: int, **kwargs: Any) -> None:
        if name not in known:
            return

        def build(
            name: str = name, index: int = index, kwargs: dict[str, Any] = kwargs
        ) -> nn.Module:
            net = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
            return Adapter(
                net,
                lambda m, x: m.forward_intermediates(
                    x, indices=[index], intermediates_only=True, stop_early=True
                )[0],
            )

        entries.append(Entry("timm", f"{name}.inter{index}", build, (2, 3, side, side)))

    add("mixer_s16_224", 0, 224)
    add("gmlp_ti16_224", 0, 224)
    add("resmlp_12_224", 0, 224)
    add("test_vit", 0, 160)
    add("pvt_v2_b0", 1, 96)
    add("lambda_resnet26t", 2, 96)
    add("volo_d1_224", 0, 224)
    add("mobilevitv2_050", 2, 96)
    add("sequencer2d_s", 0, 96)
    add("tf_efficientnet_b0", 1, 95)
    add("swin_tiny_patch4_window7_224", 0, 224)
    add("efficientvit_m0", 0, 224)
    add("nest_tiny", 0, 224)
    add("hiera_tiny_224", 0, 224)
    add("davit_tiny", 0, 96)
    add("focalnet_tiny_srf", 0, 96)
    add("xcit_nano_12_p16_224", 0, 96)
    add("crossvit_tiny_240", 0, 240)
    add("pit_ti_224", 1, 224)
    add("poolformerv2_s12", 0, 96)
    add("inception_next_tiny", 0, 96)
    add("twins_pcpvt_small", 1, 96)
    return entries


def _monai_wide2() -> list[Entry]:
    from monai.networks import nets

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        (
            "Quicknat-maxunpool",
            lambda: nets.Quicknat(num_classes=2, num_channels=1, num_filters=8),
            (2, 1, 32, 32),
        ),
        (
            "HoVerNet-fast",
            lambda: Adapter(
                nets.HoVerNet(mode="fast", in_channels=3, out_classes=0, decoder_padding=True),
                lambda m, x: m(x)["nucleus_prediction"],
            ),
            (1, 3, 256, 256),
        ),
        (
            "VoxelMorph-2d",
            lambda: Adapter(
                nets.VoxelMorph(
                    backbone=nets.VoxelMorphUNet(
                        spatial_dims=2,
                        in_channels=2,
                        unet_out_channels=8,
                        channels=(8, 8, 8, 8),
                        final_conv_channels=(8,),
                    ),
                    integration_steps=2,
                    spatial_dims=2,
                ),
                lambda m, x: m(x[:, :1], x[:, 1:])[0],  # (moving, fixed) → the warped image
            ),
            (2, 2, 32, 32),
        ),
        (
            "ViTAutoEnc-2d",
            lambda: Adapter(
                nets.ViTAutoEnc(
                    in_channels=1,
                    img_size=32,
                    patch_size=4,
                    out_channels=1,
                    deconv_chns=8,
                    hidden_size=32,
                    mlp_dim=64,
                    num_layers=1,
                    num_heads=2,
                    spatial_dims=2,
                ),
                lambda m, x: m(x)[0],
            ),
            (2, 1, 32, 32),
        ),
        (
            "GlobalNet-2d",
            lambda: nets.GlobalNet(
                image_size=[32, 32], spatial_dims=2, in_channels=1, num_channel_initial=4, depth=2
            ),
            (2, 1, 32, 32),
        ),
        (
            "MultiScalePatchDiscriminator-2d",
            lambda: Adapter(
                nets.MultiScalePatchDiscriminator(
                    num_d=2,
                    num_layers_d=2,
                    spatial_dims=2,
                    channels=8,
                    in_channels=1,
                    minimum_size_im=64,
                ),
                lambda m, x: m(x)[0][1],  # the second (downsampled) discriminator's map
            ),
            (2, 1, 64, 64),
        ),
        (
            "SegResNetDS2-2d",
            lambda: Adapter(
                nets.SegResNetDS2(spatial_dims=2, init_filters=8, in_channels=1, out_channels=2),
                lambda m, x: m(x)[0],
            ),
            (2, 1, 32, 32),
        ),
    ]
    return [Entry("monai", name, build, shape) for name, build, shape in specs]


def _torchaudio_wide2() -> list[Entry]:
    from torchaudio import models

    def emformer() -> nn.Module:
        model = models.Emformer(
            input_dim=16,
            num_heads=2,
            ffn_dim=32,
            num_layers=1,
            segment_length=4,
            left_context_length=4,
            right_context_length=1,
            max_memory_size=0,
        )
        # (N, D, T + right context) → (N, T, D) and lengths → (N, D, T)
        return Adapter(
            model,
            lambda m, x: m(
                x.transpose(1, 2), torch.full((x.shape[0],), x.shape[2] - 1, dtype=torch.long)
            )[0].transpose(1, 2),
        )

    def tacotron_encoder() -> nn.Module:
        from torchaudio.models.tacotron2 import _Encoder

        return Adapter(
            _Encoder(encoder_embedding_dim=16, encoder_n_convolution=3, encoder_kernel_size=5),
            lambda m, x: m(x, torch.full((x.shape[0],), x.shape[2], dtype=torch.long)).transpose(
                1, 2
            ),
        )

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("Emformer-tiny", emformer, (2, 16, 17)),
        ("Tacotron2._Encoder", tacotron_encoder, (2, 16, 20)),
        ("conv_tasnet_base", lambda: models.conv_tasnet_base(num_sources=2), (1, 1, 400)),
    ]
    return [Entry("torchaudio", name, build, shape) for name, build, shape in specs]


def _diffusers_wide2() -> list[Entry]:
    import diffusers

    def wan() -> nn.Module:
        net = diffusers.AutoencoderKLWan(
            base_dim=8,
            z_dim=4,
            dim_mult=[1, 2],
            num_res_blocks=1,
            temperal_downsample=[True],
            attn_scales=[],
        )
        return Adapter(net, lambda m, x: m(x).sample)

    def dc() -> nn.Module:
        net = diffusers.AutoencoderDC(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=8,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 16),
            decoder_block_out_channels=(8, 16),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=(1, 1),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
        )
        return Adapter(net, lambda m, x: m(x).sample)

    def unet_cond_variant() -> nn.Module:
        net = diffusers.UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(8, 16),
            norm_num_groups=4,
            layers_per_block=1,
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            cross_attention_dim=8,
            attention_head_dim=4,
            resnet_time_scale_shift="scale_shift",
        )
        return Adapter(
            net, lambda m, x: m(x, 10, encoder_hidden_states=x.new_ones(x.shape[0], 3, 8)).sample
        )

    specs: list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]] = [
        ("AutoencoderKLWan-tiny", wan, (1, 3, 5, 16, 16)),
        ("AutoencoderDC-tiny", dc, (2, 3, 32, 32)),
        ("UNet2DConditionModel-simplecross", unet_cond_variant, (2, 4, 16, 16)),
    ]
    return [Entry("diffusers", name, build, shape) for name, build, shape in specs]


def _smp_wide2() -> list[Entry]:
    import segmentation_models_pytorch as smp

    combos = [
        ("Unet", "tu-xception65", {}, 64),
        ("Segformer", "mit_b0", {}, 64),
        ("UPerNet", "tu-convnext_atto", {}, 64),
        ("Unet", "tu-tf_efficientnet_b0", {}, 64),
        ("DPT", "tu-test_vit", {"dynamic_img_size": True}, 64),
    ]
    entries = []
    for arch, encoder, kw, side in combos:
        if not hasattr(smp, arch):
            continue

        def build(arch: str = arch, encoder: str = encoder, kw: dict[str, Any] = kw) -> nn.Module:
            return getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, classes=2, **kw)

        entries.append(Entry("smp", f"{arch}-{encoder}.s2b", build, (2, 3, side, side)))
    return entries


CATALOGUES: dict[str, Callable[[], list[Entry]]] = {
    "timm": lambda: _timm() + _timm_wide() + _timm_token_mixers(),
    "monai": lambda: _monai() + _monai_wide() + _monai_wide2(),
    "diffusers": lambda: _diffusers() + _diffusers_wide() + _diffusers_wide2(),
    "segmentation_models_pytorch": lambda: _smp() + _smp_wide() + _smp_wide2(),
    "torchaudio": lambda: _torchaudio() + _torchaudio_wide() + _torchaudio_wide2(),
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
