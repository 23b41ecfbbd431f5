"""Weight sharing: intended reuse, tied parameters, accidental duplication, and ties
that survive copying, saving, casting and training.

Three kinds of sharing, told apart:

* **reuse** — one module called several times in ``forward`` (one conv applied to
  each of several feature maps, say): one set of parameters, several applications.
  Intended; not suspicious.
* **ties** — two modules holding one parameter tensor (``b.weight = a.weight``,
  e.g. tied embeddings). Intended; reported as a group.
* **aliases** — one module *instance* registered under several names
  (``nn.Sequential(*[block] * 3)``, ``nn.ModuleList([m] * n)``, one block assigned
  to two attributes). Usually a bug: the author meant n independent blocks.
  Suspicious unless listed in ``allow``.

Reuse cuts parameters, not compute: the report counts FLOPs per call from the
rule table, so a module called twice costs twice.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pytest_convcheck.calls import Call, as_call, build_call, call_model, fresh_call, output_tensors
from pytest_convcheck.inputs import as_inputs
from pytest_convcheck.module_index import ModuleIndex, storage_key
from pytest_convcheck.tracing import Trace, materialized_copy, trace, with_parameter_shapes

__all__ = [
    "SharingReport",
    "Suspicion",
    "TieCheck",
    "TiePair",
    "assert_gradients_accumulate",
    "assert_no_accidental_sharing",
    "assert_ties_preserved",
    "assert_weights_shared",
    "parameter_groups",
    "sharing",
    "sharing_from_trace",
]


def parameter_groups(model: nn.Module) -> tuple[tuple[str, ...], ...]:
    """Groups of parameter names (every registered name) that are one tensor."""
    named = list(model.named_parameters(remove_duplicate=False))
    return _tensor_groups(named, count=False)[0]


def _tensor_groups(
    named: Sequence[tuple[str, torch.Tensor]], *, count: bool = True
) -> tuple[tuple[tuple[str, ...], ...], int]:
    """From ``named_parameters(remove_duplicate=False)``: the groups of names that are
    one tensor, and (``count``; lazy parameters have no size yet) the parameter count
    with each tensor counted once."""
    groups: dict[tuple[object, ...], list[str]] = {}
    unique = 0
    for name, param in named:
        names = groups.get(key := storage_key(param))
        if names is None:
            groups[key] = names = []
            if count:
                unique += param.numel()
        names.append(name)
    return tuple(tuple(names) for names in groups.values() if len(names) > 1), unique


def _module_aliases(index: ModuleIndex) -> list[tuple[str, ...]]:
    """Top-most groups of module names that are one object."""
    by_id: dict[int, list[str]] = {}
    for name, module in index.modules:
        if name:
            by_id.setdefault(id(module), []).append(name)
    groups = [tuple(names) for names in by_id.values() if len(names) > 1]
    aliased = {name for group in groups for name in group}

    def under_alias(name: str) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:i]) in aliased for i in range(1, len(parts)))

    return [group for group in groups if not all(under_alias(n) for n in group)]


def _holds_state(module: nn.Module) -> bool:
    """Whether the module (or a child) has a parameter or a buffer."""
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


@dataclass(frozen=True)
class Suspicion:
    """Module names that are one object, why that is likely a bug, and the fix."""

    names: tuple[str, ...]
    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.reason}\n    fix: {self.fix}"


def _explain(names: tuple[str, ...], model: nn.Module) -> Suspicion:
    listed = ", ".join(f"`{n}`" for n in names[:-1]) + f" and `{names[-1]}`"
    parents = {n.rpartition(".")[0] for n in names}
    leaves = [n.rpartition(".")[2] for n in names]
    kind = type(model.get_submodule(names[0])).__name__
    if len(parents) == 1 and all(leaf.isdigit() for leaf in leaves):
        parent = next(iter(parents)) or "the model"
        container = (
            type(model.get_submodule(next(iter(parents)))).__name__
            if next(iter(parents))
            else type(model).__name__
        )
        return Suspicion(
            names,
            f"{listed} are one {kind} object: `[block] * {len(names)}` (or a list built "
            f"from one instance) repeats the instance in {container} `{parent}`, so all "
            f"{len(names)} positions share one set of weights.",
            f"build each with its own constructor call, e.g. "
            f"nn.{container}(*[make_block() for _ in range({len(names)})]); if the reuse is "
            f"intended, call one module several times in forward instead, or allow it.",
        )
    return Suspicion(
        names,
        f"{listed} are one {kind} object: the same instance is registered under "
        f"{len(names)} names, so they share every parameter.",
        "construct a separate module for each name; if one module should be reused, register "
        "it once and call it twice in forward (or allow it).",
    )


@dataclass(frozen=True)
class SharingReport:
    """How a model shares weights, and what that does to parameters and compute.

    ``calls``: module name → times called in one forward. ``tied``: groups of
    parameter names that are one tensor (``shared`` reads it under its old name).
    ``suspicious``: module aliases that are likely accidental. ``unique_parameters``
    counts each tensor once (by storage); ``naive_parameters`` counts every
    registered name (what tools that walk ``named_parameters(remove_duplicate=False)``
    report); ``unshared_parameters`` is what the model would hold if every call of a
    reused leaf module had its own copy. ``flops`` is per forward, every call
    counted, from the rule table.
    """

    model: str
    calls: dict[str, int]
    tied: tuple[tuple[str, ...], ...]
    aliases: tuple[tuple[str, ...], ...]
    suspicious: tuple[Suspicion, ...]
    unique_parameters: int
    naive_parameters: int
    unshared_parameters: int
    flops: int
    flops_by_module: dict[str, int]

    @property
    def reused(self) -> dict[str, int]:
        """Modules called more than once in one forward."""
        return {name: n for name, n in self.calls.items() if n > 1 and name}

    @property
    def shared(self) -> tuple[tuple[str, ...], ...]:
        """The tied groups (:attr:`tied`) under the name README.md documents."""
        return self.tied

    def __str__(self) -> str:
        lines = [
            f"weight sharing of {self.model}: {self.unique_parameters:,} unique parameters "
            f"({self.naive_parameters:,} counted per registered name; "
            f"{self.unshared_parameters:,} if every call had its own weights), "
            f"{self.flops:,} FLOPs per forward"
        ]
        for name, count in self.reused.items():
            lines.append(
                f"  reused: {name} called {count}× — {self.flops_by_module.get(name, 0):,} FLOPs "
                f"in total (reuse saves parameters, not compute)"
            )
        for group in self.tied:
            lines.append(f"  tied: {', '.join(group)} are one tensor")
        for suspicion in self.suspicious:
            lines.append(f"  suspicious: {suspicion}")
        return "\n".join(lines)


def sharing(
    model: nn.Module,
    input_shape: Any = None,
    *,
    allow: Sequence[str] = (),
    example_inputs: Callable[[], Any] | None = None,
) -> SharingReport:
    """The sharing report of ``model`` on inputs of ``input_shape`` (one meta trace):
    any input description, or ``example_inputs=`` (see :mod:`pytest_convcheck.inputs`).

    ``allow`` lists module names whose aliasing is intended (not suspicious).
    """
    result = trace(model, input_shape, example_inputs=example_inputs)
    return sharing_from_trace(result, model, allow=allow)


def sharing_from_trace(
    result: Trace,
    model: nn.Module,
    *,
    allow: Sequence[str] = (),
    node_flops: Sequence[int] | None = None,
    index: ModuleIndex | None = None,
) -> SharingReport:
    """The sharing report from a trace of ``model`` (see :func:`sharing`);
    ``node_flops``: each node's FLOPs and ``index``: the model's
    :class:`~pytest_convcheck.module_index.ModuleIndex`, when the caller has them."""
    described = result.inputs if result.inputs is not None else result.input_shape
    index = index if index is not None else ModuleIndex.of(model)
    aliases = _module_aliases(index)
    allowed = set(allow)
    # aliasing a module without parameters or buffers (one ReLU or Identity under two
    # names, as in MONAI's SegResNet) shares nothing: it stays in .aliases, as a note
    suspicious = tuple(
        _explain(group, model)
        for group in aliases
        if not allowed.intersection(group) and _holds_state(model.get_submodule(group[0]))
    )
    lazy = index.lazy
    named = (  # one walk for all counts
        list(with_parameter_shapes(model, described).named_parameters(remove_duplicate=False))
        if lazy
        else index.parameters
    )
    groups, unique = _tensor_groups(named)
    naive = sum(p.numel() for _, p in named)
    unshared = unique
    modules = dict(index.modules) if not lazy else {}
    for name, count in result.calls.items():
        if count > 1 and name:
            module = modules.get(name)
            if module is not None:
                once = {id(p): p.numel() for p in module.parameters()}
            else:  # a lazy model: its parameters have sizes on the copy only
                prefix = f"{name}."
                once = {id(p): p.numel() for n, p in named if n.startswith(prefix)}
            unshared += (count - 1) * sum(once.values())
    flops_by_module: dict[str, int] = {}
    total = 0
    if node_flops is None:
        node_flops = [node.flops() for node in result.nodes]
    for node, cost in zip(result.nodes, node_flops, strict=True):
        if node.spec is None:  # ops with a rule only
            continue
        total += cost
        flops_by_module[node.module] = flops_by_module.get(node.module, 0) + cost
    return SharingReport(
        type(model).__name__,
        dict(result.calls),
        groups if not lazy else parameter_groups(model),
        tuple(aliases),
        suspicious,
        unique,
        naive,
        unshared,
        total,
        flops_by_module,
    )


def assert_no_accidental_sharing(
    model: nn.Module,
    input_shape: Any = None,
    *,
    allow: Sequence[str] = (),
    example_inputs: Callable[[], Any] | None = None,
) -> SharingReport:
    """Fail when one module instance is registered under several names (``[block] * n``,
    ``ModuleList([m] * n)``, one block on two attributes), unless a name of the
    group is in ``allow``. Calling one module twice in ``forward`` is fine.
    ``input_shape``: any input description (see :func:`sharing`)."""
    __tracebackhide__ = True  # pytest shows the caller's line
    report = sharing(model, input_shape, allow=allow, example_inputs=example_inputs)
    if report.suspicious:
        lines = [f"{report.model}: accidental weight sharing:"]
        lines += [f"  {s}" for s in report.suspicious]
        lines.append("  (intended? pass allow=[...] with one of the names)")
        raise AssertionError("\n".join(lines))
    return report


def _resolve(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """A module name → its direct parameters by local name; a parameter name → itself."""
    modules = dict(model.named_modules(remove_duplicate=False))
    if name in modules:
        params = dict(modules[name].named_parameters(recurse=False))
        if not params:
            params = dict(modules[name].named_parameters())
        return params
    params = dict(model.named_parameters(remove_duplicate=False))
    if name in params:
        return {"": params[name]}
    known = sorted(n for n in modules if n) + sorted(params)
    raise KeyError(
        f"{type(model).__name__} has no module or parameter {name!r}; known: "
        f"{', '.join(known[:30])}{' …' if len(known) > 30 else ''}"
    )


def _shape_of(tensor: torch.Tensor) -> tuple[int, ...] | None:
    """The tensor's shape; ``None`` for a lazy parameter that has none yet."""
    uninitialized = getattr(nn.parameter, "UninitializedTensorMixin", ())
    if uninitialized and isinstance(tensor, uninitialized):
        return None
    return tuple(tensor.shape)


