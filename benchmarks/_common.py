"""Helpers shared by the benchmark scripts: --device, timing, peak memory, machine line.

Not a benchmark (no ``--smoke``; tests/test_benchmarks.py lists the scripts
``bench_*.py``). Every script imports it as a sibling module (``python
benchmarks/bench_x.py`` puts ``benchmarks/`` first on ``sys.path``).

* ``--device {auto,cpu,cuda}``: :func:`add_device_argument` and
  :func:`resolve_device` (auto = cuda when ``torch.cuda.is_available()``;
  cuda without a GPU is an error, not a silent CPU run).
* :func:`sync` / :func:`timed`: wall time with ``torch.cuda.synchronize``
  before and after on CUDA (kernels are asynchronous: without it the clock
  stops when the last kernel is *queued*).
* :class:`PeakMemory`: the process's peak RSS (VmHWM, reset through
  ``/proc/self/clear_refs`` where Linux allows it, else ``ru_maxrss``) and,
  on CUDA, ``torch.cuda.max_memory_allocated`` (reset with
  ``torch.cuda.reset_peak_memory_stats``), around a block.
* :func:`machine_line`: one line naming the machine, the device, torch, the
  threads and the load average, which every script prints first.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import torch

DEVICES = ("auto", "cpu", "cuda")


def add_device_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the models run (auto: cuda when torch.cuda.is_available())",
    )


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' or 'cpu'; 'cuda' without a usable GPU exits with a message."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False here")
    return name


def is_cuda(device: Any) -> bool:
    return torch.device(device).type == "cuda"


def sync(device: Any) -> None:
    """Wait for the queued kernels of ``device`` (no-op on CPU)."""
    if is_cuda(device):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: Any = "cpu") -> tuple[float, Any]:
    """``(seconds, fn())``, synchronizing CUDA before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of this process over a ``with`` block.

    ``rss_mib``: peak resident set size (VmHWM after resetting it to the
    current RSS on entry; where /proc cannot be written, ``ru_maxrss``,
    the process's lifetime peak, and ``rss_exact`` is False).
    ``rss_added_mib``: that peak minus the RSS on entry (with ``ru_maxrss``,
    minus the lifetime peak before the block: a lower bound).
    ``cuda_mib``: ``torch.cuda.max_memory_allocated`` over the block on a
    CUDA device (its peak statistics reset on entry), else None.
    """

    def __init__(self, device: Any = "cpu") -> None:
        self.device = device
        self.rss_mib = self.rss_added_mib = self._start_kib = 0.0
        self.rss_exact = False
        self.cuda_mib: float | None = None

    def __enter__(self) -> PeakMemory:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.rss_exact = _proc_kib("VmHWM") is not None
        except OSError:
            self.rss_exact = False
        self._start_kib = (
            _proc_kib("VmRSS")
            if self.rss_exact
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ) or 0
        if is_cuda(self.device):
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        if is_cuda(self.device):
            sync(self.device)
            self.cuda_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        kib = _proc_kib("VmHWM") if self.rss_exact else None
        if kib is None:
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.rss_mib = kib / 1024
        self.rss_added_mib = max(0, kib - self._start_kib) / 1024

    def describe(self) -> str:
        s = f"peak RSS {self.rss_mib:.0f} MiB" + ("" if self.rss_exact else " (max)")
        if self.cuda_mib is not None:
            s += f", peak CUDA allocated {self.cuda_mib:.0f} MiB"
        return s


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def device_name(device: Any) -> str:
    if is_cuda(device):
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return "cpu"


def machine_line(device: Any, load_start: str, t_start: float | None = None) -> str:
    """'machine: ...; device: ...; torch ...; load average at start/end ...'."""
    ncpu = os.cpu_count() or 1
    line = (
        f"machine: {platform.processor() or platform.machine()}, {ncpu} cores; "
        f"device: {device_name(device)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average at start/end "
        f"{load_start}/{load_average()}"
    )
    if t_start is not None:
        line += f"; total {time.perf_counter() - t_start:.0f} s"
    return line


def busy_warning(device: Any, load_start: str) -> str | None:
    """A warning line when the CPU was oversubscribed (load > cores), else None."""
    ncpu = os.cpu_count() or 1
    try:
        busy = max(float(load_start), float(load_average())) > ncpu
    except ValueError:
        return None
    if not busy:
        return None
    what = "the host side (Python, launches, copies)" if is_cuda(device) else "timings"
    return (
        f"WARNING: other processes were using the CPU (load > {ncpu} cores): "
        f"{what} inflated and noisy; only ratios within this run compare"
    )
