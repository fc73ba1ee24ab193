"""Per-job environments: a job whose code needs packages runs in a virtual environment of its own.

A job's code folder may hold a ``requirements.txt`` (pip's format) and an ``apt-pkgs.txt`` (one
Debian package a line), as a train-classifier module does; or its ``JobEngine(engine_name,
engine_version)`` names an engine that the settings' ``engines`` table maps to requirements.
Two halves, one on each side of the executor:

* engine side, cheap and building nothing: :func:`plan` reads the files and settings and
  returns the request's ``environment`` (a plain dict, see :class:`~mloop.executors.base.JobRequest`),
  and :func:`environment_key` the record a step and its cache key carry;
* runner side, where the job runs (a Ray node is another machine, so the environment must be
  built there): :func:`ensure` builds it with ``uv`` on first use, streaming uv's progress into
  the job's log, or reuses it.

Environments are cached under ``<home>/envs/<key>/``, the key being the hash of the requirements,
the index settings, the Python version and the platform. A build goes into a temporary folder
(``uv venv --relocatable``) that is renamed into place once complete, under a file lock per key:
two jobs needing the same new environment at once build it once, the second waits and reuses
it, and a build that died leaves only a temporary folder, never a half environment.

Each job that uses an environment holds a shared lock on ``<key>.use`` next to it for as long
as it runs (and touches that file: its time is when the environment was last used). ``mloop
gc`` (:func:`collect`) removes an environment nobody used for ``env_expiry`` only under the
exclusive lock, so never one a job is using (two runs may share one): it deletes the marker
first and renames the folder away before deleting it, so a removal cut short never leaves
something a later job would take as ready.

Requirements the engine's own interpreter already satisfies (``torch`` in an engine that has
it) need no environment unless ``env_reuse_engine`` is off: the job runs in the runner's
interpreter as before, so an example whose code folder lists ``torch`` never downloads it.
A torch requirement that a wheel under ``env_find_links`` satisfies is installed from that
wheel (pinned to the file), never from the index (gigabytes of CUDA packages).

Layer: executors (part of the job runner). Standard library only at import; ``uv``,
``filelock`` and ``packaging`` are imported by the functions that need them.
"""

import hashlib
import json
import os
import re
import sys
import time

#: The file whose presence makes ``<home>/envs/<key>/`` a finished environment (written last).
MARKER = "mloop-env.json"
#: ``<envs>/<key>.use``: held (shared) by each job using the environment; its time is the last use.
USE_SUFFIX = ".use"
#: ``<envs>/<key>.trash-<pid>``: an environment being removed (never taken as one).
TRASH_INFIX = ".trash-"
#: Modules the job's interpreter reaches through a ``.pth`` file (appended to ``sys.path``,
#: so the environment's own packages win): mloop itself, for ``mloop.metrics.MetricLogger``,
#: and what ``mloop.metrics`` imports. Nothing else of the engine's packages leaks in.
SHIM_MODULES = ("mloop", "pydantic", "pydantic_core", "typing_extensions", "annotated_types",
                "typing_inspection")
REQUIREMENTS_FILE = "requirements.txt"
APT_FILE = "apt-pkgs.txt"


#: A Debian package name (policy 5.6.1), optionally with ``:arch`` and ``=version``.
APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?")


class EnvBuildError(Exception):
    """The environment could not be made; the message (one line) is for the log and the step."""


