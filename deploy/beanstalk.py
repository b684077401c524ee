"""Build the Elastic Beanstalk source bundle: what the Docker platform needs to build the image, nothing more.

    python -m deploy.beanstalk [--out dist/ride-duration-eb.zip]      # `make eb-bundle`

The bundle holds the Dockerfile, its .dockerignore, every file the Dockerfile COPYs from the
build context, and Elastic Beanstalk's own settings (.ebextensions/, .platform/). The Dockerfile
is the one list of what the image needs: a new COPY line brings its files into the bundle.
Files are taken as git tracks them (no caches, no local data), in a fixed order with fixed
times, so the same commit always gives the same zip.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "dist" / "ride-duration-eb.zip"
BEANSTALK_SETTINGS = (".ebextensions", ".platform")
BUILD_FILES = ("Dockerfile", ".dockerignore")


def copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths the Dockerfile COPYs or ADDs (not those copied from another stage)."""
    sources: list[str] = []
    for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        words = line.split()
        if not words or words[0].upper() not in {"COPY", "ADD"}:
            continue
        if any(word.startswith("--from") for word in words[1:]):
            continue
        args = [word for word in words[1:] if not word.startswith("--")]
        sources += [source.rstrip("/") for source in args[:-1]]  # the last is the destination
    return sources


def tracked_files(repo: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True)
    return [name for name in listed.stdout.decode().split("\0") if name]


def bundle_files(repo: Path = REPO) -> list[str]:
    """Every file that goes into the bundle, as repo-relative paths, sorted."""
    roots = [*BUILD_FILES, *copy_sources(repo / "Dockerfile"), *BEANSTALK_SETTINGS]
    files = [name for name in tracked_files(repo) if any(_within(name, root) for root in roots)]
    missing = [root for root in roots if not any(_within(name, root) for name in files)]
    if missing:
        raise SystemExit(f"the bundle would lack {', '.join(missing)}: not tracked by git in {repo}")
    return sorted(files)


def _within(name: str, root: str) -> bool:
    """Whether repo path `name` is `root` itself or lies under it."""
    return name == root or name.startswith(f"{root}/")


def write_bundle(out: Path, repo: Path = REPO) -> list[str]:
    """Write the zip; return what it holds."""
    names = bundle_files(repo)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((repo / name).stat().st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, (repo / name).read_bytes())
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    names = write_bundle(args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:12]
    size_mb = args.out.stat().st_size / 1e6
    print(f"{args.out}: {len(names)} files, {size_mb:.1f} MB, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
