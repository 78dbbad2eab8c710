"""What every bench table prints first: the machine it ran on, so figures are read in context."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path


def describe_machine() -> str:
    """CPU model, cores, RAM, OS, Python and the load average when the bench started."""
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram_gb:.1f} GB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average at start: {load}"
    )


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def process_tree_cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process and every live descendant (threads included, and
    children they have reaped), read from /proc: a JVM and its Python workers count as one job.
    NaN where /proc is missing (not Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return float("nan")
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
        parents[int(entry)] = int(fields[1])
        # utime, stime, cutime, cstime
        cpu[int(entry)] = sum(int(x) for x in fields[11:15]) / tick
    root = os.getpid() if pid is None else pid
    total, todo = 0.0, [root]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo += [child for child, parent in parents.items() if parent == current]
    return total


def machine_busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, every process) since boot, from
    /proc/stat: the difference over a run, less the run's own, is what others used meanwhile."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
