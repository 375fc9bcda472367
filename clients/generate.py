"""Generate a client of the API from the app's own OpenAPI document.

poetry run python clients/generate.py ts ../my-frontend/src/client   # TypeScript (fetch)
poetry run python clients/generate.py py build/clients/py/heroes_client   # Python (httpx)

The TypeScript client comes from @hey-api/openapi-ts, at the version clients/package-lock.json
pins (installed with `npm ci` on first use); the Python one from openapi-python-client, at the
version poetry.lock pins. The output folder is replaced.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def dump_schema(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from project.app import create_app

    path.write_text(json.dumps(create_app().openapi(), indent=2), encoding="utf-8")


def typescript(schema: Path, output: Path) -> None:
    if not (HERE / "node_modules" / ".bin" / "openapi-ts").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    command = [str(HERE / "node_modules" / ".bin" / "openapi-ts"), "--silent"]
    command += ["--client", "@hey-api/client-fetch", "--input", str(schema)]
    subprocess.run([*command, "--output", str(output)], cwd=HERE, check=True)


def python(schema: Path, output: Path) -> None:
    # Its post-hooks run ruff, which lives next to this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(schema)]
    command += ["--output-path", str(output), "--overwrite", "--meta", "none"]
    subprocess.run(command, env={**os.environ, "PATH": path}, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate a client of the API from its schema.")
    parser.add_argument("language", choices=["ts", "py"])
    parser.add_argument("output", type=Path, help="the folder to (re)write")
    parser.add_argument("--schema", type=Path, help="an OpenAPI document (default: the app's)")
    args = parser.parse_args()
    output = args.output.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        schema = args.schema.resolve() if args.schema else Path(tmp) / "openapi.json"
        if not args.schema:
            dump_schema(schema)
        (typescript if args.language == "ts" else python)(schema, output)


if __name__ == "__main__":
    main()
