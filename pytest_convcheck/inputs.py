"""What a model's forward takes: one input description for every check.

Every public function that takes ``input_shape`` accepts any of:

* a shape — ``(2, 3, 32, 32)``: one float tensor, the model's dtype;
* a tuple or list of shapes — positional arguments, ``((2, 3, 32, 32), (2, 1, 32, 32))``
  for an image and a mask;
* a mapping of names to shapes — keyword arguments, ``{"sample": (2, 4, 32, 32),
  "timestep": Input((2,), dtype="int64", high=1000)}``;
* any shape may be an :class:`Input`, which adds a dtype (integer ids,
  timesteps, boolean masks) and a value range;
* ``example_inputs=`` — a callable returning ``(args, kwargs)`` for anything else
  (python numbers, dicts or lists of tensors): the checks read shapes, dtypes and
  integer ranges off what it returns and build their own tensors alike.

Analyses that concern one spatial input (receptive field, checkerboard, valid
sizes) read the *primary* input: ``input=`` (an index or a name), by default the
first floating input with spatial dims (N, C, ...). The other inputs stay as
described; for a receptive field they are constants (the field is the one of the
primary input's positions).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

Key = int | str
Shape = tuple[int, ...]

__all__ = ["Input", "Inputs", "as_inputs", "parse_dtype"]

_DTYPES: dict[str, torch.dtype] = {
    "float": torch.float32,
    "float32": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "int": torch.int64,
    "int64": torch.int64,
    "long": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def parse_dtype(value: torch.dtype | str | None) -> torch.dtype | None:
    """A dtype from a ``torch.dtype`` or a name (``"int64"``, ``"torch.bool"``)."""
    if value is None or isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    if name not in _DTYPES:
        raise ValueError(
            f"unknown dtype {value!r}.\n  fix: one of {', '.join(sorted(_DTYPES))} "
            f"(or a torch.dtype)."
        )
    return _DTYPES[name]


@dataclass(frozen=True)
class Input:
    """One tensor argument of a forward: its shape, its dtype (``None``: the model's
    floating dtype) and the range of its values (``low`` ≤ x < ``high``: integer
    inputs draw from it — default 0..9, booleans 0..1 —, floating inputs are
    uniform in it when both are given, else standard normal)."""

    shape: Shape
    dtype: torch.dtype | str | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        shape = self.shape
        if isinstance(shape, int) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise TypeError(
                f"Input shape must be a sequence of sizes ≥ 0, got {shape!r}.\n  fix: e.g. "
                f"Input((2, 3, 32, 32)) or Input((2,), dtype='int64')."
            )
        object.__setattr__(self, "shape", tuple(int(s) for s in shape))
        object.__setattr__(self, "dtype", parse_dtype(self.dtype))
        if self.low is not None and self.high is not None and self.high <= self.low:
            raise ValueError(f"Input: high={self.high} must be greater than low={self.low}")

    @property
    def floating(self) -> bool:
        return self.dtype is None or bool(self.dtype.is_floating_point)  # type: ignore[union-attr]

    def resolved_dtype(self, default: torch.dtype) -> torch.dtype:
        return self.dtype if isinstance(self.dtype, torch.dtype) else default

    def tensor(
        self, default: torch.dtype, device: str | torch.device, generator: torch.Generator
    ) -> torch.Tensor:
        """A CPU-drawn tensor of this description, moved to ``device``."""
        dtype = self.resolved_dtype(default)
        if dtype == torch.bool:
            value = torch.randint(0, 2, self.shape, generator=generator).bool()
        elif not dtype.is_floating_point and not dtype.is_complex:
            low = int(self.low) if self.low is not None else 0
            high = int(self.high) if self.high is not None else max(low + 10, 10)
            value = torch.randint(low, high, self.shape, generator=generator, dtype=dtype)
        elif self.low is not None and self.high is not None:
            value = torch.rand(self.shape, generator=generator, dtype=torch.float64)
            value = (value * (self.high - self.low) + self.low).to(dtype)
        else:
            value = torch.randn(self.shape, generator=generator, dtype=torch.float64).to(dtype)
        return value.to(device)

    def meta(self, default: torch.dtype) -> torch.Tensor:
        return torch.empty(self.shape, dtype=self.resolved_dtype(default), device="meta")

    def describe(self) -> str:
        text = "×".join(map(str, self.shape)) or "scalar"
        if isinstance(self.dtype, torch.dtype):
            text += f" ({str(self.dtype).removeprefix('torch.')})"
        return text


def _leaves(value: Any) -> Iterator[Input]:
    if isinstance(value, Input):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)


def _map(value: Any, fn: Callable[[Input], Any]) -> Any:
    if isinstance(value, Input):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map(v, fn) for v in value)
    if isinstance(value, list):
        return [_map(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return value


Path = tuple[Key, ...]


def _walk(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def _placed(value: Any, path: Path, new: Any) -> Any:
    """``value`` with the item at ``path`` replaced by ``new`` (containers copied)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _placed(v, rest, new) if k == head else v for k, v in value.items()}
    items = [_placed(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return tuple(items) if isinstance(value, tuple) else items


def _leaf_paths(value: Any, path: Path) -> Iterator[tuple[Path, Input]]:
    if isinstance(value, Input):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _leaf_paths(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))


@dataclass(frozen=True)
class Inputs:
    """A normalised input description: positional and keyword arguments whose
    tensors are :class:`Input` placeholders (anything else is passed as it is),
    and the path of the primary input: an index into ``args`` or a keyword name,
    then keys into nested containers (``(0, "image")`` for ``forward(batch)`` with
    ``batch["image"]``)."""

    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()
    primary: Path = (0,)
    source: str = field(default="shape", compare=False)

    # ------------------------------------------------------------------ reading
    def _root(self) -> dict[Key, Any]:
        return {**dict(enumerate(self.args)), **dict(self.kwargs)}

    def get(self, path: Key | Path) -> Any:
        path = path if isinstance(path, tuple) else (path,)
        return _walk(self._root()[path[0]], path[1:])

    @property
    def main(self) -> Input:
        found = self.get(self.primary)
        assert isinstance(found, Input)
        return found

    @property
    def shape(self) -> Shape:
        """The primary input's shape (what shape-based analyses read)."""
        return self.main.shape

    @property
    def spatial(self) -> int:
        """Spatial axes of the primary input: all but batch and channels for a
        floating input (N, C, ...), all but batch for integer ids (N, L)."""
        rank = len(self.shape)
        return max(0, rank - 2) if self.main.floating else max(0, rank - 1)

    @property
    def single(self) -> bool:
        """One positional float tensor and nothing else: the classic ``input_shape``."""
        return (
            len(self.args) == 1
            and not self.kwargs
            and isinstance(self.args[0], Input)
            and self.args[0].dtype is None
            and self.args[0].low is None
            and self.args[0].high is None
        )

    def items(self) -> list[tuple[Key, Any]]:
        return [*enumerate(self.args), *self.kwargs]

    def tensors(self) -> list[tuple[Path, Input]]:
        """Every tensor input (nested ones too), with its path."""
        found: list[tuple[Path, Input]] = []
        for key, value in self.items():
            found += list(_leaf_paths(value, (key,)))
        return found

    def primary_name(self) -> str:
        head, *rest = self.primary
        text = head if isinstance(head, str) else f"input {head}"
        return text + "".join(f"[{part!r}]" for part in rest)

    def describe(self) -> str:
        if self.single:
            return "×".join(map(str, self.shape))
        parts = [_describe(v) for v in self.args]
        parts += [f"{k}={_describe(v)}" for k, v in self.kwargs]
        return ", ".join(parts)

    # ------------------------------------------------------------------ changing
    def _replace_path(self, path: Path, value: Any) -> Inputs:
        head, rest = path[0], path[1:]
        if isinstance(head, int):
            args = list(self.args)
            args[head] = _placed(args[head], rest, value)
            return replace(self, args=tuple(args))
        return replace(
            self,
            kwargs=tuple((k, _placed(v, rest, value) if k == head else v) for k, v in self.kwargs),
        )

    def with_shape(self, shape: Sequence[int]) -> Inputs:
        """The primary input resized to ``shape``; other inputs that share its batch
        size follow a change of batch."""
        new = tuple(int(s) for s in shape)
        result = self._replace_path(self.primary, replace(self.main, shape=new))
        if new and self.shape and new[0] != self.shape[0]:
            result = result._rebatch(self.shape[0], new[0], skip=self.primary)
        return result

    def with_batch(self, batch: int) -> Inputs:
        """Every input whose first dim is the primary's batch size, resized to ``batch``."""
        return self.with_shape((batch, *self.shape[1:]))

    def _rebatch(self, old: int, new: int, skip: Path) -> Inputs:
        result = self
        for path, item in self.tensors():
            if path != skip and item.shape and item.shape[0] == old:
                result = result._replace_path(path, replace(item, shape=(new, *item.shape[1:])))
        return result

    # ------------------------------------------------------------------ building
    def build(
        self,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        *,
        seed: int = 0,
        primary: torch.Tensor | None = None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Real ``(args, kwargs)``: tensors drawn with a generator seeded by ``seed``
        (floating ones in ``dtype``), ``primary`` in place of the primary input."""
        generator = torch.Generator().manual_seed(seed)

        def make(item: Input) -> torch.Tensor:
            return item.tensor(dtype, device, generator)

        return self._assemble(make, primary)

    def meta(
        self, dtype: torch.dtype, primary: torch.Tensor | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` of meta tensors (shapes only)."""
        return self._assemble(lambda item: item.meta(dtype), primary)

    def _assemble(
        self, make: Callable[[Input], torch.Tensor], primary: torch.Tensor | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        source = self if primary is None else self._replace_path(self.primary, _Given(primary))

        def build(item: Any) -> Any:
            return item.tensor_value if isinstance(item, _Given) else make(item)

        args = tuple(_map(value, build) for value in source.args)
        kwargs = {name: _map(value, build) for name, value in source.kwargs}
        return args, kwargs

    def primary_tensor(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        """The primary input's tensor among built ``(args, kwargs)``."""
        head, rest = self.primary[0], self.primary[1:]
        found = _walk(args[head] if isinstance(head, int) else kwargs[head], rest)
        assert isinstance(found, torch.Tensor)
        return found

    def select(self, key: Key | Path | None) -> Inputs:
        """The same inputs with ``key`` (an index, a name, or a path into nested
        containers) as the primary one."""
        if key is None:
            return self
        path = key if isinstance(key, tuple) else (key,)
        try:
            found = self.get(path)
        except (KeyError, IndexError, TypeError):
            found = None
        if isinstance(found, Input) and not isinstance(path[0], bool):
            return replace(self, primary=path)
        choices = [_path_text(p) for p, _ in self.tensors()]
        raise ValueError(
            f"input={key!r} names no tensor input; the tensor inputs are "
            f"{', '.join(choices) or 'none'}.\n  fix: pass input= one of them (an index of a "
            f"positional input, a keyword name, or a path such as (0, 'image'))."
        )


@dataclass(frozen=True)
class _Given(Input):
    """A placeholder carrying a ready tensor (the primary input of a build)."""

    tensor_value: Any = None

    def __init__(self, tensor: torch.Tensor) -> None:
        object.__setattr__(self, "shape", tuple(tensor.shape))
        object.__setattr__(self, "dtype", None)
        object.__setattr__(self, "low", None)
        object.__setattr__(self, "high", None)
        object.__setattr__(self, "tensor_value", tensor)


def _path_text(path: Path) -> str:
    head, *rest = path
    return repr(head) + "".join(f"[{part!r}]" for part in rest)


def _describe(value: Any) -> str:
    if isinstance(value, Input):
        return value.describe()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_describe(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_describe(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list, torch.Size))
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and not isinstance(value, Input)
    )


def _as_input(value: Any, where: str) -> Input:
    if isinstance(value, Input):
        return value
    if _is_shape(value):
        return Input(tuple(value))
    if isinstance(value, Mapping) and "shape" in value:
        extra = set(value) - {"shape", "dtype", "low", "high"}
        if extra:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(sorted(extra))} in an input table.\n  fix: "
                f"an input table takes shape, dtype, low and high."
            )
        return Input(tuple(value["shape"]), value.get("dtype"), value.get("low"), value.get("high"))
    raise TypeError(
        f"{where}: expected a shape (a sequence of ints) or an Input, got {value!r}.\n  fix: "
        f"e.g. (2, 3, 32, 32), or Input((2,), dtype='int64') for integer inputs."
    )


def _from_example(value: Any) -> Any:
    """Tensors of an example call as :class:`Input` placeholders (shape, dtype; integer
    ranges from the values), anything else as it is."""
    if isinstance(value, torch.Tensor):
        dtype = value.dtype
        if dtype.is_floating_point:
            return Input(tuple(value.shape), None if dtype == torch.float32 else dtype)
        if dtype == torch.bool:
            return Input(tuple(value.shape), dtype)
        if value.numel() and value.device.type != "meta":
            return Input(tuple(value.shape), dtype, int(value.min()), int(value.max()) + 1)
        return Input(tuple(value.shape), dtype)
    if isinstance(value, tuple):
        return tuple(_from_example(v) for v in value)
    if isinstance(value, list):
        return [_from_example(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_example(v) for k, v in value.items()}
    return value


def _default_primary(inputs: Inputs) -> Path:
    tensors = inputs.tensors()
    if not tensors:
        raise ValueError(
            "the input description holds no tensor input.\n  fix: give at least one shape "
            "(or Input) among the arguments."
        )
    for path, item in tensors:
        if item.floating and len(item.shape) >= 3:
            return path
    for path, item in tensors:
        if item.floating:
            return path
    return tensors[0][0]


def as_inputs(
    description: Any = None,
    *,
    example_inputs: Callable[[], Any] | None = None,
    input: Key | None = None,
) -> Inputs:
    """Normalise an input description (see the module doc) to :class:`Inputs`."""
    if isinstance(description, Inputs):
        return description.select(input)
    if example_inputs is not None or callable(description):
        factory = example_inputs if example_inputs is not None else description
        produced = factory()
        if (
            not isinstance(produced, tuple)
            or len(produced) != 2
            or not isinstance(produced[1], Mapping)
        ):
            raise TypeError(
                f"example_inputs must return (args, kwargs), got {type(produced).__name__}.\n  "
                f"fix: return a tuple of the positional arguments and a dict of the keyword "
                f"ones, e.g. return (image,), {{'timestep': t}}."
            )
        args, kwargs = produced
        args = tuple(args) if isinstance(args, (list, tuple)) else (args,)
        inputs = Inputs(
            tuple(_from_example(a) for a in args),
            tuple((str(k), _from_example(v)) for k, v in kwargs.items()),
            source="example_inputs",
        )
    elif _is_shape(description) or isinstance(description, Input):
        inputs = Inputs((_as_input(description, "input"),))
    elif isinstance(description, Mapping):
        if not description:
            raise ValueError("the input mapping is empty.\n  fix: name at least one input.")
        inputs = Inputs(
            (),
            tuple((str(k), _as_input(v, f"input {k!r}")) for k, v in description.items()),
            source="mapping",
        )
    elif isinstance(description, (list, tuple)) and description:
        inputs = Inputs(
            tuple(_as_input(v, f"input {i}") for i, v in enumerate(description)),
            source="positional",
        )
    else:
        raise TypeError(
            f"input_shape must be a shape, a sequence of shapes, a mapping of names to "
            f"shapes or an Input, got {description!r}.\n  fix: e.g. (2, 3, 32, 32), "
            f"((2, 3, 32, 32), (2, 1, 32, 32)) or {{'sample': (2, 4, 32, 32)}}."
        )
    inputs = replace(inputs, primary=_default_primary(inputs))
    return inputs.select(input)


def missing_parameters(forward: Callable[..., Any], inputs: Inputs) -> list[str]:
    """Required parameters of ``forward`` that ``inputs`` does not supply."""
    try:
        signature = inspect.signature(forward)
    except (TypeError, ValueError):
        return []
    given = {name for name, _ in inputs.kwargs}
    positional = len(inputs.args)
    missing = []
    index = 0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        positional_kind = (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        if parameter.kind in positional_kind and index < positional:
            index += 1
            continue
        if parameter.name in given or parameter.default is not parameter.empty:
            continue
        missing.append(parameter.name)
    return missing
