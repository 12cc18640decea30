#!/usr/bin/env bash
# The main job on the embedded local store, in a scratch home under build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
home=$PWD/build/demo
rm -rf "$home" && mkdir -p "$home"
export XDG_CONFIG_HOME=$home/config XDG_DATA_HOME=$home/data XDG_CACHE_HOME=$home/cache \
       XDG_STATE_HOME=$home/state XDG_RUNTIME_DIR=$home/run
unset DATAMONFS_STORE DATAMONFS_CONFIG DATAMONFS_SOCKET
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step datamonfs config create --name "Ada" --email ada@example.org
step datamonfs repo create imagery -d "satellite tiles"
python scripts/make_sample.py "$home/tiles"
step datamonfs bundle upload imagery "$home/tiles" -m "first cut" --label v1
step datamonfs bundle files imagery:v1 --filter 'tiles/tile_00*'
echo "one more tile" > "$home/tiles/tiles/extra.txt"
printf 'tile,lat,lon\n' > "$home/tiles/index.csv"
step datamonfs bundle upload imagery "$home/tiles" -m "second cut" --label v2
step datamonfs bundle list imagery -n 5
step datamonfs bundle diff imagery:v1 imagery:v2
step datamonfs bundle download imagery:v1 "$home/copy"
cmp "$home/copy/mosaic.raw" "$home/tiles/mosaic.raw" && echo "mosaic.raw downloaded intact"

# Mount v1 lazily (the daemon starts on demand) and read from it.
mkdir -p "$home/mnt"
trap 'datamonfs unmount "$home/mnt" >/dev/null 2>&1 || true; datamonfs daemon stop >/dev/null 2>&1 || true' EXIT
step datamonfs mount imagery:v1 "$home/mnt"
step datamonfs mounts
step ls -l "$home/mnt" "$home/mnt/tiles" | head -12
cmp "$home/mnt/mosaic.raw" "$home/tiles/mosaic.raw" && echo "mosaic.raw read through the mount intact"
step head -3 "$home/mnt/index.csv"
step datamonfs unmount "$home/mnt"

# Mount the head of main writable, change it, and commit the change as a new bundle.
trap 'datamonfs unmount --discard "$home/mnt" >/dev/null 2>&1 || true; datamonfs daemon stop >/dev/null 2>&1 || true' EXIT
step datamonfs mount --rw imagery:main "$home/mnt"
echo "cleaned" > "$home/mnt/tiles/cleaned.txt"
rm "$home/mnt/tiles/tile_019.bin"
step datamonfs status "$home/mnt"
step datamonfs commit "$home/mnt" -m "cleaned tiles" --label v3
step datamonfs unmount "$home/mnt"
step datamonfs bundle list imagery -n 5
step datamonfs bundle diff imagery:v2 imagery:v3
step datamonfs daemon stop
echo
echo "demo done: everything lives under $home"
