"""User configuration and the XDG directories datamonfs keeps its state in.

The config file is TOML: $DATAMONFS_CONFIG, else $XDG_CONFIG_HOME/datamonfs/config.toml.
$DATAMONFS_STORE overrides its store and $DATAMONFS_CACHE_DIR its cache directory. A local
store is always kept as an absolute file:// URL (a relative one in $DATAMONFS_STORE is
taken from the working directory, one in the file from the file's directory), so every
process, the daemon's too, means the same directory.
With no config at all the store is a local directory under the XDG data
directory, so nothing needs a cloud account; only commands that record an
author (uploads, refs) need `datamonfs config create`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass

from ..errors import ConfigError
from .chunks import LARGEST_CHUNK
from .repository import Author
from .stores import StoreSpec, absolute_url

KEYS = {"name": str, "email": str, "store": str, "credential": str, "cache_dir": str,
        "cache_size": int, "commit_on_unmount": bool,
        "node": dict}  # the node daemon's table (daemon/node_config.py checks it); ignored here


def _xdg(var: str, fallback: str) -> str:
    return os.environ.get(var) or os.path.join(os.path.expanduser("~"), fallback)


def config_path() -> str:
    return os.environ.get("DATAMONFS_CONFIG") or os.path.join(
        _xdg("XDG_CONFIG_HOME", ".config"), "datamonfs", "config.toml")


def data_dir() -> str:
    return os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), "datamonfs")


def cache_dir() -> str:
    return os.path.join(_xdg("XDG_CACHE_HOME", ".cache"), "datamonfs")


def state_dir() -> str:
    return os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), "datamonfs")


def check_cache_size(size: int, where: str = "cache_size") -> int:
    """A cache must hold at least one chunk of the largest size."""
    if type(size) is not int or size < LARGEST_CHUNK:
        raise ConfigError(f"{where} = {size!r} is smaller than one chunk; set it to at least "
                          f"{LARGEST_CHUNK} bytes (4 MiB), or remove it for the default")
    return size


def default_store() -> str:
    return "file://" + os.path.join(data_dir(), "store")


@dataclass
class Config:
    name: str | None = None
    email: str | None = None
    store: str = ""
    store_is_default: bool = False  # no store configured: the default store may be created
    credential: str = ""  # a GCS credentials JSON file; "": Google's usual chain
    cache_dir: str = ""
    cache_size: int | None = None
    commit_on_unmount: bool = True  # unmount of a writable mount commits what is staged
    path: str = ""
    exists: bool = False

    @property
    def author(self) -> Author:
        if not self.name or not self.email:
            raise ConfigError(f"no author configured ({self.path} has no name and email); run "
                              "'datamonfs config create --name NAME --email EMAIL'")
        return Author(self.name, self.email)

    def store_spec(self) -> StoreSpec:
        """What opening this config's store needs, also in another process (the daemon)."""
        return StoreSpec.from_environment(self.store, self.credential)


def load(path: str | None = None) -> Config:
    """The config of `path` (default: config_path()), with the environment's overrides."""
    by = "" if path else " (named by DATAMONFS_CONFIG)"
    named = path or os.environ.get("DATAMONFS_CONFIG")
    path = path or config_path()
    exists = os.path.exists(path)
    if not exists and named:
        raise ConfigError(f"config {path}{by} does not exist; create it with "
                          "'datamonfs config create'")
    values = read_file(path)
    store = ""
    if os.environ.get("DATAMONFS_STORE"):
        store = absolute_url(os.environ["DATAMONFS_STORE"])
    elif values.get("store"):
        store = absolute_url(values["store"], os.path.dirname(os.path.abspath(path)))
    cache = os.environ.get("DATAMONFS_CACHE_DIR") or values.get("cache_dir") or cache_dir()
    size = values.get("cache_size")
    if size is not None:
        check_cache_size(size, f"config {path}: cache_size")
    return Config(name=values.get("name"), email=values.get("email"),
                  store=store or default_store(), store_is_default=not store,
                  credential=values.get("credential", ""),
                  cache_dir=os.path.expanduser(cache), cache_size=size,
                  commit_on_unmount=values.get("commit_on_unmount", True), path=path,
                  exists=exists)


def read_file(path: str | None = None) -> dict:
    """The keys the config file sets (none when there is no file), checked."""
    path = path or config_path()
    if not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}; fix it or recreate it with "
                          "'datamonfs config create'") from None
    for key, value in values.items():
        if key not in KEYS or not isinstance(value, KEYS[key]):
            raise ConfigError(f"config {path}: unknown key or wrong type for {key!r}; "
                              f"known keys: {', '.join(KEYS)}")
    return values


def parse_value(key: str, text: str):
    """A value given on the command line for `key`, of the key's type."""
    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(KEYS)}")
    kind = KEYS[key]
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"{key} takes true or false, not {text!r}")
        return text.lower() == "true"
    if kind is int:
        try:
            return check_cache_size(int(text), key) if key == "cache_size" else int(text)
        except ValueError:
            raise ConfigError(f"{key} takes a number of bytes, not {text!r}") from None
    if key in ("cache_dir", "credential"):
        return os.path.abspath(os.path.expanduser(text))
    if key == "store":
        return absolute_url(text)
    return text


def save(values: dict) -> str:
    """Write a flat config file atomically (keys whose value is None are left out);
    returns its path."""
    path = config_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        # JSON string and integer syntax is valid TOML for these flat values.
        lines.append(f"{key} = {json.dumps(value)}")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path