def _attribute_path(name: str) -> str:
    """Python that reaches ``name`` from ``model``: ``dec.bias`` → ``model.dec.bias``,
    ``decoder.0.weight`` → ``model.decoder[0].weight``."""
    parts = name.split(".")
    if not all(p.isdigit() or p.isidentifier() for p in parts):
        owner, _, leaf = name.rpartition(".")
        return f"model.get_submodule({owner!r}).{leaf}" if owner else f"model.{leaf}"
    return "model" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)


@dataclass(frozen=True)
class TiePair:
    """One parameter of the first module and its namesake in another: ``status`` is
    ``"tied"`` (one tensor), ``"untied"`` (the same shape, separate tensors: a
    failure) or ``"untieable"`` (different shapes or no namesake: a note)."""

    first: str
    other: str
    first_shape: tuple[int, ...] | None
    other_shape: tuple[int, ...] | None
    status: str
    equal_values: bool = False

    def __str__(self) -> str:
        if self.status == "tied":
            return f"tied: {self.first} and {self.other}, one tensor of shape {self.first_shape}"
        if self.status == "untied":
            cut = (
                " with equal values: the tie was cut (a copy, a clone, or a load into an "
                "untied model)"
                if self.equal_values
                else ""
            )
            return (
                f"not tied: {self.first} and {self.other} are separate tensors{cut}, both of "
                f"shape {self.first_shape}"
            )
        if self.first_shape is None or self.other_shape is None:
            missing, present = (
                (self.other, self.first) if self.other_shape is None else (self.first, self.other)
            )
            return f"note: {missing} does not exist, so {present} has nothing to be tied to"
        return (
            f"note: {self.first} {self.first_shape} and {self.other} {self.other_shape} "
            f"cannot be tied (different shapes)"
        )


