"""Optional extras in the checks: skip with the reason on a lighter install, fail under CI.

CI installs every extra (`.[all]`), so there a missing one is an error, never a silent skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Return the imported `module`; without it skip naming the extra, or raise when CI is set."""
    try:
        return importlib.import_module(module)
    except ImportError as missing:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise ImportError(f"CI={os.environ['CI']} installs the extra `{extra}`, but "
                              f"{missing}") from None  # fmt: skip
        pytest.skip(f"{module} is not installed ({missing}); pip install -e '.[{extra}]' runs "
                    "this check")  # fmt: skip
