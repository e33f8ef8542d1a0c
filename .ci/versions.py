"""What the test suite ran with: print it, or record it after a green run.

``--print``: the versions of the packages that matter most, one line.
``--write``: ``constraints.txt`` (the whole environment, ``pip freeze``; a user passes it
with ``pip install -e ".[dev]" -c constraints.txt`` for an exact reproduction) and the
README's "last passed with" line, between its ``tested-with`` markers.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_PACKAGES = ("tensorflow", "keras", "mlflow", "hydra-core", "numpy", "pytest", "hypothesis")
START, END = "<!-- tested-with:start -->", "<!-- tested-with:end -->"


def key_versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    parts += [f"{name} {metadata.version(name)}" for name in KEY_PACKAGES]
    return ", ".join(parts)


def write() -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True, capture_output=True, text=True,
    ).stdout
    # pip freeze names the project itself when it is installed editable from a checkout.
    lines = [line for line in frozen.splitlines()
             if line and not line.startswith(("-e ", "#")) and "optimizer-lab" not in line]
    today = datetime.date.today().isoformat()
    header = (
        f"# The environment the test suite last passed in (.ci/run, {today}, "
        f"Python {platform.python_version()}).\n"
        '# Exact reproduction: pip install -e ".[dev]" -c constraints.txt\n'
    )
    (ROOT / "constraints.txt").write_text(header + "\n".join(lines) + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    line = (f"{START}The suite last passed on {today} with {key_versions()} "
            f"(every version: `constraints.txt`).{END}")
    new, count = re.subn(re.escape(START) + ".*?" + re.escape(END), line, text, flags=re.S)
    if count != 1:
        sys.exit(f"README.md needs exactly one {START} ... {END} line, found {count}")
    readme.write_text(new)
    print(f"recorded: {key_versions()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the key versions")
    parser.add_argument("--write", action="store_true",
                        help="write constraints.txt and the README's line")
    args = parser.parse_args()
    if args.write:
        write()
    else:
        print(key_versions())


if __name__ == "__main__":
    main()
