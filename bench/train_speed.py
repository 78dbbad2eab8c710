"""Training speed, before and after: the same commands run on two versions of the code.

    python bench/train_speed.py [--before GITREF] [--cases xeducation,flat400,quickstart]
                                [--repeat 1]

"before" is a git ref of this repository (extracted with `git archive` into a temporary
directory), "after" the working tree. Each case runs as a child process with PYTHONPATH pointing
at one version, before and after alternating (so both see the same machine), each in a fresh
directory with a fresh SQLite MLflow store. For every run the table gives the wall time, the
child's CPU seconds (user + system: steadier than wall time on a shared machine), its peak memory
and the load average when it started; the last column is the after/before ratio of CPU seconds.

Cases: `xeducation` (one `leadscore train` on ../shared/data/xeducation_leads.csv, flat, with the
README's exclusions), `flat400` (the same file's first 400 leads: command to registered model),
`quickstart` (`leadscore quickstart --no-serve`, 20,000 demo leads, end to end).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from bench.xeducation_cv import IDENTIFIERS, SALES_FILLED  # noqa: E402

XEDUCATION = ROOT.parent / "shared" / "data" / "xeducation_leads.csv"
# the CLI of whichever code PYTHONPATH points at (older checkouts have no leadscore/__main__.py)
LEADSCORE = "import sys; from leadscore.cli import main; sys.argv[0] = 'leadscore'; main()"


def _flat(leads: Path) -> list[str]:
    command = [
        "train",
        "--leads",
        str(leads),
        "--id",
        "Prospect ID",
        "--label",
        "Converted",
        "--json",
    ]
    for column in SALES_FILLED + IDENTIFIERS:
        command += ["--exclude", column]
    return command


def cases(work: Path) -> dict[str, list[str]]:
    flat400 = work / "xeducation_400.csv"
    if XEDUCATION.is_file():
        with XEDUCATION.open() as src, flat400.open("w") as out:
            for i, line in enumerate(src):
                if i > 400:
                    break
                out.write(line)
    return {
        "xeducation": _flat(XEDUCATION),
        "flat400": _flat(flat400),
        "quickstart": ["quickstart", "--no-serve"],
    }


def run(code: Path, arguments: list[str], where: Path) -> dict[str, float]:
    """One `leadscore` command on the code in `code`: wall, CPU seconds, peak RSS, load."""
    where.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "MLFLOW_TRACKING_URI": f"sqlite:///{where}/mlflow.db",
        "LEADSCORE_DATABASE_URL": f"sqlite:///{where}/leadscore.db",
    }
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", LEADSCORE, *arguments], cwd=where, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    assert child.stderr is not None
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if status != 0:
        raise SystemExit(f"{' '.join(arguments[:1])} failed on {code}:\n{errors[-3000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_gb": usage.ru_maxrss / 2**20,
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--before",
        default="none",
        help="git ref of the 'before' code (e.g. HEAD~3); none (default): after only",
    )
    parser.add_argument("--cases", default="xeducation,flat400,quickstart")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    wanted = args.cases.split(",")
    print(f"command: {' '.join(sys.argv)}")
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = work / "before-code"
        before.mkdir()
        if args.before != "none":
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.before], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        commands = cases(work)
        print(
            "| case | run | before wall (s) | before CPU (s) | before load | after wall (s) | "
            "after CPU (s) | after load | after peak RSS (GB) | CPU after/before |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for case in wanted:
            for attempt in range(1, args.repeat + 1):
                b = None
                if args.before != "none":
                    b = run(before, commands[case], work / f"{case}-{attempt}-before")
                a = run(ROOT, commands[case], work / f"{case}-{attempt}-after")
                was = f"{b['wall']:.1f} | {b['cpu']:.1f} | {b['load']:.2f}" if b else "- | - | -"
                ratio = f"{a['cpu'] / b['cpu']:.2f}" if b else "-"
                print(
                    f"| {case} | {attempt} | {was} | {a['wall']:.1f} | {a['cpu']:.1f} | "
                    f"{a['load']:.2f} | {a['rss_gb']:.2f} | {ratio} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
