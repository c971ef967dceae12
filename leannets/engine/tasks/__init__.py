"""Registered tasks. Importing this package imports every module in it, so a new task only needs
``leannets/engine/tasks/<name>.py`` with a ``@register_task("...")`` class (see ``engine/task.py``)."""
import importlib
import pkgutil

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
