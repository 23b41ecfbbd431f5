"""Importing what a configured model names: its ``factory`` and its
``example_inputs`` (``module.path:Name``, ``path/to/file.py:Name``, or a library's
model, ``timm:resnet18`` / ``torchvision:resnet18``). Importing this module never
imports torch.

Modules import from the installed packages, else from the project's folder
(:attr:`~pytest_convcheck.config.ModelConfig.root`, and ``root/src``). Every
failure is a :class:`~pytest_convcheck.errors.ConvcheckConfigError` that says what
was searched and, for a typo, the nearest name.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_convcheck.errors import ConvcheckConfigError

if TYPE_CHECKING:
    from pytest_convcheck.config import ModelConfig


def _project_folders(root: Path | None) -> list[Path]:
    """Where a project keeps its importable code: the root and, in a src layout,
    ``root/src``."""
    if root is None:
        return []
    folders = [root]
    if (root / "src").is_dir():
        folders.append(root / "src")
    return folders


def _defines(folder: Path, top: str) -> bool:
    return (
        (folder / f"{top}.py").is_file()
        or (folder / top / "__init__.py").is_file()
        or ((folder / top).is_dir() and any((folder / top).glob("*.py")))
    )


def _importable_names(folders: list[Path]) -> list[str]:
    """Top-level modules and packages in the project's folders."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.suffix == ".py" and path.stem.isidentifier():
                names.add(path.stem)
            elif path.is_dir() and path.name.isidentifier() and any(path.glob("*.py")):
                names.add(path.name)
    return sorted(names - {"conftest", "setup", "noxfile"})


def _close(word: str, candidates: list[str]) -> str:
    """`` Did you mean 'X'?`` when ``word`` is a likely typo of a candidate."""
    import difflib

    lowered = {c.lower(): c for c in candidates}
    found = [lowered[word.lower()]] if word.lower() in lowered else []
    found = found or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" Did you mean {found[0]!r}?" if found else ""


def _submodules(module: Any) -> list[str]:
    import pkgutil

    return [info.name for info in pkgutil.iter_modules(getattr(module, "__path__", None) or [])]


def _import_error(
    config: ModelConfig,
    module_name: str,
    error: ImportError,
    folders: list[Path],
    what: str = "factory",
    target: str = "",
) -> ConvcheckConfigError:
    """Why ``module_name`` does not import, what was searched, and the likely fix."""
    import importlib

    missing = getattr(error, "name", None) or module_name
    own = module_name == missing or module_name.startswith(f"{missing}.")
    searched = ", ".join(str(f) for f in folders) or "sys.path"
    if not own:  # the module exists and imports something that is missing
        return ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"failed: {error}.\n  fix: install {missing!r} in this environment (pip install "
            f"{missing.split('.')[0]}), or make {module_name!r} importable without it."
        )
    parent, _, leaf = missing.rpartition(".")
    hint = ""
    if parent:
        try:
            hint = _close(leaf, _submodules(importlib.import_module(parent)))
        except Exception:
            hint = ""
    else:
        hint = _close(missing, _importable_names(folders))
    where = (
        "the command line"
        if config.source == "command line"
        else "the ini option convcheck_models"
        if config.source.startswith("ini")
        else config.source
    )
    if config.source == "command line":
        fix = (
            f"run pytest from the folder that holds {missing.split('.')[0]!r} (its .py file or "
            f"package folder), or install the project (pip install -e .), or name the module "
            f"as Python imports it"
        )
    else:
        fix = (
            f"put {missing.replace('.', '/')}.py (or the package folder) under {searched}, "
            f"install the project (pip install -e .), or correct the {what} path in {where}"
        )
    return ConvcheckConfigError(
        f"model {config.name!r}: cannot import {module_name!r} for {what} {target!r}: no "
        f"module named {missing!r} in the project folder ({searched}) or the installed "
        f"packages.{hint}\n  fix: {fix}."
    )


def user_frames(error: BaseException, limit: int = 3) -> str:
    """The last frames of ``error``'s traceback outside pytest-convcheck."""
    import traceback

    here = str(Path(__file__).parent)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if here not in f.filename]
    lines = [
        f"    {f.filename}:{f.lineno} in {f.name}" + (f": {f.line.strip()}" if f.line else "")
        for f in frames[-limit:]
    ]
    return ("\n  where:\n" + "\n".join(lines)) if lines else ""


