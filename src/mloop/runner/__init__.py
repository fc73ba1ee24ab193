"""The job runner: runs one job where the job runs (``python -m mloop.runner REQUEST``).

Layer: executors (the program an executor starts; it imports no other part of mloop at start).

An executor starts it with a job request (see :class:`mloop.executors.base.JobRequest`,
here as plain JSON: inline text that starts with ``{``, or the path of a file holding it).
It

1. makes the job folder and lays the code snapshot out in it (``<workdir>/<code_name>``);
2. stages inputs: a local URL is used in place, a remote one (``s3://``, ``memory://``, ...)
   is downloaded to ``<workdir>/inputs/<name>``, a dataset version (a plain file list) is
   laid out there;
3. runs the algorithm with the job contract of DESIGN.md (``--name=value`` arguments,
   ``MLOOP_*`` variables, ``MA_JOB_DIR``), a ``boot_file`` *in this very process* (one
   interpreter per job, as when the script is run by hand), a ``command`` under ``/bin/sh -c``;
   a job with an ``environment`` (a ``requirements.txt``, see :mod:`mloop.runner.envs`) first
   has it made or reused here, then runs as a child process of its interpreter;
4. after a successful run, uploads outputs and metrics files whose URLs are not local;
5. writes everything to the log (a local path, appended to; a remote URL is uploaded at the end);
6. exits with the script's exit code, or :data:`EXIT_STAGE_IN` / :data:`EXIT_STAGE_OUT` with
   a ``mloop: ...`` line in the log when staging in or uploading failed.

Cost matters: this runs once per job and its CPU counts against every step. At import it
uses the standard library only, and only modules a bare interpreter has loaded already;
fsspec and the rest of mloop are imported (by :mod:`mloop.runner._remote`) only when a
non-local URL must actually be staged.
"""

# No ``from __future__ import annotations``: importing __future__ is one module more per job,
# and Python >= 3.10 reads these annotations as they are.
import os
import sys

#: The runner's exit code when code or an input could not be staged (the script never ran).
EXIT_STAGE_IN = 240
#: The runner's exit code when the script succeeded but an output or metrics file could not be uploaded.
EXIT_STAGE_OUT = 241
#: The line a staging failure writes to the log starts with this (the handler reports the rest).
FAILURE_PREFIX = "mloop: job runner: "

_LOCAL_PROTOCOLS = ("file://", "local://")


class StagingError(Exception):
    """Something could not be staged in or out; the message is for the log."""


def log_tail(path: str | None, lines: int) -> list[str]:
    """The last ``lines`` lines of a job's log (what a door shows when the step failed)."""
    if not path or lines <= 0 or not os.path.exists(path):
        return []
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]