@dataclass(frozen=True)
class TieCheck:
    """What :func:`assert_weights_shared` found: per module named after the first,
    its parameters paired by local name with the first's."""

    model: str
    names: tuple[str, ...]
    pairs: tuple[TiePair, ...]

    @property
    def tied(self) -> tuple[tuple[str, str], ...]:
        return tuple((p.first, p.other) for p in self.pairs if p.status == "tied")

    @property
    def untied(self) -> tuple[tuple[str, str], ...]:
        """Pairs of the same shape that are separate tensors (each fails the check)."""
        return tuple((p.first, p.other) for p in self.pairs if p.status == "untied")

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self.pairs if p.status == "untieable")

    def __str__(self) -> str:
        lines = [f"ties of {self.model} between {_listed(self.names)}:"]
        lines += [f"  {p}" for p in self.pairs]
        return "\n".join(lines)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def _pairs(
    first_name: str,
    first: dict[str, torch.Tensor],
    other_name: str,
    other: dict[str, torch.Tensor],
) -> list[TiePair]:
    """The parameters of two resolved names, paired by local name (the union of both)."""
    pairs = []
    for key in list(first) + [k for k in other if k not in first]:
        label = f"{first_name}.{key}".rstrip(".")
        other_label = f"{other_name}.{key}".rstrip(".")
        a, b = first.get(key), other.get(key)
        shape_a = _shape_of(a) if a is not None else None
        shape_b = _shape_of(b) if b is not None else None
        if a is None or b is None:
            pairs.append(TiePair(label, other_label, shape_a, shape_b, "untieable"))
        elif storage_key(a) == storage_key(b):
            pairs.append(TiePair(label, other_label, shape_a, shape_b, "tied"))
        elif shape_a != shape_b and shape_a is not None and shape_b is not None:
            pairs.append(TiePair(label, other_label, shape_a, shape_b, "untieable"))
        else:
            equal = (
                shape_a is not None
                and shape_a == shape_b
                and a.device.type != "meta"
                and b.device.type != "meta"
                and bool(torch.equal(a.detach().cpu(), b.detach().cpu()))
            )
            pairs.append(TiePair(label, other_label, shape_a, shape_b, "untied", equal))
    return pairs


