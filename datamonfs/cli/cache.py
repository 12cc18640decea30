"""datamonfs cache status | prefetch | clear"""

from __future__ import annotations

import click

from ..cache import CachedChunkReader, clear_locations, clear_unused, open_cache, warm
from ..cache.in_place import reads_in_place
from .bundle import filter_option
from .common import (emit_json, human_size, info, json_option, load_config, open_repository,
                     progress_bar, socket_option)
from .completion import complete_ref
from .node import locality


@click.group()
def cache() -> None:
    """The local block cache shared by every datamonfs process.

    It lives in the XDG cache directory, or where the config key cache_dir or
    the environment variable DATAMONFS_CACHE_DIR says. Its size limit is the
    config key cache_size (bytes); by default 10 GiB or 20% of the free space,
    whichever is smaller. It holds chunks of GCS stores and of local stores on
    network file systems: a local store on a local disk is read in place.
    """


@cache.command("status")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@socket_option
@json_option
def status(refs: tuple[str, ...], socket_path: str | None, as_json: bool) -> None:
    """Size, limit, entries and hit/miss counts of the cache, and how much of each bundle
    it holds: of each REF, and, when a daemon runs, of the bundles it mounted lately."""
    found = locality(refs, socket_path)
    stats, bundles = found["cache"], found["bundles"]
    if as_json:
        emit_json({**stats, "bundles": bundles})
        return
    share = 100 * stats["size"] / stats["limit"]
    click.echo(f"directory\t{stats['directory']}" + ("" if stats["available"] else " (unusable)"))
    click.echo(f"size\t{human_size(stats['size'])} of {human_size(stats['limit'])} ({share:.0f}%)")
    click.echo(f"blocks\t{stats['entries']}")
    click.echo(f"metadata\t{stats['meta_entries']} objects, {human_size(stats['meta_bytes'])}")
    click.echo(f"hits\t{stats['hits']}")
    click.echo(f"misses\t{stats['misses']}")
    click.echo(f"fetched\t{human_size(stats['bytes_fetched'])}")
    for b in bundles:
        names = "".join(f" {b['repo']}:{n}" for n in b["labels"])
        click.echo(f"bundle\t{b['repo']}:{b['bundle'][:12]}{names}\t{100 * b['fraction']:.0f}% "
                   f"of {human_size(b['bytes'])} cached")


@cache.command("prefetch")
@click.argument("ref", shell_complete=complete_ref)
@filter_option
def prefetch(ref: str, pattern: str | None) -> None:
    """Fetch the files of bundle REF (REPO:REF) into the cache (nothing for a
    local store on a local disk: it is read in place)."""
    cfg = load_config()
    blocks, _ = open_cache(cfg)
    repository = open_repository(cfg)
    b = repository.resolve(ref)
    if reads_in_place(repository.store):
        info(f"{repository.store.url} is a local store: its files are read in place, "
             "there is nothing to prefetch")
        return
    count = total = 0
    for _, entry in warm.files(repository, b, pattern):
        count += 1
        total += entry.size
    if total > blocks.limit:
        info(f"warning: {human_size(total)} to prefetch is more than the cache limit "
             f"({human_size(blocks.limit)}); only the last part read stays cached")
    before = blocks.stats()["bytes_fetched"]
    reader = CachedChunkReader(blocks, repository.chunks)
    try:
        with progress_bar(total, "prefetching") as progress:
            warm.warm(repository, reader, b, pattern, progress)
    finally:
        reader.close()
    fetched = blocks.stats()["bytes_fetched"] - before
    info(f"{count} files, {human_size(total)}; {human_size(fetched)} fetched from the store")


@cache.command("clear")
def clear() -> None:
    """Empty the cache (blocks, metadata, what is known of stores' packs, and counters)."""
    cfg = load_config()
    if not clear_unused(cfg.cache_dir):  # in use: clear it through the index
        blocks, meta = open_cache(cfg)
        blocks.clear()
        meta.clear()
        clear_locations(blocks.index)
    info(f"cleared the cache in {cfg.cache_dir}")
