"""CLI sub-commands, one module each, discovered by ``leannets.cli``."""
