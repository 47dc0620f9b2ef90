"""The reconstruction environment: which Python runs the worker, is it complete, and "Set up" to make one."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from .logic.errors import SetupError

#: Python versions the core supports. The one place they are written is pyproject.toml's
#: ``requires-python`` (the wheel's ``Requires-Python``); tests/blender/test_environment.py fails
#: when these drift from it, and ``python_range()`` reads the real bound where it can.
PYTHON_MIN, PYTHON_MAX = (3, 10), (3, 13)
#: Environment variable naming the core's Python (tests, CI, the headless script).
PYTHON_ENV_VAR = "IMG2MESH_PYTHON"
#: Folder (inside the add-on) holding the core's wheel in a built extension.
WHEEL_FOLDER = "core_wheel"
#: Seconds the environment check may take (it imports nothing heavy).
CHECK_TIMEOUT = 60.0

# Runs inside the environment's Python: what is there, what is missing (import-free).
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, re, sys
out = {"python": "%d.%d.%d" % sys.version_info[:3], "executable": sys.executable,
       "img2mesh": None, "protocol": None, "missing": [], "outdated": [],
       "text": importlib.util.find_spec("diffusers") is not None}
try:
    dist = md.distribution("img2mesh")
except md.PackageNotFoundError:
    dist = None
if dist is not None:
    out["img2mesh"] = dist.version
    try:
        from packaging.requirements import Requirement
    except ImportError:
        Requirement = None
    for text in dist.requires or []:
        if ";" in text and "extra" in text.split(";", 1)[1]:
            continue
        name = re.match(r"[A-Za-z0-9._-]+", text).group(0)
        try:
            version = md.version(name)
        except md.PackageNotFoundError:
            out["missing"].append(name)
            continue
        if Requirement is not None:
            req = Requirement(text)
            if req.specifier and not req.specifier.contains(version, prereleases=True):
                out["outdated"].append("%s %s (needs %s)" % (name, version, req.specifier))
    if importlib.util.find_spec("core") is not None:
        try:
            import core.worker.serve  # the worker itself, with what it imports
            from core.protocol import PROTOCOL
            out["protocol"] = PROTOCOL
        except Exception as exc:
            out["worker_error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""


@dataclass
class Status:
    """What the environment check found; ``line`` is what the preferences show."""

    ready: bool
    line: str
    python: str = ""
    missing: list[str] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)
    text_prompts: bool = False  # the optional "text" extra (diffusers) is installed


@dataclass(frozen=True)
class PythonChoice:
    """The Python that runs the worker and where that choice came from."""

    path: str
    source: str  # "preferences" | "setup" | "environment variable" | "none"


# ------------------------------------------------------------------------------- places


def user_dir() -> Path:
    """The add-on's own writable folder (environment, default data folder); never the add-on folder."""
    package = __package__ or "img2mesh"
    if hasattr(bpy.utils, "extension_path_user"):
        try:
            return Path(bpy.utils.extension_path_user(package, create=True))
        except ValueError:  # enabled as a legacy add-on, not as an extension
            pass
    path = bpy.utils.user_resource("SCRIPTS", path=os.path.join("addons_data", "img2mesh"))
    os.makedirs(path, exist_ok=True)
    return Path(path)


def setup_dir() -> Path:
    """Where "Set up" makes the virtual environment."""
    return user_dir() / "venv"


def default_data_dir() -> Path:
    """Models and caches when the preferences name no other folder."""
    return user_dir() / "data"


def venv_python(env: Path) -> Path:
    if sys.platform == "win32":
        return env / "Scripts" / "python.exe"
    return env / "bin" / "python"


def python_in(path: str) -> str:
    """A Python executable from what the user gave: the executable itself or an environment folder."""
    p = Path(bpy.path.abspath(path)).expanduser()
    if p.is_dir():
        for candidate in (venv_python(p), p / "python.exe", p / "python3", p / "python"):
            if candidate.is_file():
                return str(candidate)
    return str(p)


def find_python(existing: str = "") -> PythonChoice:
    """Preference (an existing environment) > the one made by Set up > $IMG2MESH_PYTHON."""
    if existing.strip():
        return PythonChoice(python_in(existing.strip()), "preferences")
    made = venv_python(setup_dir())
    if made.is_file():
        return PythonChoice(str(made), "setup")
    env = os.environ.get(PYTHON_ENV_VAR, "").strip()
    if env:
        return PythonChoice(python_in(env), "environment variable")
    return PythonChoice("", "none")


