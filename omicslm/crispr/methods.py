"""Method kinds of the CRISPR branch and the checks of their config blocks (no torch import: the Snakefile uses it)."""

from __future__ import annotations

KINDS = ("lora", "frozen", "finetune", "cnn", "gbm", "stack")
ENCODER_KINDS = ("lora", "frozen", "finetune")  # kinds that need the DNABERT encoder


def check_stack_methods(methods: dict) -> None:
    """Raise ``ValueError`` when a ``stack`` method names no members, an unknown method or another stack."""
    for name, spec in methods.items():
        if spec.get("kind") != "stack":
            continue
        members = spec.get("members") or []
        if not members:
            raise ValueError(f"crispr method {name} (kind stack) needs a non-empty `members` list")
        for m in members:
            if m not in methods:
                raise ValueError(f"crispr method {name}: member {m!r} is not an (enabled) method in "
                                 "crispr.models.methods")
            if methods[m].get("kind") == "stack":
                raise ValueError(f"crispr method {name}: member {m!r} is itself a stack; stack trained methods only")
