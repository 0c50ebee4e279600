"""What a stimulus set records about how it was made: the package versions (torch-free)."""
from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("interpsy", "torch", "torchvision", "timm", "open_clip_torch", "numpy", "scipy",
            "pillow", "torch-lucent", "efficientnet-lite-pytorch")


def versions() -> dict[str, str]:
    """Python's version and those of the installed packages a set can depend on."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found
