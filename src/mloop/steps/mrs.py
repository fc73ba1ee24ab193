"""MrsJobStep: a PySpark job, submitted with ``spark-submit`` and run as any other job.

ModelArts submits an MrsJobStep to a MapReduce (MRS) cluster; mloop submits it to the Spark
master ``cluster_id`` names in the settings (``spark_clusters``), or runs it in ``local[*]``
on the job's machine when the id is not configured (the log says which). A Spark job *is* a
job here: its command is ``spark-submit``, run by the same job runner and executor as a
JobStep's script, so staging of inputs and outputs, the log, stop (the process tree: the
shell, the JVM and its Python driver), exit codes and reconcile are the job path's.

The command is assembled as ModelArts does (§6.10 of the reference): ``run_args``, the boot
file, ``app_args``, then ``--<name>=<path>`` for each input and output (appended by the
runner, as for a JobStep). ``properties`` (a dict literal) become ``--conf key=value``.
Before them come mloop's defaults, which the cluster's ``conf``, the properties and the
run_args override in that order: the master, no web UI, and a log4j2 profile that keeps
Spark's console at WARN (the job's own stdout and stderr are never touched).

The boot file is snapshotted on its own (content-addressed, like a JobStep's code folder)
and runs from the job's folder, where Spark's ``spark-warehouse`` and ``metastore_db`` land.
``spark-submit`` comes from ``spark_home`` / ``$SPARK_HOME``, else the ``pyspark`` package
(``pip install 'mloop[spark]'``), else ``PATH``; the Python it runs is the job's
(``PYSPARK_PYTHON``). A run whose Spark or Java is missing is refused before it starts.
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from mloop import runner
from mloop.artifacts import is_local, join_url, local_path
from mloop.artifacts.s3 import job_environment as s3_environment
from mloop.config import Settings, SparkCluster
from mloop.engine.context import InputUnavailable, RunContext
from mloop.engine.handlers import Launched, Outcome
from mloop.errors import NotFoundError
from mloop.executors.base import JobExit, JobInput, JobOutput, JobRequest, Resources
from mloop.spec.models import StepSpec
from mloop.spec.validate import MRS_PARAMETERS as PARAMETERS
from mloop.steps.job import JobHandler, JobSetupError, _obs_root, dataset_files, snapshot_code

DEFAULT_MASTER = "local[*]"
INSTALL_SPARK = "pip install 'mloop[spark]' (or set MLOOP_SPARK_HOME / SPARK_HOME to a Spark installation)"
INSTALL_JAVA = "install Java 17, e.g. apt-get install openjdk-17-jre-headless, or set JAVA_HOME to a JDK/JRE"

#: Spark's console at WARN, on stderr, as its own pyspark shell does; the job's prints are untouched.
LOG4J2 = """\
# mloop: Spark's own logging at WARN (override: properties={'spark.log.level': 'INFO'})
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
"""


@dataclass
class SparkInstall:
    """Where ``spark-submit`` and ``java`` are on this machine."""

    spark_submit: str
    spark_home: str | None  # set in the job's environment (None: spark-submit finds its own)
    java: str
    source: str  # where spark-submit was found: spark_home, SPARK_HOME, pyspark or PATH


@dataclass
class SparkArguments:
    """An MrsJobAlgorithm's parameters, parsed."""

    run_args: list[str] = field(default_factory=list)
    app_args: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)