def core_source() -> str | None:
    """What Set up installs: the wheel bundled in the extension, else the source tree beside the add-on."""
    here = Path(__file__).resolve().parent
    wheels = sorted(glob.glob(str(here / WHEEL_FOLDER / "img2mesh-*.whl")))
    if wheels:
        return wheels[-1]
    repo = here.parent
    if (repo / "pyproject.toml").is_file() and (repo / "core" / "worker" / "__main__.py").is_file():
        return str(repo)  # a development checkout, enabled as a legacy add-on
    return None


# ------------------------------------------------------------------------------- status

_status: dict[str, Status] = {}


def cached_status(python: str) -> Status | None:
    return _status.get(python)


def forget_status() -> None:
    _status.clear()


_checking: dict[str, threading.Thread] = {}


def check_in_background(python: str) -> bool:
    """Start :func:`check` on a thread unless it runs or its answer is cached; True if started.

    For draw(): a check runs the environment's Python (up to CHECK_TIMEOUT seconds), which
    must never hold up Blender's drawing. cached_status() has the answer once it is done.
    """
    if not python or python in _status or checking(python):
        return False
    thread = threading.Thread(target=check, args=(python,), daemon=True)
    _checking[python] = thread
    thread.start()
    return True


def checking(python: str | None = None) -> bool:
    """Whether a background check of this Python (None: of any) is under way."""
    threads = list(_checking.values()) if python is None else [_checking.get(python)]
    return any(thread is not None and thread.is_alive() for thread in threads)


def check(python: str) -> Status:
    """Run the environment's Python once and say whether it can reconstruct (cached per path)."""
    status = _check(python)
    _status[python] = status
    return status