def _import(config: ModelConfig, module_name: str, what: str = "factory", target: str = "") -> Any:
    """``import module_name``; an ``ImportError`` passes through, anything else the
    module's own code raises (or ``sys.exit``) is a :class:`ConvcheckConfigError`."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise
    except SystemExit as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"called sys.exit({error.code!r}).\n  fix: keep script code under "
            f'`if __name__ == "__main__":` so that importing the module runs none of it.'
        ) from None
    except Exception as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: importing {module_name!r} ({what} {target!r}) "
            f"raised {type(error).__name__}: {error}{user_frames(error)}\n  fix: make the "
            f"module importable on its own."
        ) from None


HUBS = {
    "timm": ("timm", "timm.create_model(NAME, pretrained=False, **kwargs)"),
    "torchvision": ("torchvision", "torchvision.models.get_model(NAME, weights=None, **kwargs)"),
}
"""Factory prefixes that name a model of a library (random weights, nothing
downloaded): ``timm:resnet18``, ``torchvision:resnet18``."""


def _hub_factory(config: ModelConfig, hub: str, name: str) -> Any:
    """A factory building ``name`` from the library ``hub`` with random weights."""
    import importlib

    package, how = HUBS[hub]
    try:
        library = importlib.import_module(package)
        if hub == "torchvision":
            importlib.import_module("torchvision.models")
    except ImportError as error:
        raise ConvcheckConfigError(
            f"model {config.name!r}: factory '{hub}:{name}' needs {package!r}, which does not "
            f"import here ({error}).\n  fix: pip install {package} (into an environment that "
            f"already has torch, e.g. pip install --no-deps {package} plus its small "
            f"dependencies, so that pip keeps your torch build)."
        ) from None
    if hub == "timm":
        known = library.list_models()
        if name not in known:
            raise ConvcheckConfigError(
                f"model {config.name!r}: timm has no model {name!r}."
                f"{_close(name, list(known))}\n  fix: pick a name from timm.list_models()."
            )

        def build(**kwargs: Any) -> Any:
            return library.create_model(name, pretrained=False, **kwargs)

    else:
        models = library.models
        known = list(models.list_models())
        if name not in known:
            raise ConvcheckConfigError(
                f"model {config.name!r}: torchvision has no model {name!r}."
                f"{_close(name, known)}\n  fix: pick a name from "
                f"torchvision.models.list_models()."
            )

        def build(**kwargs: Any) -> Any:
            return models.get_model(name, weights=None, **kwargs)

    build.__name__ = name
    build.__doc__ = how.replace("NAME", repr(name))
    return build


def _from_file(config: ModelConfig, path_text: str, attr: str, what: str, target: str) -> Any:
    """``path/to/file.py:Name``: the file (relative to :attr:`ModelConfig.root`) loaded
    as a module of its own, and ``Name`` in it."""
    import importlib.util
    import sys

    path = Path(path_text).expanduser()
    if not path.is_absolute() and config.root is not None:
        path = config.root / path
    if not path.is_file():
        raise ConvcheckConfigError(
            f"model {config.name!r}: {what} {target!r}: no file at {path}.\n  fix: give the "
            f"file's path relative to {config.root or 'the working folder'}, or a module path "
            f"(mypkg.models:Net)."
        )
    module_name = f"_convcheck_file_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConvcheckConfigError(
                f"model {config.name!r}: {what} {target!r}: {path} is not a Python file.\n  "
                f"fix: point it at a .py file."
            )
        module = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:  # its sibling modules import as in a script
            sys.path.append(str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise ConvcheckConfigError(
                f"model {config.name!r}: running {path} ({what} {target!r}) raised "
                f"{type(error).__name__}: {error}{user_frames(error)}\n  fix: make the file "
                f"importable on its own."
            ) from None
        sys.modules[module_name] = module
    found = getattr(module, attr, None)
    if found is None or not callable(found):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ConvcheckConfigError(
            f"model {config.name!r}: {path} defines no callable {attr!r}.{_close(attr, names)}"
            f"\n  fix: point {what} at a class or function of that file."
        )
    return found


def import_factory(config: ModelConfig) -> Any:
    """The callable that ``config.factory`` names (see :func:`import_object`)."""
    return import_object(config, config.factory, "factory")


def import_object(config: ModelConfig, target: str, what: str) -> Any:
    """The callable that ``target`` (``module:name``) names, imported the way the user expects of
    a project-relative path: from the installed packages, else from the project's
    folder (:attr:`ModelConfig.root`, and ``root/src``), which is then added to the
    end of ``sys.path`` (so later imports inside the module find their siblings).
    Raises :class:`ConvcheckConfigError` with what was searched and, for a typo, the
    nearest name ("did you mean 'SmallClassifier'?")."""
    import importlib
    import sys

    module_name, _, attr = target.partition(":")
    if what == "factory" and module_name in HUBS:
        return _hub_factory(config, module_name, attr)
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        return _from_file(config, module_name, attr, what, target)
    folders = _project_folders(config.root)
    top = module_name.split(".")[0]
    try:
        module = _import(config, module_name, what, target)
    except ImportError as error:
        home = next((f for f in folders if _defines(f, top)), None)
        if home is None or str(home) in sys.path or getattr(error, "name", None) != top:
            raise _import_error(config, module_name, error, folders, what, target) from None
        sys.path.append(str(home))
        importlib.invalidate_caches()
        try:
            module = _import(config, module_name, what, target)
        except ImportError as again:
            raise _import_error(config, module_name, again, folders, what, target) from None
    found: Any = module
    for depth, part in enumerate(attr.split(".")):
        try:
            found = getattr(found, part)
        except AttributeError:
            owner = ".".join([module_name, *attr.split(".")[:depth]])
            names = [n for n in dir(found) if not n.startswith("_")]
            defined = [
                n
                for n in names
                if callable(getattr(found, n, None))
                and getattr(getattr(found, n, None), "__module__", None) == module_name
            ]
            hint = _close(part, names)
            listing = f" It defines: {', '.join(defined[:8])}." if defined and not hint else ""
            raise ConvcheckConfigError(
                f"model {config.name!r}: {owner!r} has no attribute {part!r} ({what} "
                f"{target!r}).{hint}{listing}\n  fix: point {what} at a class or function "
                f"that {owner!r} defines (check the spelling after the colon)."
            ) from None
    if not callable(found):
        raise ConvcheckConfigError(
            f"model {config.name!r}: {what} {target!r} is not callable.\n  fix: point {what} at "
            + (
                "a class or a function that returns the model."
                if what == "factory"
                else "a function returning (args, kwargs)."
            )
        )
    return found
