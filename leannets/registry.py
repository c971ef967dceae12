"""One registry class for every named plug-in: models, datasets, tasks, conv types, activations, recipes.

Each registry has the same rules: :meth:`Registry.register` raises when a name is taken,
:meth:`Registry.get` raises ``ValueError`` with "Did you mean ...?" suggestions, and
:meth:`Registry.names` filters with a shell-style pattern.
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Callable, Generic, Iterator, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what an entry is, used in messages ("model", "dataset", "conv_type", ...).
        recipe_key: the recipe key that names an entry (e.g. ``data.name``), shown in errors.
        loader: called once, before the first lookup, to import the modules (or scan the files) that
            register entries (kept lazy so that importing a registry does not import every plug-in).
        list_hint: what to say instead of listing every known name (for long registries).
    """

    def __init__(self, kind: str, *, recipe_key: str | None = None, loader: Callable[[], object] | None = None,
                 list_hint: str | None = None) -> None:
        self.kind = kind
        self.recipe_key = recipe_key
        self._loader = loader
        self._list_hint = list_hint
        self._entries: dict[str, T] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loader is None or self._loaded:
            return
        self._loaded = True  # set first: a loader that itself looks names up does not run again
        try:
            self._loader()
        except BaseException:
            self._loaded = False
            raise

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; ``ValueError`` if the name is already taken."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name: str | None = None) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object (default name: its ``__name__``)."""

        def wrap(entry: T) -> T:
            return self.register(name or entry.__name__, entry)  # type: ignore[attr-defined]

        return wrap

    def get(self, name: str) -> T:
        """The entry for ``name``; ``ValueError`` naming close matches and the known names otherwise."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown(name) from None

    def unknown(self, name: object) -> ValueError:
        """The error for an unknown ``name`` (also for callers that validate before :meth:`get`)."""
        where = f" (recipe key {self.recipe_key})" if self.recipe_key else ""
        close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = self._list_hint or f"Known: {', '.join(sorted(self._entries))}"
        return ValueError(f"unknown {self.kind} {name!r}{where}.{hint} {known}")

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style ``pattern``."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