def find_spark(settings: Settings) -> tuple[str, str | None, str]:
    """``(spark-submit, SPARK_HOME or None, where it was found)`` on this machine.

    Raises:
        JobSetupError: no Spark at all (the hint names the package to install).
    """
    for source, home in (("spark_home", settings.spark_home), ("SPARK_HOME", os.environ.get("SPARK_HOME"))):
        if home:
            home = os.path.abspath(os.path.expanduser(home))
            submit = os.path.join(home, "bin", "spark-submit")
            if not os.access(submit, os.X_OK):
                raise JobSetupError(f"{source} is {home}, which has no bin/spark-submit",
                                    hint=f"point {'MLOOP_SPARK_HOME' if source == 'spark_home' else 'SPARK_HOME'} "
                                         "at a Spark installation, or unset it to use pyspark's")
            return submit, home, source
    import importlib.util

    try:
        found = importlib.util.find_spec("pyspark")
    except (ImportError, ValueError):
        found = None
    if found is not None and found.submodule_search_locations:
        home = list(found.submodule_search_locations)[0]
        submit = os.path.join(home, "bin", "spark-submit")
        if os.access(submit, os.X_OK):
            return submit, home, "pyspark"
    on_path = shutil.which("spark-submit")
    if on_path:
        return on_path, None, "PATH"
    raise JobSetupError("MrsJobSteps run with spark-submit, and there is no Spark here: pyspark is not "
                        f"installed in {sys.executable}, SPARK_HOME is not set and spark-submit is not on PATH",
                        hint=INSTALL_SPARK)


def find_java() -> str:
    """The ``java`` spark-submit will run (``$JAVA_HOME/bin/java``, else ``java`` on PATH).

    Raises:
        JobSetupError: none (the hint names a Java 17 package).
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        java = os.path.join(java_home, "bin", "java")
        if os.access(java, os.X_OK):
            return java
        raise JobSetupError(f"Spark needs Java, and JAVA_HOME ({java_home}) has no bin/java",
                            hint=f"{INSTALL_JAVA}; or unset JAVA_HOME to use java from PATH")
    on_path = shutil.which("java")
    if on_path is None:
        raise JobSetupError("Spark needs Java, and there is no java on PATH (JAVA_HOME is not set)",
                            hint=INSTALL_JAVA)
    return on_path


def spark_install(settings: Settings) -> SparkInstall:
    """Spark and Java on this machine, or the error that says what to install."""
    submit, home, source = find_spark(settings)
    return SparkInstall(submit, home, find_java(), source)


def split_args(value: Any, what: str) -> list[str]:
    """A comma-separated ``run_args`` / ``app_args`` value as argv entries; an entry with a
    space splits as a shell would (``--master yarn``), quotes kept together."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    if not isinstance(value, str):
        raise JobSetupError(f"{what} must be a comma-separated string, got {value!r}",
                            hint=f"e.g. AlgorithmParameters(name={what!r}, value='--a=1,--b=2')")
    out: list[str] = []
    for part in value.split(","):
        try:
            out.extend(shlex.split(part))
        except ValueError as exc:
            raise JobSetupError(f"{what} entry {part.strip()!r} cannot be read: {exc}",
                                hint="close the quote, or drop it") from exc
    return out


def spark_arguments(algorithm: dict[str, Any]) -> SparkArguments:
    """The parameters of an MrsJobAlgorithm (values resolved), checked.

    Raises:
        JobSetupError: an unknown or repeated name, run_args that do not start with an
            option, properties that are no dict literal of simple values.
    """
    args = SparkArguments()
    seen: set[str] = set()
    for param in algorithm.get("parameters") or []:
        name, value = param.get("name"), param.get("value")
        if name not in PARAMETERS:
            raise JobSetupError(f"MrsJobAlgorithm parameter {name!r} is not one of {', '.join(PARAMETERS)}",
                                hint="give spark-submit options as run_args, script arguments as app_args "
                                     "and Spark settings as properties")
        if name in seen:
            raise JobSetupError(f"MrsJobAlgorithm parameter {name!r} is given twice", hint="give it once")
        seen.add(name)
        if name == "properties":
            args.properties = parse_properties(value)
        else:
            setattr(args, name, split_args(value, name))
    if args.run_args and not args.run_args[0].startswith("-"):
        raise JobSetupError(f"run_args start with {args.run_args[0]!r}, which is no spark-submit option",
                            hint="run_args are spark-submit options, e.g. '--master=local[2],--driver-memory=1g'; "
                                 "arguments of the script go in app_args")
    return args


