"""The environment variables datamonfs reads: one list, for --help, docs/CLI.md and the README."""

from __future__ import annotations

ENVIRONMENT: list[tuple[str, str]] = [
    ("DATAMONFS_CONFIG", "the config file (default $XDG_CONFIG_HOME/datamonfs/config.toml)"),
    ("DATAMONFS_STORE", "the store URL, over the config's (a relative path is made absolute)"),
    ("DATAMONFS_STORE_TIMEOUT", "seconds a store call may take, retries included (default 60)"),
    ("DATAMONFS_CACHE_DIR", "the block cache directory (default $XDG_CACHE_HOME/datamonfs)"),
    ("DATAMONFS_SOCKET", "the daemon's control socket (default $XDG_RUNTIME_DIR/datamonfs/"
                         "daemon.sock)"),
    ("DATAMONFS_SOCKET_GROUP", "a group whose members may use the daemon (daemon start)"),
    ("DATAMONFS_COMMIT_TIMEOUT", "seconds the CLI waits for a commit (default 86400)"),
    ("DATAMONFS_MOUNT_TIMEOUT", "seconds the daemon waits for a mount to be ready (default 120)"),
    ("DATAMONFS_READ_AHEAD_KB", "the kernel read-ahead of mounts, as root (default 1024)"),
    ("DATAMONFS_PROGRESS_INTERVAL", "seconds between progress lines when stderr is not a "
                                    "terminal (default 30)"),
    ("DATAMONFS_POD_NAMESPACE", "in a pod: its namespace (Downward API); with "
                                "DATAMONFS_POD_NAME, run, wait and pod ask the node daemon"),
    ("DATAMONFS_POD_NAME", "in a pod: its name (Downward API; docs/KUBERNETES.md)"),
    ("DATAMONFS_MOUNTS", "in a pod: where the container mounts the node's ROOT/mounts "
                         "(default /var/lib/datamonfs/mounts)"),
    ("STORAGE_EMULATOR_HOST", "a GCS emulator to use instead of GCS (anonymous access)"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "GCS credentials when the config names none "
                                       "(Google's usual chain)"),
    ("XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_CACHE_HOME, XDG_STATE_HOME, XDG_RUNTIME_DIR",
     "where config, default store, cache, daemon state and socket live"),
]


def help_text() -> str:
    width = max(len(name) for name, _ in ENVIRONMENT if "," not in name)
    lines = ["\b", "Environment:"]
    for name, what in ENVIRONMENT:
        if "," in name:
            lines.append(f"  {'XDG_*_HOME, XDG_RUNTIME_DIR'.ljust(width)}  {what}")
        else:
            lines.append(f"  {name.ljust(width)}  {what}")
    return "\n".join(lines)
