"""Finding pipelines: the builtin flagship plus user files (``--pipelines FILE`` or
``HEADWATER_PIPELINE_FILES``, ``os.pathsep``-separated). Any module-level :class:`Pipeline` counts,
as in an Airflow DAG folder.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from headwater.errors import ConfigError
from headwater.orchestration.pipeline import Pipeline

BUILTIN_MODULES = ("headwater.pipelines.customer_analytics",)
FILES_ENV = "HEADWATER_PIPELINE_FILES"


def _pipelines_in(module: ModuleType) -> list[Pipeline]:
    return [v for v in vars(module).values() if isinstance(v, Pipeline)]


def _import_file(path: Path) -> ModuleType:
    if not path.exists():
        raise ConfigError(f"pipeline file {path} does not exist")
    name = f"headwater_user_pipelines_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import pipeline file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_pipelines(files: Iterable[Path] = (), *, builtins: bool = True) -> dict[str, Pipeline]:
    """All known pipelines by id; a duplicate id is a configuration error."""
    modules: list[ModuleType] = []
    if builtins:
        modules += [importlib.import_module(m) for m in BUILTIN_MODULES]
    env_files = [Path(p) for p in os.environ.get(FILES_ENV, "").split(os.pathsep) if p]
    modules += [_import_file(Path(f)) for f in [*env_files, *files]]
    found: dict[str, Pipeline] = {}
    for module in modules:
        for p in _pipelines_in(module):
            if p.pipeline_id in found and found[p.pipeline_id] is not p:
                raise ConfigError(f"pipeline id {p.pipeline_id!r} is defined twice")
            found[p.pipeline_id] = p
    return found


def get_pipeline(pipeline_id: str, files: Iterable[Path] = ()) -> Pipeline:
    known = load_pipelines(files)
    if pipeline_id not in known:
        raise ConfigError(f"unknown pipeline {pipeline_id!r}; known: {', '.join(sorted(known)) or 'none'}")
    return known[pipeline_id]
