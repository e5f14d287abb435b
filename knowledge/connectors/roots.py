"""The one guard for local paths a source may read: allowed roots, and folders that are never read.

A directory source (or a git source given a local path) names a folder on the server. Without a guard,
whoever may create a source reads any file the service user can: its database, its secret key, the
bootstrap admin key. ``SourceRoots`` allows only folders under the roots an administrator configured,
never one inside (or containing) a protected folder such as Magnet's data dir, and judges the *resolved*
path, so neither ``..`` nor a symlink can lead out. Errors show paths relative to their root, never the
server's absolute paths.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class PathRefused(ValueError):
    """A path the source-root rules refuse; the message names the rule (and never an absolute path)."""


@dataclass(frozen=True)
class SourceRoots:
    """Allowed roots and protected folders, both resolved when built."""

    roots: tuple[Path, ...]
    protected: tuple[Path, ...] = ()

    @classmethod
    def of(cls, roots: Iterable[str | os.PathLike], protected: Iterable[str | os.PathLike] = ()) -> SourceRoots:
        return cls(tuple(Path(r).resolve() for r in roots), tuple(Path(p).resolve() for p in protected))

    def check(self, path: str | os.PathLike, setting: str = "path") -> Path:
        """The resolved folder if the rules allow reading it; PathRefused naming the rule otherwise."""
        raw = Path(path).expanduser()
        if not raw.is_absolute():
            raise PathRefused(f"{setting}: must be an absolute path under one of the source roots "
                              "(MAGNET_SOURCE_ROOTS)")
        resolved = raw.resolve()  # follows every symlink and '..' that exists: judge where it really leads
        for folder in self.protected:
            if resolved.is_relative_to(folder) or folder.is_relative_to(resolved):
                raise PathRefused(f"{setting}: Magnet's own data folder is never read by a source, and a "
                                  "source folder may not contain it")
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise PathRefused(f"{setting}: {self.display(raw)} is outside the source roots an administrator "
                              "allowed (MAGNET_SOURCE_ROOTS)")
        return resolved

    def root_of(self, resolved: Path) -> Path | None:
        """The longest allowed root that holds ``resolved`` (already resolved), or None."""
        holders = [root for root in self.roots if resolved.is_relative_to(root)]
        return max(holders, key=lambda r: len(r.parts)) if holders else None

    def is_protected(self, resolved: Path) -> bool:
        return any(resolved.is_relative_to(folder) for folder in self.protected)

    def display(self, path: str | os.PathLike) -> str:
        """``path`` as users may see it: relative to its root (``<root>/docs``), or only its last part."""
        resolved = Path(path).expanduser().resolve()
        root = self.root_of(resolved)
        if root is None:
            return f"…/{resolved.name}" if resolved.name else "(a folder)"
        relative = resolved.relative_to(root).as_posix()
        return f"<{root.name}>" if relative == "." else f"<{root.name}>/{relative}"
