"""Installed size of the serving and the full install: what each Docker image holds in Python
packages, measured on venvs built the same way (no Docker engine needed).

    bash scripts/serving-venv.sh /tmp/serving          # requirements-serving.lock + serving code
    python3 -m venv /tmp/full && /tmp/full/bin/pip install -r requirements-runtime.lock \
        && /tmp/full/bin/pip install --no-deps .      # what the Dockerfile's `full` target holds
    python bench/image_size.py --serving /tmp/serving --full /tmp/full

Prints `du -sh` of each site-packages, the largest distributions of each (the sum of the files
its RECORD lists) and what the full install holds that the serving one does not.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.machine import describe_machine


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise SystemExit(f"{venv} is not a venv (no lib/python*/site-packages)")
    return found[0]


def du_mb(path: Path) -> float:
    """`du -sk`, in MB (what the image layer holds, directories and all)."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def installed_files(site: Path) -> dict[str, tuple[int, list[str]]]:
    """{file path inside `site`: (bytes, the distributions whose RECORD lists it)}. mlflow,
    mlflow-skinny and mlflow-tracing install into the same mlflow/ folder: one file, several
    owners, counted once."""
    files: dict[str, tuple[int, list[str]]] = {}
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"].lower().replace("_", "-")
        for file in dist.files or ():
            path = Path(dist.locate_file(file)).resolve()
            if path.is_file() and path.is_relative_to(site.resolve()):
                key = path.relative_to(site.resolve()).as_posix()
                size, owners = files.get(key, (path.stat().st_size, []))
                files[key] = (size, [*owners, name])
    return files


def by_distribution(files: dict[str, tuple[int, list[str]]], prefer: set[str]) -> dict[str, float]:
    """{distribution: MB}, each file counted once, for the owner in `prefer` if any."""
    sizes: dict[str, float] = {}
    for size, owners in files.values():
        owner = next((o for o in sorted(owners) if o in prefer), sorted(owners)[0])
        sizes[owner] = sizes.get(owner, 0.0) + size / 2**20
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving", type=Path, default=Path(".venv-serving"))
    parser.add_argument("--full", type=Path, required=True)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    sites = {"serving": site_packages(args.serving), "full": site_packages(args.full)}
    files = {name: installed_files(site) for name, site in sites.items()}
    print("\n| install | site-packages (du) | distributions | largest (MB) |")
    print("|---|---:|---:|---|")
    for name, site in sites.items():
        sizes = by_distribution(files[name], set())
        largest = sorted(sizes.items(), key=lambda kv: -kv[1])[: args.top]
        listed = ", ".join(f"{k} {v:.0f}" for k, v in largest)
        print(f"| {name} | {du_mb(site):.0f} MB | {len(sizes)} | {listed} |")
    serving_names = {o for _, owners in files["serving"].values() for o in owners}
    extra = {k: v for k, v in files["full"].items() if k not in files["serving"]}
    only = by_distribution(
        extra, {o for _, owners in extra.values() for o in owners} - serving_names
    )
    total = sum(size for size, _ in extra.values()) / 2**20
    print(f"\nFiles in full, not in serving: {total:.0f} MB, by distribution:")
    for name, mb in sorted(only.items(), key=lambda kv: -kv[1]):
        if mb >= 0.05:
            print(
                f"  {name:<28} {mb:6.1f} MB{'' if name not in serving_names else '  (files of it only the full install has)'}"
            )


if __name__ == "__main__":
    main()