def _check(python: str) -> Status:
    if not python:
        return Status(
            False,
            "No reconstruction environment yet: press Set up, or choose an existing one.",
        )
    if not os.path.isfile(python):
        return Status(False, f"There is no Python at {python}.", python)
    try:
        run = subprocess.run(
            [python, "-I", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            cwd=os.path.dirname(python) or None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Status(False, f"The Python at {python} cannot be run ({exc}).", python)
    try:
        found = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        reason = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return Status(False, f"The Python at {python} cannot be used ({reason}).", python)
    version = tuple(int(x) for x in found["python"].split("."))[:2]
    problem = version_problem(version, found["python"], python)
    if problem:
        return Status(False, problem, python)
    if not found["img2mesh"]:
        return Status(False, f"img2mesh is not installed in {python}: press Set up.", python)
    missing = list(found["missing"])
    if missing:
        return Status(
            False,
            f"Missing: {', '.join(missing)}. Press Set up to install them.",
            python,
            missing,
        )
    if found["outdated"]:
        return Status(
            False,
            f"Wrong versions: {'; '.join(found['outdated'])}. Press Set up to update them.",
            python,
        )
    if found.get("protocol") is None:
        reason = found.get("worker_error") or "no core.worker.serve module"
        return Status(
            False,
            f"img2mesh {found['img2mesh']} in {python} has no usable worker ({reason}): "
            "press Set up to update it.",
            python,
        )
    text = bool(found.get("text"))
    line = f"Ready: img2mesh {found['img2mesh']}, Python {found['python']}"
    line += ", text prompts." if text else "."
    return Status(True, line, python, text_prompts=text)


def python_range() -> tuple[tuple[int, int], tuple[int, int]]:
    """(oldest, newest) Python the core supports, from what Set up installs (its metadata)."""
    source = core_source()
    text = None
    try:
        if source and source.endswith(".whl"):
            import zipfile

            with zipfile.ZipFile(source) as wheel:
                name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
                for line in wheel.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("Requires-Python:"):
                        text = line.split(":", 1)[1]
                        break
        elif source:
            for line in (Path(source) / "pyproject.toml").read_text("utf-8").splitlines():
                if line.strip().startswith("requires-python"):
                    text = line.split("=", 1)[1].split("#", 1)[0].strip().strip("\"'")
                    break
    except (OSError, StopIteration, ValueError, KeyError):
        text = None
    return parse_requires_python(text) if text else (PYTHON_MIN, PYTHON_MAX)


def parse_requires_python(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """ ">=3.10,<3.14" -> ((3, 10), (3, 13)); unknown parts keep the built-in bound."""
    low, high = PYTHON_MIN, PYTHON_MAX
    for part in text.split(","):
        part = part.strip()
        for op in (">=", "<=", "<", ">"):
            if part.startswith(op):
                try:
                    major, minor = (int(x) for x in part[len(op) :].strip().split(".")[:2])
                except ValueError:
                    break
                if op == ">=":
                    low = (major, minor)
                elif op == ">":
                    low = (major, minor + 1)
                elif op == "<=":
                    high = (major, minor)
                else:
                    high = (major, minor - 1)
                break
    return low, high


def python_span() -> str:
    """ "3.10 to 3.13": the supported versions, as the preferences and messages say them."""
    low, high = python_range()
    return f"{low[0]}.{low[1]} to {high[0]}.{high[1]}"


def version_problem(version: tuple[int, ...], shown: str, where: str) -> str | None:
    """One sentence saying why this Python version cannot run the core, or None."""
    low, high = python_range()
    span = f"Python {python_span()}"
    if tuple(version[:2]) < low:
        return f"Python {shown} at {where} is too old for img2mesh, which needs {span}."
    if tuple(version[:2]) > high:
        return f"Python {shown} at {where} is too new for img2mesh, which needs {span}."
    return None


# -------------------------------------------------------------------------------- set up


def blender_python_problem() -> str | None:
    """Why Blender's own Python cannot make the core's environment (None: it can)."""
    exe = sys.executable
    if not exe or not os.path.isfile(exe) or "python" not in os.path.basename(exe).lower():
        return "Blender does not say where its Python is"  # e.g. the blender binary itself
    shown = "{}.{}.{}".format(*sys.version_info[:3])
    problem = version_problem(sys.version_info[:2], shown, exe)
    if problem:
        return f"Blender's own {problem.rstrip('.')}"
    for module in ("venv", "ensurepip"):
        try:
            __import__(module)
        except ImportError:
            return f"Blender's Python has no {module} module (some Linux packages remove it)"
    return None


def blender_python() -> str | None:
    """Blender's own Python, if it can make a virtual environment for the core."""
    return None if blender_python_problem() else sys.executable


def system_python() -> str | None:
    """The newest supported python3.X on the PATH (the Windows launcher too)."""
    low, high = python_range()
    for minor in range(high[1], low[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found and _can_make_venv(found):  # e.g. a pyenv shim of a version not selected
            return found
    if sys.platform == "win32" and shutil.which("py"):
        for minor in range(high[1], low[1] - 1, -1):
            try:
                out = subprocess.run(
                    ["py", f"-3.{minor}", "-c", "import sys; print(sys.executable)"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    return None


def _can_make_venv(python: str) -> bool:
    try:
        run = subprocess.run(
            [python, "-I", "-c", "import venv, ensurepip"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0


def base_python(user_choice: str = "") -> str:
    """The Python that Set up builds the environment from; raises SetupError if there is none."""
    return setup_base(user_choice)[0]


def setup_base(user_choice: str = "") -> tuple[str, str]:
    """(Python that Set up builds from, a sentence for the preferences saying which and why).

    Blender's own Python first, on every Blender from 4.2 to 5.3; a system Python only when
    Blender's cannot make a virtual environment (the sentence says why). SetupError if none.
    """
    if user_choice.strip():
        path = python_in(user_choice.strip())
        if not os.path.isfile(path):
            raise SetupError(f"The Python chosen for Set up ({path}) does not exist.")
        return path, f"Set up builds from the Python chosen below ({path})."
    problem = blender_python_problem()
    if problem is None:
        shown = "{}.{}".format(*sys.version_info[:2])
        return sys.executable, f"Set up builds from Blender's own Python {shown}."
    found = system_python()
    if not found:
        raise SetupError(
            f"{problem}, and no other Python {python_span()} was "
            "found: install one, or choose it under 'Python for Set up' in the add-on's "
            "preferences."
        )
    return found, f"Set up builds from {found} ({problem})."


_base_lines: dict[str, str] = {}


def setup_base_line(user_choice: str = "") -> str:
    """setup_base's sentence (or its error), worked out once per choice: draw() calls this."""
    if user_choice not in _base_lines:
        try:
            _base_lines[user_choice] = setup_base(user_choice)[1]
        except SetupError as exc:
            _base_lines[user_choice] = str(exc)
    return _base_lines[user_choice]


def setup_commands(
    base: str, env: Path, source: str, pip_args: str = "", *, text: bool = False
) -> list[tuple[str, list]]:
    """(label, command) for each step of Set up; ``text`` adds the "text" extra (prompts)."""
    python = str(venv_python(env))
    extra = shlex.split(pip_args, posix=sys.platform != "win32") if pip_args.strip() else []
    steps: list[tuple[str, list]] = []
    if not venv_python(env).is_file():
        steps.append(("Creating the environment", [base, "-m", "venv", str(env)]))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", *extra]
    with_extras = f"{source}[text]" if text else source
    steps.append(("Installing img2mesh's dependencies", [*pip, "--upgrade", with_extras]))
    # The same version number may hold newer code (a rebuilt extension): always replace it.
    steps.append(("Installing img2mesh", [*pip, "--force-reinstall", "--no-deps", source]))
    return steps


class SetupTask:
    """Set up running in a thread: one subprocess per step, the latest output line as progress."""

    def __init__(self, steps: list[tuple[str, list]], env: Path) -> None:
        self.steps = steps
        self.env = env
        self.state = "running"  # running | done | failed | cancelled
        self.step = ""
        self.line = ""
        self.error = ""
        self.log: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SetupTask:
        self._thread.start()
        return self

    def wait(self) -> None:
        self._thread.join()

    @property
    def finished(self) -> bool:
        return self.state != "running"

    def cancel(self) -> None:
        if self.state == "running":
            self.state = "cancelled"
            self.error = "Set up was cancelled."
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.terminate()

    def _run(self) -> None:
        env = dict(os.environ)
        for var in ("PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE"):
            env.pop(var, None)  # Blender's own settings must not leak into the new environment
        env["PIP_NO_INPUT"] = "1"
        for label, command in self.steps:
            if self.state != "running":
                return
            self.step, self.line = label, ""
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=env,
                    cwd=str(self.env.parent),
                )
            except OSError as exc:
                self._finish_failed(f"{label} failed: {exc.strerror or exc}.")
                return
            assert self._proc.stdout is not None
            for raw in self._proc.stdout:
                text = raw.rstrip()
                if text:
                    self.log.append(text)
                    if not text.startswith(" "):
                        self.line = text[:160]
            code = self._proc.wait()
            if self.state != "running":
                return
            if code != 0:
                reason = next(
                    (x for x in reversed(self.log) if x.startswith("ERROR")),
                    self.log[-1] if self.log else f"exit code {code}",
                )
                self._finish_failed(f"{label} failed: {reason.strip()}")
                return
        self.state = "done"
        self.step, self.line = "Done", ""

    def _finish_failed(self, message: str) -> None:
        self.error = message if message.endswith(".") else message + "."
        self.state = "failed"
        print("img2mesh Set up:\n  " + "\n  ".join(self.log[-30:]), file=sys.stderr)


_setup: SetupTask | None = None


def active_setup() -> SetupTask | None:
    return _setup if _setup is not None and not _setup.finished else None


def last_setup() -> SetupTask | None:
    return _setup


def start_setup(
    base_choice: str = "", pip_args: str = "", online: bool = True, text: bool = False
) -> SetupTask:
    """Begin Set up in the background (``wait()`` on the task for the synchronous path).

    ``text``: also install the "text" extra (diffusers, accelerate) for text prompts.
    """
    global _setup
    if active_setup() is not None:
        raise SetupError("Set up is already running.")
    offline_ok = "--no-index" in shlex.split(pip_args) if pip_args.strip() else False
    if not online and not offline_ok:
        raise SetupError(
            "Online access is turned off (Preferences > System > Network), so Set up cannot "
            "download the packages it needs; allow online access, or choose an environment you "
            "made yourself."
        )
    source = core_source()
    if source is None:
        raise SetupError(
            "This copy of the add-on holds no img2mesh package to install; reinstall the "
            "extension from its zip file."
        )
    env = setup_dir()
    base = base_python(base_choice) if not venv_python(env).is_file() else ""
    forget_status()
    _setup = SetupTask(setup_commands(base, env, source, pip_args, text=text), env).start()
    return _setup