# -- reading what a job needs (engine side) -----------------------------------------------------
def read_lines(path: str) -> list[str]:
    """The meaningful lines of a requirements-like file: stripped, no blanks, no comments."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def python_tag() -> str:
    """``3.11.7``: the interpreter version an environment is built for (the runner's)."""
    return ".".join(str(n) for n in sys.version_info[:3])


def platform_tag() -> str:
    import sysconfig

    return sysconfig.get_platform()


def compute_key(requirements: list[str], find_links: list[str], index_url: str | None,
                python: str | None = None, platform: str | None = None) -> str:
    """The cache key of an environment: what decides its content, hashed (16 hex digits)."""
    data = {"requirements": sorted(requirements), "find_links": list(find_links), "index_url": index_url or "",
            "python": python or python_tag(), "platform": platform or platform_tag()}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def requirements_digest(requirements: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]


def engine_requirements(engine: dict | None, engines: dict) -> list[str]:
    """The requirements the settings' ``engines`` table maps a ``JobEngine`` to ([] if none)."""
    if not engine or not engine.get("engine_name"):
        return []
    name, version = str(engine["engine_name"]), engine.get("engine_version")
    for key in (f"{name}=={version}" if version else None, name):
        if key and key in engines:
            return [str(r) for r in engines[key]]
    return []


def satisfied_here(requirements: list[str]) -> bool:
    """Whether this interpreter's installed distributions satisfy every requirement.

    Conservative: an option line (``-r``, ``--index-url``), a URL or a requirement with extras
    counts as unsatisfied (an environment is built)."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    for line in requirements:
        if line.startswith("-"):
            return False
        try:
            req = Requirement(line)
        except InvalidRequirement:
            return False
        if req.marker is not None and not req.marker.evaluate():
            continue
        if req.url or req.extras:
            return False
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return False
        if not req.specifier.contains(version, prereleases=True):
            return False
    return True


def local_wheels(requirements: list[str], find_links: list[str]) -> list[str]:
    """Torch-family requirements pinned to a wheel under ``find_links`` that satisfies them.

    ``torch==2.13.0`` on an index resolves to the CUDA build and its gigabytes of ``nvidia-*``
    packages; the local CPU build in a find-links folder (``/opt/wheels``) is what the machine
    has. Such a requirement becomes ``torch @ file:///.../torch-2.13.0+cpu-...whl``."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.tags import sys_tags
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    wheels: list[str] = []
    for folder in find_links:
        if os.path.isdir(folder):
            wheels.extend(os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".whl"))
    supported = set(sys_tags())
    out = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            out.append(line)
            continue
        if canonicalize_name(req.name) not in ("torch", "torchvision", "torchaudio") or req.url:
            out.append(line)
            continue
        for path in wheels:
            try:
                name, version, _build, tags = parse_wheel_filename(os.path.basename(path))
            except InvalidWheelFilename:
                continue
            if name == canonicalize_name(req.name) and req.specifier.contains(version, prereleases=True) \
                    and tags & supported:
                extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
                out.append(f"{req.name}{extras} @ file://{path}")
                break
        else:
            out.append(line)
    return out


def plan(code_dir: str, engine: dict | None, settings: object = None) -> dict | None:
    """The ``environment`` of a job's request: what the runner must make before the job runs.

    None when the job runs as before (no requirements, or the engine's interpreter satisfies
    them and ``env_reuse_engine`` is on, and no image). ``settings`` is a
    :class:`mloop.config.Settings` (read for ``env_*``, ``engines``, ``allow_apt_install``,
    ``home``); None reads as the defaults, with no home (``root`` None: nothing can be built).
    """
    engine = engine or {}
    apt = read_lines(os.path.join(code_dir, APT_FILE))
    image = engine.get("image_url")
    requirements = read_lines(os.path.join(code_dir, REQUIREMENTS_FILE)) \
        or engine_requirements(engine, dict(getattr(settings, "engines", {}) or {}))
    home = getattr(settings, "home_path", None)
    base = {"apt": apt, "allow_apt": bool(getattr(settings, "allow_apt_install", False)),
            "requirements": requirements,
            "root": os.path.join(str(home), "envs") if home is not None else None}
    if image:
        return {**base, "kind": "container", "image": str(image), "runtime": container_runtime()}
    if not requirements:
        return {**base, "kind": "system"} if apt else None
    if getattr(settings, "env_reuse_engine", True) and satisfied_here(requirements):
        return {**base, "kind": "engine", "python": python_tag(), "executable": sys.executable}
    find_links = [str(f) for f in getattr(settings, "env_find_links", []) or []]
    index_url = getattr(settings, "env_index_url", None)
    return {**base, "kind": "venv", "find_links": find_links, "index_url": index_url,
            "key": compute_key(requirements, find_links, index_url), "python": python_tag()}


