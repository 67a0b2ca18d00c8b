"""What every benchmark's report needs: the machine it ran on, and its section of BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    """CPU model, core count, torch and Python versions, and the GPU if there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python "
    text += platform.python_version()
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text


def write_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section under ``heading`` in BENCHMARKS.md, or append it (creating the file)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body.strip()}\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")


def publish(section: str, note: str, lines: list[str], write: bool) -> None:
    """Print a report (command, machine, date and load, ``note``, then ``lines``) and, with
    ``write``, record it as ``section`` of BENCHMARKS.md."""
    command = " ".join(["python", *sys.argv])
    load, today = os.getloadavg()[0], datetime.date.today().isoformat()
    body = "\n".join(
        [
            f"Command: `{command}`  ",
            f"Machine: {machine()}  ",
            f"Date: {today} (load average {load:.1f}; the machine is shared)  ",
            note,
            "",
            *lines,
        ]
    )
    print(body)
    if write:
        write_section(section, body)
