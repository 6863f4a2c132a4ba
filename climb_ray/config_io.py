"""Read a Config from YAML plus dotted `key=value` overrides, and write it back out."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path

import yaml

from climb_ray.config import Config, ConfigError
from climb_ray.config_checks import validate


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults <- YAML file at `path` <- each `section.field=value` override, then validated."""
    data: dict = {}
    if path is not None:
        data = _read_yaml(Path(path))
    cfg = from_dict(Config, data, prefix="")
    for item in overrides:
        apply_override(cfg, item)
    return validate(cfg)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {err}".splitlines()[0]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def from_dict(cls, data: dict, prefix: str):
    """Build dataclass `cls` from a mapping; unknown keys and wrong types name the dotted field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}={data!r}: must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown(prefix + str(key), names, prefix))
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = from_dict(hints[key], value or {}, prefix + key + ".")
        else:
            kwargs[key] = coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _unknown(dotted: str, names: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(dotted.split(".")[-1], names, n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    return f"{dotted}: no such config field{hint}"


def apply_override(cfg: Config, item: str) -> None:
    """Set one `section.field=value` on cfg in place; the value is parsed as YAML, then typed."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like section.field=value")
    dotted, raw = item.split("=", 1)
    dotted = dotted.strip()
    *parents, leaf = dotted.split(".")
    target, prefix = cfg, ""
    for part in parents:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            raise ConfigError(_unknown(prefix + part, _field_names(target), prefix))
        target, prefix = getattr(target, part), prefix + part + "."
    hints = typing.get_type_hints(type(target))
    if leaf not in hints or dataclasses.is_dataclass(hints[leaf]):
        raise ConfigError(_unknown(dotted, _field_names(target), prefix))
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    setattr(target, leaf, coerce(value, hints[leaf], dotted))


def _field_names(obj) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def coerce(value, hint, dotted: str):
    """Return `value` as type `hint` (int, float, bool, str or list of them) or raise ConfigError."""
    origin = typing.get_origin(hint)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value] if not isinstance(value, str) else _split_list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{dotted}={value!r}: must be a list")
        return [coerce(v, item_type, f"{dotted}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}={value!r}: must be true or false")
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            value = _parse_number(value, int, dotted)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}={value!r}: must be an integer")
    if hint is float:
        if isinstance(value, str):
            value = _parse_number(value, float, dotted)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{dotted}={value!r}: must be a number")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{dotted}={value!r}: must be a string")
    raise ConfigError(f"{dotted}: unsupported field type {hint!r}")


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_number(text: str, kind, dotted: str):
    try:
        return kind(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{dotted}={text!r}: must be {'an integer' if kind is int else 'a number'}") from None


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