def parse_properties(value: Any) -> dict[str, str]:
    """``properties``: a dict (or its literal as a string) of Spark settings, as ``--conf`` pairs."""
    if value is None or value == "":
        return {}
    parsed = value
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise JobSetupError(f"properties {value!r} is not a dict literal",
                                hint="e.g. properties=\"{'spark.executor.memory': '2g'}\"") from exc
    if not isinstance(parsed, dict):
        raise JobSetupError(f"properties {value!r} is not a dict", hint="e.g. \"{'spark.executor.memory': '2g'}\"")
    out = {}
    for key, item in parsed.items():
        if not isinstance(key, str) or not key or any(c.isspace() or c == "=" for c in key) \
                or isinstance(item, (dict, list, tuple, set)) or item is None:
            raise JobSetupError(f"property {key!r}: {item!r} is not a Spark setting",
                                hint="keys are Spark setting names, values strings or numbers")
        out[key] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def cluster_for(settings: Settings, cluster_id: Any) -> tuple[SparkCluster, bool]:
    """``(cluster, configured)``: the ``spark_clusters`` entry, or ``local[*]`` when there is none."""
    found = settings.spark_clusters.get(str(cluster_id)) if cluster_id is not None else None
    if found is not None:
        return found, True
    return SparkCluster(master=DEFAULT_MASTER), False


def submit_argv(install: SparkInstall, cluster: SparkCluster, args: SparkArguments, boot: str,
                log4j: str | None) -> list[str]:
    """``spark-submit`` and its options up to the script's arguments (inputs and outputs are
    appended by the runner). Later ``--conf`` of a key wins, so the order is: mloop's
    defaults, the cluster's conf, the step's properties, then the run_args."""
    conf: dict[str, str] = {"spark.ui.enabled": "false"}
    conf.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in cluster.conf.items()})
    conf.update(args.properties)
    # The log profile is a file on this machine, for a driver that runs here; Spark splits
    # the option on spaces; a user's own extraJavaOptions stand.
    remote_driver = (conf.get("spark.submit.deployMode") == "cluster"
                     or any(a in ("--deploy-mode=cluster", "cluster") for a in args.run_args))
    if log4j and not remote_driver and "spark.driver.extraJavaOptions" not in conf \
            and not any(c.isspace() or c in "'\"\\" for c in log4j):
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{log4j}"
    argv = [install.spark_submit]
    if _master(args.run_args) is None:
        argv += ["--master", cluster.master]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, *args.run_args, boot, *args.app_args]


def _master(run_args: list[str]) -> str | None:
    """The ``--master`` the run_args give (they win over the cluster's), if any."""
    for i, arg in enumerate(run_args):
        if arg.startswith("--master="):
            return arg.split("=", 1)[1]
        if arg == "--master" and i + 1 < len(run_args):
            return run_args[i + 1]
    return None


def _threads(master: str) -> float:
    """CPU cores a local master uses (what the job asks its executor for)."""
    if master.startswith("local[") and master.endswith("]"):
        inside = master[len("local["):-1].split(",")[0]
        if inside == "*":
            return float(os.cpu_count() or 1)
        return float(max(1, int(inside))) if inside.isdigit() else 1.0
    return 1.0  # local: one thread; a cluster: the driver here, its executors elsewhere


@dataclass
class _Locations:
    """Where a Spark job's inputs and outputs are, as the job runner stages them."""

    inputs: list[JobInput] = field(default_factory=list)
    staged_in: dict[str, str] = field(default_factory=dict)  # remote inputs, downloaded by the runner
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: list[JobOutput] = field(default_factory=list)
    produced: dict[str, Any] = field(default_factory=dict)  # the step's outputs, once it succeeds
    metric_files: dict[str, list[str]] = field(default_factory=dict)


