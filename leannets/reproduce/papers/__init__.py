"""Per-paper experiment declarations (one module per paper, each with ``paper() -> Paper``)."""
