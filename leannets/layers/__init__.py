"""Building blocks. Importing this package registers every conv type and activation."""
import importlib
import pkgutil

from .create_act import create_act, list_acts, register_act
from .create_conv import ConvBn, ConvBnAct, create_conv, list_conv_types, register_conv_type
from .se import SqueezeExcite, make_divisible

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["ConvBn", "ConvBnAct", "SqueezeExcite", "create_act", "create_conv", "list_acts",
           "list_conv_types", "make_divisible", "register_act", "register_conv_type"]
