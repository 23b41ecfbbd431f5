"""Hand-written tests with pytest-convcheck's fixtures and assertions."""

from __future__ import annotations

import torch
from pytest_convcheck import assert_batch_independent, assert_output_shape

from mypkg.models import Classifier, Decoder


def test_classifier_report(convcheck_report):
    report = convcheck_report(Classifier(), (2, 1, 28, 28))
    assert report.output_shape == (2, 10)
    assert report.parameters == 9_098
    assert report.receptive_field["whole"] == [True, True]


def test_classifier_keeps_samples_apart():
    assert_batch_independent(Classifier(), (4, 1, 28, 28))


def test_classifier_runs_on_the_device(convcheck_device):
    model = Classifier().to(convcheck_device)
    assert model(torch.zeros(2, 1, 28, 28, device=convcheck_device)).shape == (2, 10)


def test_decoder_restores_28x28():
    assert_output_shape(Decoder(), (2, 16, 7, 7), (2, 1, 28, 28))  # fails: the planted bug
