"""What the tests share, one module per thing, imported as `from support.X import ...`
(tests/conftest.py puts tests/ on the path):

    cli         the real `datamonfs` command in an isolated environment
    daemon      a daemon on a socket of its own, cleaned up by pid
    processes   finding and ending processes and mounts by pid
    gcs         the GCS emulator on a free port, buckets in it
    files       making folders; snapshots of a folder or a bundle to compare
    cache       counting stores, chunks and caches for the cache tests
    writable    writable mounts without a daemon (writable_harness.py, a child process)
    planting    hostile store content
    fs_api      file system operations driven in-process, without a kernel
    overlays    an overlay written by schema-1 code (tests/data/overlay-v1)
"""