def environment_key(code_dir: str, settings: object = None, engine: dict | None = None) -> dict | None:
    """What a step records (and a cache key includes) about its environment; builds nothing.

    ``{"kind": "venv", "key", "python", "requirements" (digest), "path"}`` for a built
    environment, ``{"kind": "engine" | "container" | "system", ...}`` otherwise, None for a job
    that needs nothing. Pass the run's settings and the algorithm's ``engine``: without them
    the defaults are assumed (and a ``JobEngine`` mapped by ``engines`` is not seen)."""
    return record(plan(code_dir, engine, settings))



def record(env: dict | None) -> dict | None:
    """The step's ``environment`` column for a request's ``environment``."""
    if env is None:
        return None
    out: dict = {"kind": env["kind"], "requirements": requirements_digest(env.get("requirements") or [])}
    if env.get("apt"):
        out["apt"] = list(env["apt"])
    if env["kind"] == "venv":
        out.update(key=env["key"], python=env["python"],
                   path=os.path.join(env["root"], env["key"]) if env.get("root") else None)
    elif env["kind"] == "engine":
        out.update(python=env["python"], path=env["executable"])
    elif env["kind"] == "container":
        out.update(image=env["image"])
    return out


def container_runtime() -> str | None:
    """``docker`` or ``podman``, whichever is on PATH first; None when neither is."""
    import shutil

    for name in ("docker", "podman"):
        if shutil.which(name):
            return name
    return None


def container_argv(runtime: str, image: str, argv: list[str], env: dict[str, str], workdir: str, cwd: str,
                   gpu: bool) -> list[str]:
    """The command that runs the job's argv in ``image``: the job folder mounted at the same path
    (so every ``--name=<path>`` argument holds inside), the contract's variables passed in,
    the interpreter being the image's ``python``."""
    out = [runtime, "run", "--rm", "--init", "-v", f"{workdir}:{workdir}", "-w", cwd]
    if gpu:
        out += ["--gpus", "all"] if runtime == "docker" else ["--device", "nvidia.com/gpu=all"]
    for name in sorted(env):
        if name.startswith(("MLOOP_", "MA_", "OMP_", "MKL_", "OPENBLAS_", "CUDA_")) or name == "PYTHONUNBUFFERED":
            # The name alone: the runtime copies the value from its own environment (``env``, which
            # the runner starts it with), so no token or key is on a command line others can read.
            out += ["-e", name]
    command = list(argv)
    if command and command[0] == sys.executable:
        command[0] = "python"
    return [*out, image, *command]


# -- making it (runner side) ----------------------------------------------------------------------
def _say(text: str) -> None:
    os.write(1, f"mloop: {text}\n".encode())


def check_apt(env: dict) -> None:
    """Every package of ``apt-pkgs.txt`` installed here, or installed now where allowed.

    Raises:
        EnvBuildError: some are missing and ``allow_apt_install`` is off (or apt failed).
    """
    packages = env.get("apt") or []
    if not packages:
        return
    # Each name becomes an argument of dpkg-query and of apt-get (as root): a line such as
    # "-oDPkg::Pre-Invoke::=..." would be an option, not a package.
    bad = [name for name in packages if not APT_NAME.fullmatch(name)]
    if bad:
        raise EnvBuildError(f"apt-pkgs.txt: {bad[0][:80]!r} is not a Debian package name (lowercase letters, "
                            "digits, '+', '-', '.', starting with a letter or digit; optionally :arch or =version)")
    missing = missing_apt(packages)
    _say(f"apt-pkgs.txt: {len(packages)} package(s): {', '.join(packages)}"
         + (f"; missing: {', '.join(missing)}" if missing else "; all installed"))
    if not missing:
        return
    if not env.get("allow_apt"):
        raise EnvBuildError(
            f"apt-pkgs.txt needs {', '.join(missing)}, not installed on this machine; install them "
            "(apt-get install " + " ".join(missing) + ") or set allow_apt_install = true to let mloop do it")
    import subprocess

    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    _say(f"installing {', '.join(missing)} with apt-get (allow_apt_install)")
    code = subprocess.call([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *missing],
                           stdin=subprocess.DEVNULL)
    if code != 0:
        raise EnvBuildError(f"apt-get install {' '.join(missing)} failed (exit {code}); see the log above")


