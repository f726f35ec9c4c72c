"""The bake stage: a snapshot into a verified image. The build (:mod:`.build`) plans the recipe
(:mod:`..recipe`), prepares local sources (:mod:`.local_sources`) and wheels (:mod:`.wheelhouse`), builds through
the engine, and tags only after the check (:mod:`.check`) found no drift; :mod:`.kernel_layer` adds ipykernel on
top for restored kernels."""
from __future__ import annotations

from .build import BuildResult, build, check, recipe_notes, resolve_base, write_dockerfile

__all__ = ["BuildResult", "build", "check", "recipe_notes", "resolve_base", "write_dockerfile"]