def _locations(step: StepSpec, ctx: RunContext) -> _Locations:
    """The step's inputs and outputs as a JobStep's are (local in place, remote staged, a
    dataset version laid out), each output a folder (``OBSOutputConfig``)."""
    io = _Locations()
    for inp in step.inputs:
        url = ctx.field_location(inp.data)
        if isinstance(url, dict):  # a data selector that picked a dataset version
            files, io.datasets[inp.name] = dataset_files(ctx, step.name, inp.name, url)
            io.inputs.append(JobInput(inp.name, "", "files", files))
        elif not isinstance(url, str) or not url:
            raise JobSetupError(f"input {inp.name!r} of step {step.name!r} has no location ({url!r})",
                                step=step.name, input=inp.name)
        elif is_local(url):
            io.inputs.append(JobInput(inp.name, local_path(url) or url, "local"))
        else:
            io.inputs.append(JobInput(inp.name, url, "download"))
            io.staged_in[inp.name] = url
    for out in step.outputs:
        config = ctx.resolve(out.config) or {}
        url = ctx.field_location((out.config or {}).get("obs_url"))
        if not isinstance(url, str) or not url:
            raise JobSetupError(f"output {out.name!r} of step {step.name!r} has no obs_path", step=step.name,
                                input=out.name, hint="MrsJobOutput(name, obs_config=OBSOutputConfig(obs_path=...))")
        local = local_path(url) if is_local(url) else None
        io.outputs.append(JobOutput(out.name, local or url, "local" if local is not None else "upload"))
        io.produced[out.name] = {"type": "obs", "url": url}
        if config.get("metric_file"):
            io.metric_files[out.name] = [os.path.join(local, config["metric_file"]) if local is not None
                                         else join_url(url, config["metric_file"])]
    return io


