"""One run of a model on the meta device, recorded op by op.

``trace(model, input_shape)`` copies the model with every parameter and buffer
replaced by a meta tensor (no memory, no FLOPs, any resolution; the user's model
is never touched), runs it once under a ``TorchFunctionMode`` that sees every
torch call in ``forward`` — module internals *and* functional calls such as
``F.max_pool2d``, ``x.view``, ``torch.cat`` or ``a + b`` — and global module
hooks that say which module each op ran in.

The result is a :class:`Trace`: a graph of :class:`TraceNode` (one per op, with
producer links, so branches and merges are explicit) and a table of
:class:`TraceLayer` rows (one per leaf-module call and per functional call made
directly in a composite ``forward``).

Speed: shape-preserving ops (activations, norms, dropout, elementwise
arithmetic) are not executed — their output is an empty meta tensor of the
rule's shape, because torch runs Python decompositions for them on meta that
cost more than a real CPU conv. Ops with a geometry rule (conv, pool, …) are
executed on meta *and* predicted by the rule table; any disagreement is
recorded in :attr:`Trace.disagreements`.

Models that cannot run on meta (data-dependent control flow, ``.item()``) are
re-run once on CPU with real weights on a copy; :attr:`Trace.fallback` says why.

The package's modules, each with one job:

- :mod:`~pytest_convcheck.tracing.records`: what a trace is (:class:`Trace`,
  :class:`TraceNode`, :class:`TraceLayer`, :class:`OpCall`) and its text table;
- :mod:`~pytest_convcheck.tracing.tensors`: helpers on tensors, their containers
  and shapes (:func:`tensors_of`, :func:`output_leaves`, :func:`format_shape`, …);
- :mod:`~pytest_convcheck.tracing.failures`: errors and their messages
  (:class:`ModelRunError`, :func:`forward_failures`, :func:`clash_hint`, …);
- :mod:`~pytest_convcheck.tracing.copying`: the copies of the model that are run
  (:func:`materialized_copy`, :func:`with_parameter_shapes`, lazy initialisation);
- :mod:`~pytest_convcheck.tracing.plans`: the per-process caches (:data:`caches`):
  replay plans, tree signatures of modules, verified ops;
- :mod:`~pytest_convcheck.tracing.recorder`: the recorder and the
  ``TorchFunctionMode`` that feeds it;
- :mod:`~pytest_convcheck.tracing.run`: :func:`trace` itself.
"""

from __future__ import annotations

from pytest_convcheck.tracing.copying import materialized_copy as materialized_copy
from pytest_convcheck.tracing.copying import with_parameter_shapes as with_parameter_shapes
from pytest_convcheck.tracing.failures import ModelRunError
from pytest_convcheck.tracing.failures import clash_hint as clash_hint
from pytest_convcheck.tracing.failures import forward_failures as forward_failures
from pytest_convcheck.tracing.failures import missing_inputs_message as missing_inputs_message
from pytest_convcheck.tracing.plans import TraceCaches as TraceCaches
from pytest_convcheck.tracing.plans import caches as caches
from pytest_convcheck.tracing.plans import tree_signatures as tree_signatures
from pytest_convcheck.tracing.records import MODEL_INPUT, Trace, TraceLayer, TraceNode
from pytest_convcheck.tracing.records import OpCall as OpCall
from pytest_convcheck.tracing.run import gc_paused as gc_paused
from pytest_convcheck.tracing.run import inputs_primary as inputs_primary
from pytest_convcheck.tracing.run import trace
from pytest_convcheck.tracing.tensors import first_tensor as first_tensor
from pytest_convcheck.tracing.tensors import format_shape as format_shape
from pytest_convcheck.tracing.tensors import op_name as op_name
from pytest_convcheck.tracing.tensors import output_leaves as output_leaves
from pytest_convcheck.tracing.tensors import tensors_of as tensors_of

__all__ = ["MODEL_INPUT", "ModelRunError", "Trace", "TraceLayer", "TraceNode", "trace"]
