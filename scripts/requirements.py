"""Print the project's requirements (its dependencies plus the named extras) from pyproject.toml,
one a line, without installing the project: the Dockerfile installs them in a layer of their own,
before the code, so that a code change does not reinstall them. torch is left out (the worker
stage installs it first, from the index it is told)."""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(r for r in requirements if not r.startswith("torch")))