class MrsJobHandler(JobHandler):
    """Runs an MrsJobStep as a job whose command is ``spark-submit`` (see the module docstring).

    ``finish`` and ``cancel`` are the JobStep's: an exit code of 0 succeeds (outputs and
    ``metric_file`` metrics recorded), any other fails with the code and the log's tail, and
    a stop ends the job's whole process tree."""

    def _boot(self, step: StepSpec, ctx: RunContext) -> str:
        """The boot file as an absolute local path (read as every OBS field is)."""
        raw = (step.properties.get("algorithm") or {}).get("boot_file")
        where = ctx.field_location(raw) if raw else None
        if not where or not isinstance(where, str):
            raise JobSetupError(f"step {step.name!r}: MrsJobAlgorithm has no boot_file", step=step.name,
                                hint="e.g. MrsJobAlgorithm(boot_file='wordcount.py') (relative to the workflow file)")
        if not is_local(where):
            raise JobSetupError(f"boot_file {raw!r} is at {where}, not on this machine", step=step.name,
                                hint="give a local file (or set obs_root to a folder, for obs:// paths)")
        path = os.path.normpath(local_path(where) or where)
        if not os.path.isfile(path):
            raise JobSetupError(f"step {step.name!r}: boot_file {raw!r} is not a file (looked at {path})",
                                step=step.name, hint="a relative boot_file is read from the workflow file's folder")
        return path

    def _snapshot(self, ctx: RunContext, boot: str) -> tuple[str, str]:
        """The boot file's snapshot ``(url, digest)``: a folder holding just that file,
        content-addressed like a JobStep's code, taken once per run."""
        key = ("mrs-boot", boot)
        if key not in ctx.memo:
            with tempfile.TemporaryDirectory(prefix="mloop-spark-") as scratch:
                shutil.copy2(boot, os.path.join(scratch, os.path.basename(boot)))
                ctx.memo[key] = snapshot_code(ctx.artifacts, scratch)
        found: tuple[str, str] = ctx.memo[key]
        return found

    def start(self, step: StepSpec, ctx: RunContext, attempt: int, on_exit: Any) -> Outcome | Launched:
        props = ctx.resolve(step.properties)
        install = spark_install(ctx.settings)
        args = spark_arguments(props.get("algorithm") or {})
        boot = self._boot(step, ctx)
        cluster_id = props.get("cluster_id")
        cluster, configured = cluster_for(ctx.settings, cluster_id)
        code_url, code_hash = self._snapshot(ctx, boot)
        step_dir = os.path.join(ctx.run_dir, "steps", step.name)
        workdir = os.path.join(step_dir, f"attempt-{attempt}")
        log_path = os.path.join(step_dir, "job.log")
        log4j = os.path.join(step_dir, "spark-log4j2.properties")  # beside the log: kept by every attempt
        os.makedirs(step_dir, exist_ok=True)
        with open(log4j, "w", encoding="utf-8") as fh:
            fh.write(LOG4J2)
        argv = submit_argv(install, cluster, args, os.path.basename(boot), log4j)
        master = _master(args.run_args) or cluster.master
        io = _locations(step, ctx)
        header = [f"mloop: attempt {attempt} of Spark step {step.name}, master {master}"
                  + (f" (cluster {cluster_id!r})" if configured else ""),
                  f"mloop: boot file {boot} (snapshot {code_hash[:12]})",
                  f"mloop: spark-submit of {install.source}: {install.spark_submit}"]
        if not configured:
            header.insert(1, f"mloop: cluster_id {cluster_id!r} is not in spark_clusters: local mode here")
        minutes = step.policy.max_execution_minutes if step.policy else 10080
        env = {"MLOOP_OBS_ROOT": _obs_root(ctx), **s3_environment(ctx.settings),  # as a JobStep's
               "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
        if install.spark_home:
            env["SPARK_HOME"] = install.spark_home
        request = JobRequest(
            ctx.run_id, step.name, code_url, "code", log_path,
            command="exec " + " ".join(shlex.quote(a) for a in argv),
            inputs=io.inputs, outputs=io.outputs, env=env,
            resources=Resources(cpu=_threads(master), memory_gb=2.0, flavor_id=f"spark:{master}"),
            timeout_seconds=float(minutes) * 60, workdir=workdir, workflow_name=ctx.spec.name, attempt=attempt,
            keep_patterns=list(ctx.settings.keep_workdir_patterns),
            keep_url=ctx.artifacts.url("runs", ctx.run_id, "steps", step.name, f"attempt-{attempt}", "workdir")
            if ctx.settings.keep_workdir_patterns else None,
            log_header="\n".join(header))
        wire = request.to_dict()
        job_argv, _ = runner.contract(wire)
        handle = self.executor.launch(request, on_exit)
        values = {i["name"]: runner.input_path(wire, i) for i in wire["inputs"]}
        return Launched(handle, state={"outputs": io.produced, "metric_files": io.metric_files, "log_path": log_path,
                                       "step_metrics": runner.step_metrics_path(wire), "keep_url": wire["keep_url"],
                                       "tracking": None, "attempt": attempt, "cache": None},
                        fields={"workdir": workdir, "log_path": log_path, "code_hash": code_hash, "pid": handle.pid,
                                "executor_ref": handle.ref,
                                "inputs": {"values": values, "staged": io.staged_in, "algorithm": f"spark:{boot}",
                                           "engine": {"spark_master": master, "cluster_id": cluster_id},
                                           "argv": job_argv, "datasets": io.datasets}})

    def finish(self, step: StepSpec, ctx: RunContext, launched: Launched, exit: JobExit) -> Outcome:
        outcome = super().finish(step, ctx, launched, exit)
        if outcome.status == "failed" and outcome.message and outcome.message.startswith("the job "):
            outcome.message = "the Spark job " + outcome.message[len("the job "):]
        return outcome

    def preflight(self, step: StepSpec, ctx: RunContext) -> None:
        """Refuse the run before it starts when Spark or Java is missing, a parameter is
        wrong or the boot file is not there (values from earlier steps wait for the start)."""
        spark_install(ctx.settings)
        try:
            props = ctx.resolve(step.properties)
        except (NotFoundError, InputUnavailable):
            return
        spark_arguments(props.get("algorithm") or {})
        self._boot(step, ctx)
