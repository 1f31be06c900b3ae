"""Fresh virtual environments that reuse the running interpreter's packages, offline.

``python -m venv --system-site-packages`` is not that: it sees the *base*
Python's packages, so from inside a virtualenv (how a newcomer runs the
tests) the new environment misses everything installed in it
(``ModuleNotFoundError: flask_sqlalchemy``). Instead the new environment gets
a ``.pth`` file listing the running interpreter's site-packages directories.

A ``.pth`` line that is a plain path adds that directory to ``sys.path`` but
does not run the ``.pth`` files inside it. So the dependencies resolve, while
an editable install of this checkout (a ``__editable__…pth`` in those
directories) stays inert: the checkout is not importable from the new
environment unless something installs it there.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path


def outer_site_dirs() -> list[str]:
    """The site-packages directories the running interpreter imports from."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_venv(venv: Path) -> Path:
    """Create ``venv`` (with pip) that also sees our site-packages; return its python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=180)
    python = venv_python(venv)
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    # After the environment's own site-packages: what it installs comes first.
    (Path(own) / "_outer_site_packages.pth").write_text(
        "".join(f"{d}\n" for d in outer_site_dirs()), encoding="utf-8"
    )
    return python


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment for a subprocess: nothing leads back to the checkout.

    With ``venv``, its ``bin`` comes first on ``PATH``, so ``python`` and
    ``pip`` in a shell line mean that environment's.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if venv is not None:
        env["PATH"] = f"{venv_python(venv).parent}{os.pathsep}{env['PATH']}"
        env["VIRTUAL_ENV"] = str(venv)
    else:
        env.pop("VIRTUAL_ENV", None)
    return env