def main(argv: list[str] | None = None) -> None:
    """``python -m mloop.runner REQUEST``: run the job; exit with its exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m mloop.runner REQUEST_JSON | REQUEST_FILE\n")
        sys.exit(2)
    sys.exit(run(load_request(args[0])))


# -- the request ----------------------------------------------------------------------------
def load_request(arg: str) -> dict:
    """The request: JSON text (starting with ``{``) or the path of a JSON file."""
    if not arg.startswith("{"):
        with open(arg, encoding="utf-8") as fh:
            arg = fh.read()
    return _loads(arg)


def _loads(text: str) -> dict:
    # json.loads imports re, enum and functools (milliseconds per job); the C scanner under
    # it needs none of them.
    try:
        import _json

        class _Context:
            strict = True
            object_hook = object_pairs_hook = None
            parse_float, parse_int = float, int

            @staticmethod
            def parse_constant(name: str) -> float:
                return float(name.replace("Infinity", "inf"))

        value, end = _json.make_scanner(_Context)(text.strip(), 0)
        return value
    except ImportError:  # pragma: no cover - an interpreter without the C accelerator
        import json

        return json.loads(text)


# -- URLs -------------------------------------------------------------------------------------
def local_path(url: str) -> str | None:
    """The OS path of a local location (plain path, ``file://``), None for anything remote.

    The same rules as :func:`mloop.artifacts.local_path`, without importing it.
    """
    scheme = url.find("://")
    if scheme < 0 or (scheme < 2 and "::" not in url):  # a path (a drive letter is no scheme)
        return None if "::" in url else url
    if "::" in url or not url.lower().startswith(_LOCAL_PROTOCOLS):
        return None
    rest = url[scheme + 3:]
    if rest.startswith("localhost/"):
        rest = rest[len("localhost"):]
    return rest


def env_key(name: str) -> str:
    """``MLOOP_INPUT_<KEY>``: the name upper-cased, anything but letters and digits as ``_``."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in name).upper()


# -- the contract ---------------------------------------------------------------------------
def input_path(request: dict, inp: dict) -> str:
    """Where the script finds input ``inp``: the local path itself, or its folder in the job."""
    if inp["kind"] == "local":
        return local_path(inp["url"]) or inp["url"]
    return os.path.join(request["workdir"], "inputs", inp["name"])


def output_path(request: dict, out: dict) -> str:
    """Where the script writes output ``out`` (a folder, with a trailing separator when staged)."""
    if out["kind"] == "local":
        return local_path(out["url"]) or out["url"]
    return os.path.join(request["workdir"], "outputs", out["name"]) + os.sep


def metrics_path(request: dict, metric: dict) -> str:
    """Where the script writes metrics file ``metric``."""
    if metric["kind"] == "local":
        return local_path(metric["url"]) or metric["url"]
    base = metric["url"].rstrip("/").rsplit("/", 1)[-1] or "metrics.json"
    return os.path.join(request["workdir"], "metrics", metric["output"], base)


def step_metrics_path(request: dict) -> str:
    """The metrics file a job may write without declaring an output (``MLOOP_STEP_METRICS``)."""
    return os.path.join(request["workdir"], "step-metrics.json")


def code_folder(request: dict) -> str:
    return os.path.join(request["workdir"], request["code_name"])


def contract(request: dict, environ: dict | None = None) -> tuple[list[str], dict[str, str]]:
    """The job's argv and the environment variables it gets on top of ``environ``.

    argv is ``[python, <boot file>, *args]`` or ``["/bin/sh", "-c", '<command> "$@"',
    "mloop-job", *args]``; args are inputs, then outputs, then parameters, as ``--name=value``.
    """
    environ = os.environ if environ is None else environ
    workdir = request["workdir"]
    resources = request.get("resources") or {}
    env: dict[str, str] = {
        "MLOOP_RUN_ID": request["run_id"], "MLOOP_STEP_NAME": request["step_name"],
        "MLOOP_WORKFLOW_NAME": request.get("workflow_name", ""), "MLOOP_ATTEMPT": str(request.get("attempt", 1)),
        "MA_JOB_DIR": workdir, "PYTHONUNBUFFERED": "1", "MLOOP_FLAVOR": resources.get("flavor_id", ""),
        # Metrics the job reports without a declared output (mloop.metrics.analyse writes here).
        "MLOOP_STEP_METRICS": step_metrics_path(request),
    }
    if not resources.get("gpu"):
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU flavor gets no GPU, as on a cloud CPU node
    # The flavor's CPU count bounds the job's math threads, so steps running side by side
    # don't oversubscribe the cores (unless the user set them).
    threads = str(max(1, min(int(resources.get("cpu", 1)), os.cpu_count() or 1)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = environ.get(var, threads)
    env["MLOOP_CPUS"] = threads
    args: list[str] = []
    for inp in request.get("inputs") or ():
        path = input_path(request, inp)
        args.append(f"--{inp['name']}={path}")
        env[f"MLOOP_INPUT_{env_key(inp['name'])}"] = path
    for out in request.get("outputs") or ():
        path = output_path(request, out)
        args.append(f"--{out['name']}={path}")
        env[f"MLOOP_OUTPUT_{env_key(out['name'])}"] = path
    by_output: dict[str, list[str]] = {}
    for metric in request.get("metrics") or ():
        by_output.setdefault(metric["output"], []).append(metrics_path(request, metric))
    for name in request.get("metrics_outputs") or ():
        # Not an argument (ModelArts passes none, and strict argparse scripts would choke
        # on it), but a job may look its metrics file up here.
        env[f"MLOOP_METRICS_{env_key(name)}"] = os.pathsep.join(by_output.get(name, ()))
    for name, text in request.get("parameters") or ():
        args.append(f"--{name}={text}")
        env[f"MLOOP_PARAM_{env_key(name)}"] = text
    env.update(request.get("env") or {})
    # Jobs use the interpreter the runner runs in, so "python" in a command is the same one.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environ.get("PATH", "")
    if request.get("boot_file"):
        argv = [sys.executable, os.path.normpath(os.path.join(code_folder(request), request["boot_file"])), *args]
    else:
        argv = ["/bin/sh", "-c", f'{request["command"]} "$@"', "mloop-job", *args]
    return argv, env


# -- running --------------------------------------------------------------------------------
def run(request: dict) -> int:
    """Run the job of ``request`` here; its exit code (see the module docstring)."""
    log_url = request["log_url"]
    log_local = local_path(log_url)
    log_file = log_local or os.path.join(os.path.dirname(request["workdir"].rstrip(os.sep)),
                                         f"job-{request.get('attempt', 1)}.log")
    _redirect_output(log_file)
    try:
        if request.get("log_header"):
            os.write(1, (request["log_header"] + "\n").encode())
        argv, env = contract(request)
        try:
            _stage_in(request)
        except StagingError as exc:
            _fail(f"could not stage the job in: {exc}")
            return EXIT_STAGE_IN
        os.environ.update(env)
        if request.get("environment"):
            try:
                argv = _in_environment(request, argv)
            except Exception as exc:  # noqa: BLE001 - envs.EnvBuildError, or anything the build hit
                _fail(f"could not make the job's environment: {exc}")
                return EXIT_STAGE_IN
        os.chdir(code_folder(request))
        before = _kept_files(request) if request.get("keep_url") else {}
        if request.get("boot_file") and argv[0] == sys.executable:
            code = _run_boot_file(argv, request.get("boot_code_url"))
        else:
            code = _run_command(argv)
        if code != 0:
            return code
        try:
            _stage_out(request)
            if request.get("keep_url"):
                _keep_workdir(request, before)
        except StagingError as exc:
            _fail(f"could not upload the job's outputs: {exc}")
            return EXIT_STAGE_OUT
        return 0
    finally:
        if log_local is None:
            _upload_log(log_file, log_url)


def _in_environment(request: dict, argv: list[str]) -> list[str]:
    """The job's argv in its environment (see :mod:`mloop.runner.envs`), made here if needed.

    A job in a virtual environment runs as a child of this runner, ``<env>/bin/python <boot
    file> args...``, rather than in the runner's own interpreter: its packages are not the
    engine's. The contract is the same (argv, ``MLOOP_*`` variables, working folder, the log on
    fds 1 and 2, a stop ends the whole session), and ``mloop`` stays importable there."""
    from mloop.runner import envs

    env = request["environment"]
    envs.check_apt(env)
    kind = env.get("kind")
    if kind == "venv":
        path, _reused = envs.ensure(env)
        python = envs.interpreter(path)
        os.environ["VIRTUAL_ENV"] = path
        os.environ["PATH"] = os.path.dirname(python) + os.pathsep + os.environ.get("PATH", "")
        return [python, *argv[1:]] if argv[0] == sys.executable else argv
    if kind == "container":
        runtime = env.get("runtime") or envs.container_runtime()
        if not runtime:
            raise envs.EnvBuildError(f"the job's image {env['image']} needs docker or podman on this machine")
        return envs.container_argv(runtime, env["image"], argv, dict(os.environ), request["workdir"],
                                   code_folder(request), bool((request.get("resources") or {}).get("gpu")))
    return argv  # "engine" (its interpreter has the requirements) or "system" (apt only)


def _redirect_output(path: str) -> None:
    """Point fds 1 and 2 at the log (the executor may have done it already)."""
    try:  # a stat, not an open: the local executor has pointed them there already
        mine, out = os.stat(path), os.fstat(1)
        if (mine.st_dev, mine.st_ino) == (out.st_dev, out.st_ino):
            return
    except OSError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _fail(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(2, f"{FAILURE_PREFIX}{message}\n".encode())


def write_boot_code(source_path: str, dest: str) -> None:
    """Compile a boot file once (engine side) for :func:`_boot_code` to load in every job:
    this interpreter's magic number, then the marshalled code. Written atomically."""
    import marshal

    with open(source_path, "rb") as fh:
        code = compile(fh.read(), source_path, "exec", dont_inherit=True)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = f"{dest}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(_magic() + marshal.dumps(code))
    os.replace(tmp, dest)


def _magic() -> bytes:
    import _frozen_importlib_external  # always loaded: the import system itself

    magic: bytes = _frozen_importlib_external.MAGIC_NUMBER
    return magic


def _boot_code(boot: str, source: bytes, cached: str | None) -> object:
    """The boot file's code: loaded from the engine's compiled copy when it is there and was
    compiled by this very interpreter version (the first ``compile()`` in a process costs
    ~1.5 ms of CPU: it builds the AST types), else compiled here."""
    path = local_path(cached) if cached else None
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            data = b""
        magic = _magic()
        if data[:len(magic)] == magic:
            import _imp
            import marshal

            code = marshal.loads(data[len(magic):])
            _imp._fix_co_filename(code, boot)  # tracebacks name the job's copy, as when compiled here
            return code
    return compile(source, boot, "exec", dont_inherit=True)


def _run_boot_file(argv: list[str], cached: str | None = None) -> int:
    """Run the script in this process as ``python <boot file> args...`` would."""
    boot = argv[1]
    try:
        with open(boot, "rb") as fh:
            source = fh.read()
    except OSError as exc:
        sys.stderr.write(f"{sys.executable}: can't open file {boot!r}: [Errno {exc.errno}] {exc.strerror}\n")
        return 2
    module = type(sys)("__main__")
    module.__dict__.update(__file__=boot, __builtins__=__builtins__, __cached__=None, __loader__=None,
                           __package__=None, __spec__=None)
    sys.modules["__main__"] = module
    sys.argv = argv[1:]
    sys.path[0] = os.path.dirname(boot)
    try:
        exec(_boot_code(boot, source, cached), module.__dict__)  # noqa: S102 - the user's own script
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - reported as the interpreter would
        tb = exc.__traceback__
        exc.__traceback__ = tb.tb_next if tb is not None else None  # the runner's frame is not the user's
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        _flush()
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _run_command(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


# -- staging --------------------------------------------------------------------------------
def _stage_in(request: dict) -> None:
    workdir = request["workdir"]
    if os.path.lexists(workdir):
        import shutil

        shutil.rmtree(workdir)
    try:
        os.makedirs(workdir)
        code_url = request["code_url"]
        code_local = local_path(code_url)
        if code_local is not None:
            if not os.path.isdir(code_local):
                raise StagingError(f"the code snapshot {code_url} is missing")
            _copy_tree(code_local, code_folder(request))
        else:
            _fsspec().download_dir(code_url, code_folder(request))
        for inp in request.get("inputs") or ():
            if inp["kind"] == "download":
                _fsspec().download_dir(inp["url"], input_path(request, inp))
            elif inp["kind"] == "files":
                _lay_out(inp.get("files") or [], input_path(request, inp))
        for out in request.get("outputs") or ():
            os.makedirs(output_path(request, out), exist_ok=True)
        for metric in request.get("metrics") or ():
            if metric["kind"] != "local":
                os.makedirs(os.path.dirname(metrics_path(request, metric)), exist_ok=True)
    except StagingError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here means the job can't start
        raise StagingError(str(exc) or type(exc).__name__) from exc


def _stage_out(request: dict) -> None:
    try:
        for out in request.get("outputs") or ():
            if out["kind"] == "upload":
                _fsspec().upload_dir(output_path(request, out), out["url"])
        for metric in request.get("metrics") or ():
            if metric["kind"] == "upload":
                path = metrics_path(request, metric)
                if os.path.isfile(path):  # a missing file is the handler's to report, as before
                    _fsspec().upload_file(path, metric["url"])
    except Exception as exc:  # noqa: BLE001
        raise StagingError(str(exc) or type(exc).__name__) from exc


def _kept_files(request: dict) -> dict:
    """``{relative path: (size, mtime_ns)}`` of the files in the job's working folder (the code
    folder it runs in) that match ``keep_patterns``: ``name/`` is a folder, anything else a
    path or glob relative to the folder."""
    top = code_folder(request)
    found: dict = {}
    for pattern in request.get("keep_patterns") or ():
        rel = pattern.strip().rstrip("/")
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            continue
        if any(c in rel for c in "*?["):
            import glob

            names = glob.glob(rel, root_dir=top)
        else:
            names = [rel] if os.path.lexists(os.path.join(top, rel)) else []
        for name in names:
            path = os.path.join(top, name)
            if os.path.isdir(path) and not os.path.islink(path):
                for folder, _dirs, files in os.walk(path):
                    for f in files:
                        full = os.path.join(folder, f)
                        if os.path.isfile(full):
                            st = os.stat(full)
                            found[os.path.relpath(full, top)] = (st.st_size, st.st_mtime_ns)
            elif os.path.isfile(path) and not pattern.rstrip().endswith("/"):
                st = os.stat(path)
                found[name] = (st.st_size, st.st_mtime_ns)
    return found


def _keep_workdir(request: dict, before: dict) -> None:
    """Keep the matching files the job wrote or changed at ``keep_url`` (their relative paths kept)."""
    try:
        url = request["keep_url"]
        top = code_folder(request)
        local = local_path(url)
        for rel, stamp in sorted(_kept_files(request).items()):
            if before.get(rel) == stamp:
                continue  # came with the code, untouched
            src = os.path.join(top, rel)
            if local is not None:
                dst = os.path.join(local, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if os.path.lexists(dst):
                    os.unlink(dst)
                _copy_file(src, dst)
            else:
                _fsspec().upload_file(src, url.rstrip("/") + "/" + rel.replace(os.sep, "/"))
    except Exception as exc:  # noqa: BLE001
        raise StagingError(f"could not keep the working folder's files: {exc}") from exc


def _upload_log(path: str, url: str) -> None:
    _flush()
    try:
        _fsspec().upload_file(path, url)
    except Exception as exc:  # noqa: BLE001 - the job's own result stands
        _fail(f"could not upload the log to {url}: {exc}")


def _copy_tree(src: str, dst: str) -> None:
    """Copy a folder (files keep their permission bits); stdlib only, no shutil import."""
    os.mkdir(dst)
    with os.scandir(src) as entries:
        for entry in entries:
            target = os.path.join(dst, entry.name)
            if entry.is_dir(follow_symlinks=False):
                _copy_tree(entry.path, target)
            else:
                _copy_file(entry.path, target)
    os.chmod(dst, os.stat(src).st_mode & 0o7777)


def _copy_file(src: str, dst: str) -> None:
    fd_in = os.open(src, os.O_RDONLY)
    try:
        mode = os.fstat(fd_in).st_mode & 0o7777
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while chunk := os.read(fd_in, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd_out, view):]
            os.fchmod(fd_out, mode)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _lay_out(files: list, dest: str) -> None:
    """Write a dataset version's file list into ``dest`` (which must be new or empty).

    Each entry is ``{"path", "url", "size", "offset"?, "text"?}``: ``text`` is written as it
    is (mloop's ``manifest.json``), ``offset`` reads ``size`` bytes of a pack, otherwise the
    whole object at ``url`` is reflinked when local and the file system can, else copied. Never
    hard-linked: the job (root ignores modes) would write through to the store and change every
    version holding the object. The engine checked the objects before the launch; a size that
    differs here (the object changed since) fails the staging, nothing is served.
    """
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise StagingError(f"{dest} already exists and is not an empty folder")
    os.makedirs(dest, exist_ok=True)
    for folder in sorted({os.path.dirname(f["path"]) for f in files}):
        if folder:
            os.makedirs(os.path.join(dest, folder), exist_ok=True)
    packs: dict[str, bytes] = {}
    for f in files:
        target = os.path.join(dest, f["path"])
        if ".." in f["path"].split("/") or f["path"].startswith("/"):
            raise StagingError(f"dataset file {f['path']!r} climbs out of {dest}")
        if f.get("text") is not None:
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(f["text"])
            continue
        url = f["url"]
        source = local_path(url)
        if f.get("offset") is not None:
            if url not in packs:
                packs[url] = _read_all(source) if source is not None else _fsspec().read_bytes(url)
            data = packs[url][f["offset"]:f["offset"] + f["size"]]
            if len(data) != f["size"]:
                raise StagingError(f"dataset pack {url} is shorter than its index says")
            with open(target, "wb") as fh:
                fh.write(data)
        elif source is not None:
            try:
                _clone_file(source, target)
            except FileNotFoundError as exc:
                raise StagingError(f"dataset object {url} is missing from the artifact store") from exc
        else:
            _fsspec().download_file(url, target)
        if f.get("size") is not None and os.stat(target).st_size != f["size"]:
            raise StagingError(f"dataset file {f['path']} is damaged in the artifact store ({url}: "
                               f"{os.stat(target).st_size} bytes instead of {f['size']}); run "
                               "`mloop dataset verify NAME` to list the damaged files")


def _clone_file(src: str, dst: str) -> None:
    """``dst`` as a file of its own with ``src``'s bytes: a reflink (``FICLONE``) where the file
    system has them, else a copy (see :func:`mloop.datasets.objects.clone_file`; stdlib only)."""
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                import fcntl

                fcntl.ioctl(fd_out, 0x40049409, fd_in)  # FICLONE
                return
            except (ImportError, OSError):
                pass  # no reflinks here (ext4, tmpfs, another file system): copy
            size = os.fstat(fd_in).st_size
            done = 0
            copy_range = getattr(os, "copy_file_range", None)
            try:
                while copy_range is not None and done < size:
                    n = copy_range(fd_in, fd_out, size - done)
                    if n == 0:
                        break
                    done += n
            except OSError:
                if done:
                    raise
            if done == 0 and size:
                while chunk := os.read(fd_in, 1 << 20):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd_out, view):]
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _read_all(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise StagingError(f"dataset pack {path} is missing from the artifact store") from exc


def _fsspec():  # type: ignore[no-untyped-def]  # noqa: ANN202
    from mloop.runner import _remote

    return _remote