def missing_apt(packages: list[str]) -> list[str]:
    """The Debian packages of ``packages`` that ``dpkg`` does not know as installed."""
    import subprocess

    missing = []
    for name in packages:
        try:
            out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True,
                                 check=False).stdout
        except FileNotFoundError:  # not a Debian system: nothing can be checked
            raise EnvBuildError("apt-pkgs.txt is given but this machine has no dpkg to check it") from None
        if "install ok installed" not in out:
            missing.append(name)
    return missing


def ensure(env: dict) -> tuple[str, bool]:
    """The environment's folder, made if needed, and whether it was reused (built before).

    Raises:
        EnvBuildError: uv failed (its error in the message) or is missing.
    """
    key = compute_key(env["requirements"], env.get("find_links") or [], env.get("index_url"))
    root = env["root"]
    path = os.path.join(root, key)
    os.makedirs(root, exist_ok=True)
    hold(root, key)  # before looking: `mloop gc` removes nothing a job holds
    if os.path.isfile(os.path.join(path, MARKER)):
        _say(f"environment {key} reused ({path})")
        link_mloop(path)
        return path, True
    from filelock import FileLock, Timeout

    lock = FileLock(os.path.join(root, f"{key}.lock"))
    started = time.monotonic()
    try:
        lock.acquire(blocking=False)
    except Timeout:
        _say(f"environment {key} is being built by another job; waiting for it")
        lock.acquire()
    try:
        if os.path.isfile(os.path.join(path, MARKER)):
            _say(f"environment {key} reused, built by another job meanwhile "
                 f"(waited {time.monotonic() - started:.1f} s)")
            link_mloop(path)
            return path, True
        requirements = env["requirements"]
        if env.get("find_links"):
            requirements = local_wheels(requirements, env["find_links"])
        _say(f"environment {key}: building with uv for Python {python_tag()} "
             f"({len(requirements)} requirement(s): {', '.join(env['requirements'])[:120]})")
        _build(env, requirements, key, path)
        _say(f"environment {key} built in {time.monotonic() - started:.1f} s ({path})")
        link_mloop(path)
        return path, False
    finally:
        lock.release()


