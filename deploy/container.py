"""Build and run the service's image with Docker when an engine answers, else with podman and buildah.

    python -m deploy.container build [--tag ride-duration:latest] [--base-image IMAGE]
    python -m deploy.container build --target slim --tag ride-duration:slim [--run-id RUN_ID]

`make image` and `make image-slim` run this; `make test-image` builds, runs and checks both
images (tests/deploy). The slim target bakes one run in (the embedded one unless --run-id).

Without Docker, buildah builds (chroot isolation: no daemon, no extra privileges) and podman
runs. When the base image (default python:3.11-slim) is neither local nor pullable, as on a
machine that reaches only package registries, a Debian bookworm base with its Python 3.11 is
made locally with debootstrap from the machine's own apt mirror.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TAG = "ride-duration:latest"
DEFAULT_BASE = "python:3.11-slim"
LOCAL_BASE = "localhost/ride-duration-base:bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Sandboxes that may not raise rlimits refuse podman's default ulimits: start containers without them.
PODMAN_CONF = REPO / "deploy" / "containers.conf"


class ContainerError(RuntimeError):
    """A container command failed; the message says which and what it printed."""


def run(command: list[str], timeout: float = 900, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise ContainerError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


@dataclass(frozen=True)
class Engine:
    """The commands that build images and run containers on this machine."""

    name: str  # "docker" or "podman"
    builder: str  # "docker" or "buildah"
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run([self.name, *args], timeout=timeout, check=check, env=self.env)

    def image_exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False).returncode == 0

    def pull(self, image: str) -> bool:
        return self("pull", image, timeout=600, check=False).returncode == 0

    def build(self, tag: str, base_image: str, target: str | None = None, run_id: str | None = None) -> None:
        args = ["--build-arg", f"BASE_IMAGE={base_image}", "-t", tag, "-f", str(REPO / "Dockerfile"), str(REPO)]
        if run_id:
            args[:0] = ["--build-arg", f"RUN_ID={run_id}"]
        if target:
            args[:0] = ["--target", target]
        if self.builder == "docker":
            run(["docker", "build", *args], env=self.env)
            return
        extra = ["--isolation", "chroot", "--format", "docker", "--layers"]  # docker format keeps HEALTHCHECK
        if CA_BUNDLE.is_file():  # the host's trust store, so pip trusts what the host trusts
            extra += ["--volume", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
        run(["buildah", "bud", *extra, *args], env=self.env)

    def inspect(self, target: str) -> dict:
        return json.loads(self("inspect", target).stdout)[0]

    def image_size_mb(self, image: str) -> float:
        return self.inspect(image)["Size"] / 1e6


def find_engine() -> Engine:
    """Docker if its daemon answers; otherwise podman with buildah."""
    env = dict(os.environ)
    if shutil.which("docker") and run(["docker", "info"], timeout=20, check=False, env=env).returncode == 0:
        return Engine("docker", "docker", env)
    if shutil.which("podman") and shutil.which("buildah"):
        env.setdefault("CONTAINERS_CONF", str(PODMAN_CONF))
        return Engine("podman", "buildah", env)
    raise ContainerError(
        "no container engine: start Docker, or install podman, buildah and runc (`make system-tools` on Debian)"
    )


def apt_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 .sources or a sources.list line)."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), re.MULTILINE):
            if "security" not in uri:
                return uri
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt").glob("sources.list.d/*.list"))]:
        if path.is_file():
            for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", path.read_text(), re.MULTILINE):
                if "security" not in match.group(1):
                    return match.group(1)
    raise ContainerError("no Debian mirror in /etc/apt: cannot make a base image with debootstrap")


def make_debian_base(engine: Engine, tag: str = LOCAL_BASE) -> str:
    """A minimal Debian bookworm (Python 3.11) image made with debootstrap and imported locally."""
    if not shutil.which("debootstrap"):
        raise ContainerError("the base image cannot be pulled and debootstrap is missing: `make system-tools`")
    with tempfile.TemporaryDirectory(prefix="ride-duration-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        packages = "python3,python3-venv,ca-certificates"
        run(["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs), apt_mirror()])
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([engine.name, "import", "-", tag], stdin=tar.stdout, capture_output=True,
                                  text=True, env=engine.env, check=False)  # fmt: skip
        tar.wait()
        if imported.returncode != 0:
            raise ContainerError(f"importing the base image failed: {imported.stderr}")
    return tag


def base_image(engine: Engine, wanted: str) -> str:
    """`wanted` if it is here or can be pulled; for the default, a local Debian base otherwise."""
    if engine.image_exists(wanted) or engine.pull(wanted):
        return wanted
    if wanted != DEFAULT_BASE:
        raise ContainerError(f"base image {wanted} is neither local nor pullable")
    if engine.image_exists(LOCAL_BASE):
        return LOCAL_BASE
    print(f"{wanted} cannot be pulled here: making {LOCAL_BASE} with debootstrap", file=sys.stderr)
    return make_debian_base(engine)


@dataclass(frozen=True)
class Built:
    tag: str
    base: str
    seconds: float
    size_mb: float


def build(tag: str = DEFAULT_TAG, wanted_base: str = DEFAULT_BASE, engine: Engine | None = None,
          target: str | None = None, run_id: str | None = None) -> Built:  # fmt: skip
    """Build the Dockerfile's `target` (default: its last stage, the full image) as `tag`."""
    engine = engine or find_engine()
    started = time.perf_counter()
    base = base_image(engine, wanted_base)
    engine.build(tag, base, target, run_id)
    return Built(tag, base, time.perf_counter() - started, engine.image_size_mb(tag))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--base-image", default=DEFAULT_BASE)
    parser.add_argument("--target", help="a stage of the Dockerfile: slim (default: the full image)")
    parser.add_argument("--run-id", help="the run the slim target bakes in (default: the embedded run)")
    args = parser.parse_args(argv)
    try:
        built = build(args.tag, args.base_image, target=args.target, run_id=args.run_id)
    except ContainerError as error:
        print(f"cannot build the image: {error}", file=sys.stderr)
        return 1
    print(f"built {built.tag} from {built.base} in {built.seconds:.0f} s: {built.size_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
