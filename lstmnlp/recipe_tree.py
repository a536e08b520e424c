"""Recipe files as nested dicts: YAML read with errors that name the file, and `a.b=value`
overrides (`--set`) applied to the tree before it becomes an ExperimentConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lstmnlp.errors import UserError


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from `path`, or raise UserError naming the file."""
    if not path.exists():
        raise UserError(f"{path}: recipe not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a YAML recipe")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of sections")
    return tree


def parse_override(text: str) -> tuple[str, Any]:
    """Split `a.b=value`; the value is read as YAML (so 3, 0.1, true, null keep their types)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=0.001")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `tree[a][b] = value` for key `a.b`, creating sections as needed."""
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
