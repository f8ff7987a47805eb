"""Benchmark: prewheel build of the example, cold and warm, against `pip download`.

The index these machines reach offers no cache headers, so absolute times say
little; the ratios of tools run in the same session are what to compare.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "examples" / "render-fastapi" / "requirements.in"
TARGET = "cp311-manylinux_2_17_x86_64"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE="/dev/null", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="prewheel-bench-") as tmp:
        work = Path(tmp)
        env = clean_env(PREWHEEL_CACHE_DIR=str(work / "cache"))
        build = [
            sys.executable,
            "-m",
            "prewheel",
            "build",
            "-r",
            str(REQUIREMENTS),
            "-t",
            TARGET,
            "-o",
            str(work / "wh"),
            "--json",
        ]
        cold, out = timed(build, env)
        cold_summary = json.loads(out)["total"]
        warm, out = timed(build, env)
        warm_summary = json.loads(out)["total"]
        pip_cold, _ = timed(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-cache-dir",
                "-q",
                "-d",
                str(work / "pip"),
                "--only-binary=:all:",
                "--platform",
                "manylinux2014_x86_64",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "-r",
                str(REQUIREMENTS),
            ],
            env,
        )
    print(
        json.dumps(
            {
                "target": TARGET,
                "prewheel_cold_s": round(cold, 2),
                "prewheel_warm_s": round(warm, 2),
                "pip_download_cold_s": round(pip_cold, 2),
                "cold_vs_pip_download": round(cold / pip_cold, 2),
                "warm_vs_cold": round(warm / cold, 2),
                "cold_downloaded_bytes": cold_summary["downloaded_bytes"],
                "warm_downloaded_bytes": warm_summary["downloaded_bytes"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