def assert_weights_shared(model: nn.Module, *names: str) -> TieCheck:
    """Assert that the named modules (their parameters, matched by local name with
    the first name's) or the named parameters are tied: every pair of namesakes of
    the same shape is one tensor, and each name shares at least one with the first.

    Pairs that cannot be one tensor (different shapes, as the biases of a conv and
    the transposed conv tied to it, 8 vs 1 values; or a parameter without a
    namesake) are notes in the returned :class:`TieCheck`, not failures. A failure
    names each untied pair and the assignment that ties it."""
    __tracebackhide__ = True  # pytest shows the caller's line
    if len(names) < 2:
        raise ValueError("assert_weights_shared needs at least two module or parameter names")
    resolved = [_resolve(model, name) for name in names]
    pairs: list[TiePair] = []
    problems: list[str] = []
    for name, params in zip(names[1:], resolved[1:], strict=True):
        found = _pairs(names[0], resolved[0], name, params)
        pairs += found
        if not any(p.status == "tied" for p in found):
            problems.append(f"no parameter of {name} is tied to {names[0]}")
    result = TieCheck(type(model).__name__, tuple(names), tuple(pairs))
    untied = [p for p in pairs if p.status == "untied"]
    if untied:
        count = len(untied)
        problems.append(
            f"{count} parameter pair{'s' if count > 1 else ''} of the same shape "
            f"{'are' if count > 1 else 'is'} not tied"
        )
    if not problems:
        return result
    if untied:
        assignments = "; ".join(
            f"{_attribute_path(p.other)} = {_attribute_path(p.first)}" for p in untied
        )
        fix = f"tie {'them' if len(untied) > 1 else 'it'} by assignment: {assignments}"
    else:
        fix = (
            "the named modules hold no parameters of the same shape: name the modules "
            "meant to be tied, or reuse one module (call it twice in forward)"
        )
    raise AssertionError(
        f"{result.model}: expected {_listed(names)} to share every parameter of the same "
        f"shape (one tensor), and at least one; but {'; '.join(problems)}:\n"
        + "\n".join(f"  {p}" for p in pairs)
        + f"\n  fix: {fix}"
    )