def _build(env: dict, requirements: list[str], key: str, path: str) -> None:
    import shutil

    tmp = f"{path}.tmp-{os.getpid()}"
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    try:
        uv = _uv()
        _uv_run([uv, "venv", "--python", sys.executable, "--relocatable", "--no-project", "--quiet", tmp], "uv venv")
        req_file = os.path.join(tmp, "mloop-requirements.txt")
        with open(req_file, "w", encoding="utf-8") as fh:
            fh.write("\n".join(requirements) + "\n")
        cmd = [uv, "pip", "install", "--python", interpreter(tmp), "-r", req_file]
        for folder in env.get("find_links") or ():
            cmd += ["--find-links", folder]
        if env.get("index_url"):
            cmd += ["--index-url", env["index_url"]]
        _uv_run(cmd, "uv pip install")
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as fh:
            json.dump({"key": key, "requirements": env["requirements"], "resolved": requirements,
                       "python": python_tag(), "platform": platform_tag(),
                       "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, fh, indent=1)
        if os.path.lexists(path):  # a folder without a marker: a build that died half-way
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- in use, and removing unused ones (``mloop gc``) ----------------------------------------------
#: ``<key>.use`` files this process holds (name -> descriptor), open until it exits: a runner
#: lives as long as its job.
_HELD: dict = {}


def _flock(fd: int, exclusive: bool, wait: bool) -> bool:
    """Lock ``fd``; False when not waiting and another holder conflicts. Without ``fcntl``
    (Windows) nothing is locked and True is returned: gc then goes by the last use alone."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _lock_use(name: str, *, exclusive: bool, wait: bool) -> int | None:
    """A descriptor of the use file ``name``, locked as asked (None: another holds it and we
    don't wait). A removal unlinks the file while holding it; a lock that ends up on a file no
    longer at ``name`` is dropped and taken again on the current one."""
    while True:
        fd = os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock(fd, exclusive, wait):
            os.close(fd)
            return None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(name)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def hold(root: str, key: str) -> None:
    """Mark environment ``key`` under ``root`` as used now, and in use by this process until it
    exits (a shared lock: jobs share an environment; ``mloop gc`` needs it exclusive). The job
    the runner starts inherits the descriptor, so the hold lasts while either process lives."""
    name = os.path.join(root, key + USE_SUFFIX)
    if name not in _HELD:
        fd = _lock_use(name, exclusive=False, wait=True)
        if fd is None:  # pragma: no cover - a waiting lock is always taken
            return
        os.set_inheritable(fd, True)
        _HELD[name] = fd
    os.utime(name)


def last_used(root: str, key: str) -> float:
    """When environment ``key`` was last used (or, never used since it was built, built)."""
    times = []
    for path in (os.path.join(root, key + USE_SUFFIX), os.path.join(root, key, MARKER), os.path.join(root, key)):
        try:
            times.append(os.stat(path).st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def _key_of(name: str) -> str | None:
    base = name.split(".", 1)[0]
    return base if len(base) == 16 and all(c in "0123456789abcdef" for c in base) else None


def tree_size(path: str) -> int:
    """Bytes of the files below ``path`` (links counted as themselves, vanished files skipped)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def collect(root: str, older_than: float | None, *, dry_run: bool = False,
            now: float | None = None) -> tuple[list[tuple[str, str, int]], list[str]]:
    """Remove the environments under ``root`` that no job used for ``older_than`` seconds and
    none is using now, and what builds or removals cut short left (``<key>.tmp-*``,
    ``<key>.trash-*``): nothing of them is in use when their key's lock is free.

    Each is removed under the key's exclusive lock (see :func:`hold`): its marker first, then
    the folder renamed to ``<key>.trash-*`` and only then deleted, so a later job never takes a
    half-removed environment as ready, and one that wants it meanwhile waits, then builds it anew.

    Args:
        older_than: the ``env_expiry`` setting in seconds; None (never) removes no environment
            (leftovers still go).
        dry_run: remove nothing; report what would go.

    Returns:
        ``(kind, path, bytes)`` per folder removed (or, dry run, removable), kind
        ``environment`` or ``unfinished environment``; and a note per expired environment kept
        because a job is using it.
    """
    import shutil

    if not os.path.isdir(root):
        return [], []
    cutoff = (time.time() if now is None else now) - older_than if older_than is not None else None
    names: dict = {}
    for name in sorted(os.listdir(root)):
        key = _key_of(name)
        if key is not None:
            names.setdefault(key, []).append(name)
    found: list[tuple[str, str, int]] = []
    notes: list[str] = []
    for key, entries in names.items():
        path = os.path.join(root, key)
        leftovers = [os.path.join(root, n) for n in entries
                     if (".tmp-" in n or TRASH_INFIX in n) and os.path.isdir(os.path.join(root, n))]
        before = last_used(root, key)
        expired = cutoff is not None and before < cutoff
        if not expired and not leftovers:
            continue
        use = os.path.join(root, key + USE_SUFFIX)
        existed = os.path.exists(use)
        fd = None
        if existed or not dry_run:  # (no use file: no job holds it, and a dry run makes none)
            fd = _lock_use(use, exclusive=True, wait=False)
            if fd is None:
                if expired and os.path.isdir(path):
                    notes.append(f"environment {path} is in use by a running job; kept")
                continue
        doomed: list[str] = []
        try:
            if not existed and fd is not None:
                os.utime(use, (before, before))  # made just now, to lock it: not a use
            # A job may have used it since we looked; under the lock nobody can start to.
            expired = cutoff is not None and last_used(root, key) < cutoff
            is_env = os.path.isdir(path) and not os.path.islink(path)
            found.extend(("unfinished environment", leftover, tree_size(leftover)) for leftover in leftovers)
            if expired and is_env:
                found.append(("environment", path, tree_size(path)))
            if not dry_run:
                doomed.extend(leftovers)
                if expired and is_env:
                    try:
                        os.unlink(os.path.join(path, MARKER))  # not ready any more, whatever happens next
                    except FileNotFoundError:
                        pass
                    trash = os.path.join(root, f"{key}{TRASH_INFIX}{os.getpid()}-{time.time_ns()}")
                    os.rename(path, trash)
                    doomed.append(trash)
                if expired or not (existed or is_env):
                    # Unlinked while held: a job waiting on the old file takes the new one (_lock_use).
                    for extra in (os.path.join(root, f"{key}.lock"), use):
                        try:
                            os.unlink(extra)
                        except FileNotFoundError:
                            pass
        finally:
            if fd is not None:
                os.close(fd)
        for folder in doomed:
            shutil.rmtree(folder, ignore_errors=True)
    return found, notes


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        if found:
            return found
    raise EnvBuildError("uv is not installed where the job runs; pip install uv (mloop depends on it)")


def _uv_run(cmd: list[str], what: str) -> None:
    """Run uv with its output streamed into the log (line by line); its error lines in the raise."""
    import subprocess

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1"})
    tail: list[str] = []
    assert proc.stdout is not None
    for raw in proc.stdout:
        os.write(1, b"  uv: " + raw)
        tail = (tail + [raw.decode("utf-8", "replace").rstrip()])[-12:]
    code = proc.wait()
    if code != 0:
        errors = [t.strip() for t in tail if t.strip()]
        start = next((i for i, t in enumerate(errors) if t.startswith(("error", "×", "x "))), 0)
        message = " ".join(errors[start:])[:600] or "no output"
        raise EnvBuildError(f"{what} failed (exit {code}): {message}")


def interpreter(path: str) -> str:
    """The Python of the environment at ``path``."""
    return os.path.join(path, "Scripts", "python.exe") if os.name == "nt" else os.path.join(path, "bin", "python")


def _site_packages(path: str) -> str:
    lib = os.path.join(path, "lib")
    for name in sorted(os.listdir(lib)) if os.path.isdir(lib) else ():
        if name.startswith("python"):
            return os.path.join(lib, name, "site-packages")
    return os.path.join(path, "Lib", "site-packages")


def link_mloop(path: str) -> None:
    """Make mloop (``mloop.metrics.MetricLogger``) importable in the environment at ``path``.

    A folder of links to :data:`SHIM_MODULES` in this interpreter, named by where they are
    (``<envs>/_shim/<hash>/``), and a ``_mloop.pth`` in the environment naming it, rewritten when
    this mloop lives elsewhere than the one the file names. ``.pth`` entries go to the end of
    ``sys.path``: a package the job's requirements install wins over the shim's."""
    import importlib.util

    found = []
    for name in SHIM_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        where = list(spec.submodule_search_locations or [])
        found.append((name, where[0] if where else spec.origin))
    digest = hashlib.sha256(repr(found).encode()).hexdigest()[:12]
    shim = os.path.join(os.path.dirname(path), "_shim", digest)
    if not os.path.isdir(shim):
        tmp = f"{shim}.tmp-{os.getpid()}"
        os.makedirs(tmp, exist_ok=True)
        for _name, origin in found:
            if origin:
                os.symlink(origin, os.path.join(tmp, os.path.basename(origin)))
        try:
            os.rename(tmp, shim)
        except OSError:  # another job made it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    pth = os.path.join(_site_packages(path), "_mloop.pth")
    try:
        with open(pth, encoding="utf-8") as fh:
            if fh.read().strip() == shim:
                return
    except OSError:
        pass
    tmp_pth = f"{pth}.{os.getpid()}.tmp"
    with open(tmp_pth, "w", encoding="utf-8") as fh:
        fh.write(shim + "\n")
    os.replace(tmp_pth, pth)