def assert_gradients_accumulate(
    model: nn.Module,
    input_shape: Any = None,
    name: str | None = None,
    *,
    atol: float = 1e-9,
    example_inputs: Callable[[], Any] | None = None,
) -> None:
    """Check that the gradient of a reused module's parameters equals the sum of the
    gradients of each use (computed with one untied copy per call), on CPU float64
    copies, through every floating output. ``name`` picks the module; by default every
    module called more than once. ``input_shape``: any input description, or
    ``example_inputs=`` (see :mod:`pytest_convcheck.inputs`)."""
    __tracebackhide__ = True  # pytest shows the caller's line
    inputs = as_inputs(input_shape, example_inputs=example_inputs)
    calls = trace(model, inputs).calls
    targets = [name] if name is not None else [n for n, c in calls.items() if c > 1 and n]
    if not targets:
        raise AssertionError(f"{type(model).__name__}: no module is called more than once")
    x, _ = build_call(inputs)
    for target in targets:
        count = calls.get(target, 0)
        if count < 2:
            raise AssertionError(f"{target!r} is called {count}× in forward, not reused")
        tied = materialized_copy(model, "cpu", inputs).double()
        _backward(tied, x)
        tied_grads = {k: p.grad for k, p in tied.get_submodule(target).named_parameters()}
        untied = materialized_copy(model, "cpu", inputs).double()
        module = untied.get_submodule(target)
        clones = [copy.deepcopy(module) for _ in range(count)]
        object.__setattr__(module, "forward", _route_calls(clones))
        _backward(untied, x)
        for key, grad in tied_grads.items():
            parts = [dict(c.named_parameters())[key].grad for c in clones]
            summed = sum(p for p in parts if p is not None)
            if grad is None or not torch.allclose(grad, torch.as_tensor(summed), atol=atol):
                raise AssertionError(
                    f"{type(model).__name__}: the gradient of {target}.{key} is not the sum of "
                    f"its {count} uses' gradients"
                )


def _route_calls(clones: list[nn.Module]) -> Callable[..., Any]:
    """A forward that sends call i to ``clones[i]`` (one untied copy per use)."""
    used = iter(clones)

    def forward(*args: Any, **kwargs: Any) -> Any:
        return next(used)(*args, **kwargs)

    return forward


def _backward(model: nn.Module, x: torch.Tensor | Call) -> None:
    """One backward of a fixed weighted sum of every floating output of ``model`` on
    copies of the inputs ``x`` (a tensor or built ``(args, kwargs)``)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)  # CPU only: inside fork_rng(devices=[])
        outputs = output_tensors(call_model(model, fresh_call(as_call(x))))
    if not outputs:
        raise ValueError(f"{type(model).__name__} returned no tensor")
    terms = [
        (out * torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
        for out in outputs.values()
        if out.is_floating_point() and out.requires_grad
    ]
    if not terms:
        raise ValueError(
            f"{type(model).__name__}: no output depends on a parameter that requires grad, "
            f"so there are no gradients to compare.\n  fix: check a model whose reused "
            f"modules have trainable parameters (requires_grad=True)."
        )
    torch.autograd.backward(torch.stack(terms).sum())


def assert_ties_preserved(model: nn.Module) -> None:
    """Check that the model's tied parameters stay tied through ``copy.deepcopy``, a
    ``state_dict`` save/load round-trip (``torch.load(weights_only=True)``),
    ``.to(torch.float64)`` and one optimizer step (on copies)."""
    __tracebackhide__ = True  # pytest shows the caller's line
    groups = parameter_groups(model)
    name = type(model).__name__
    if not groups:
        return

    def broken(candidate: nn.Module) -> list[str]:
        found = []
        params = dict(candidate.named_parameters(remove_duplicate=False))
        for group in groups:
            keys = {storage_key(params[n]) for n in group}
            if len(keys) > 1:
                found.append(", ".join(group))
        return found

    stages: list[tuple[str, nn.Module]] = []
    copied = copy.deepcopy(model)
    stages.append(("copy.deepcopy", copied))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    loaded = copy.deepcopy(model)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    stages.append(("state_dict save/load", loaded))
    stages.append((".to(torch.float64)", copy.deepcopy(model).to(torch.float64)))
    stepped = copy.deepcopy(model)
    optimizer = torch.optim.SGD(stepped.parameters(), lr=0.1)
    for param in stepped.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    stages.append(("one optimizer step", stepped))
    failures = [
        f"after {stage}: {', '.join(broken(m))} no longer one tensor"
        for stage, m in stages
        if broken(m)
    ]
    if failures:
        raise AssertionError(
            f"{name}: tied parameters came apart:\n  "
            + "\n  ".join(failures)
            + "\n  fix: re-tie after the step that broke them (e.g. in load_state_dict or "
            "after .to()), or tie by module reuse."
        )
