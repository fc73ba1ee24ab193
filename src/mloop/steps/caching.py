"""Step caching: a job reuses the result of an earlier identical job instead of running.

What decides a job's result is its code, the content of its inputs (a dataset by its
version), its parameters, the environment it runs in and its flavor (and, since a job sees
them, its workflow's and step's names: a result is reused by the same step only). Resolved
for this run, those are the step's *facts* (``cache_facts``); the digest of their ``parts`` is its
``cache_key``. A job reuses an earlier result when a succeeded job with the same key *ran*
(it was not itself cached), finished within ``cache_expiry``, and left its outputs where
they were, unchanged. It then takes that job's outputs (the same locations: nothing is
copied, so downstream steps read the earlier bytes), its metrics (copied to this run, so
conditions on them work downstream) and its artifacts, and says "cached from run R, step S".

Otherwise the job runs, and its facts say why it was not cached: caching is off (setting,
``--no-cache``, ``StepPolicy(cache=False)``), the earlier result expired or its outputs are
gone or changed, or, compared with the last succeeded run of the same step of the workflow,
what differs (a code file by name, an input, a parameter, the environment, the flavor).
``mloop show`` prints it.

Outputs are checked without reading them: a job that succeeds records, per output location,
a *shape* (names, sizes and modification times) and a content digest. A later hit re-walks
the shape; only when it differs is the content hashed again. Content digests also serve as
downstream inputs' digests in the same run (memoised by shape), so an output is read once.

Layer: steps (the job handler's helper), not engine: the facts are a job's (its code
snapshot, its inputs as the handler resolves them, its flavor), and the engine is kind-blind;
a hit is an :class:`~mloop.engine.handlers.Outcome` returned at once, recorded with the same
transition as any step's. Only jobs are cached: steps with side effects (registering a
model, deploying a service, labeling, datasets) always run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mloop.artifacts import dir_manifest, hash_dir, hash_file, is_local, local_path
from mloop.artifacts.hashing import walk_tree
from mloop.engine.context import RunContext
from mloop.engine.handlers import Outcome
from mloop.durations import duration_seconds
from mloop.errors import MloopError
from mloop.spec.models import StepSpec
from mloop.store.base import NewArtifact, StepRecord

__all__ = ["FACTS_VERSION", "Decision", "content_digest", "decide", "describe", "differences",
           "environment_facts", "expiry_seconds", "finished_fields", "hit_outcome", "shape"]

#: Bumped when what goes into the key changes: older facts then never match (a miss that says so).
FACTS_VERSION = 1
#: Code folders with more files than this keep no per-file digests (a change is "the code changed").
MAX_CODE_FILES = 2000
#: At most this many differences are named in a reason.
MAX_REASONS = 3


@dataclass
class Decision:
    """What the cache check found for one job: the key and facts to record, and the step
    whose result it reuses (None: the job runs; ``facts["reason"]`` says why)."""

    key: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    origin: StepRecord | None = None

    def launch_fields(self) -> dict[str, Any]:
        """The step fields recorded when the job launches (the key, and why it was not cached)."""
        return {"cache_key": self.key, "cache_facts": self.facts or None}


# -- the facts -------------------------------------------------------------------------------------

def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def environment_facts(code_dir: str, settings: Any, engine: dict[str, Any] | None = None) -> dict[str, Any]:
    """What identifies the environment a job of ``code_dir`` runs in, as known before it
    starts: the interpreter's version, the platform and the digest of the folder's
    requirements.txt, refined by the per-job environment's own record
    (:func:`mloop.runner.envs.environment_key`: its kind, key, image, ...) where it has one.
    Where the environment lives on this machine (its path) is left out."""
    requirements = os.path.join(code_dir, "requirements.txt")
    facts: dict[str, Any] = {
        "python": platform.python_version(), "implementation": sys.implementation.name,
        "platform": f"{sys.platform}-{platform.machine()}",
        "requirements": hash_file(requirements) if os.path.isfile(requirements) else None}
    from mloop.runner import envs

    try:
        own = envs.environment_key(code_dir, settings, engine)
    except (MloopError, OSError, ValueError, TypeError):
        own = None
    if isinstance(own, dict):
        # Its requirements digest covers an engine's mapped requirements too; its python tag
        # says less than the version above; its path is where this machine keeps it.
        facts.update({k: v for k, v in own.items() if k not in ("path", "python")})
    return facts


def _code_files(ctx: RunContext, code_url: str, code_hash: str, code_dir: str) -> dict[str, str] | None:
    """``{relative path: sha256}`` of the code snapshot, to name a changed file. Kept next to
    the snapshot (``code/<digest>.files.json``) when the store is local: a snapshot never
    changes, so each is listed once, not once per step."""
    key = ("cache.code_files", code_hash)
    if key in ctx.memo:
        memo: dict[str, str] | None = ctx.memo[key]
        return memo
    snapshot, root = local_path(code_url), local_path(ctx.artifacts.root)
    kept = os.path.join(root, "code", f"{code_hash}.files.json") if root is not None else None
    files: dict[str, str] | None = None
    if kept is not None and os.path.isfile(kept):
        try:
            with open(kept, encoding="utf-8") as fh:
                files = json.load(fh)
        except (OSError, ValueError):
            files = None
    if files is None:
        source = snapshot if snapshot is not None and os.path.isdir(snapshot) else code_dir
        try:
            entries = dir_manifest(source)
        except MloopError:
            entries = []
        files = {e.path: e.sha256 for e in entries} if len(entries) <= MAX_CODE_FILES else {}
        if kept is not None and files:
            tmp = f"{kept}.{os.getpid()}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(files, fh)
                os.replace(tmp, kept)
            except OSError:
                pass
    ctx.memo[key] = files or None
    return files or None


def _local(url: str) -> str | None:
    return local_path(url) if is_local(url) else None


def _remote_rows(url: str) -> list[list[Any]] | None:
    """Name, size and version tag (ETag, checksum or modification time) of every object at a
    remote ``url``; None when nothing is there."""
    from mloop.artifacts import filesystem_for

    fs = filesystem_for(url)
    path = fs._strip_protocol(url).rstrip("/")
    try:
        if fs.isdir(path):
            found = fs.find(path, detail=True)
        elif fs.isfile(path):
            found = {path: fs.info(path)}
        else:
            return None
    except (OSError, ValueError):
        return None
    rows = []
    for name, info in sorted(found.items()):
        tag = next((info[k] for k in ("ETag", "etag", "checksum", "md5", "mtime", "LastModified", "created")
                    if info.get(k) is not None), None)
        rows.append([name[len(path):].lstrip("/"), info.get("size"), str(tag)])
    return rows


def shape(url: str) -> str | None:
    """A digest of what is at ``url`` by names, sizes and modification times, reading no
    bytes; None when nothing is there."""
    path = _local(url)
    if path is None:
        rows = _remote_rows(url)
        return None if rows is None else _digest(rows)
    try:
        if os.path.isfile(path):
            st = os.stat(path)
            return _digest([["", st.st_size, st.st_mtime_ns]])
        if not os.path.isdir(path):
            return None
        out = []
        for rel, full in walk_tree(path, ()).files:
            st = os.stat(full)
            out.append([rel, st.st_size, st.st_mtime_ns])
        return _digest(out)
    except (OSError, MloopError):
        return None


def _memo_key(url: str) -> tuple[str, str]:
    """Where a location's (shape, digest) is memoised in the run: one key however it is written."""
    path = _local(url)
    return ("cache.content", os.path.normpath(path) if path is not None else url.rstrip("/"))


def content_digest(ctx: RunContext, url: str, known_shape: str | None = None) -> str:
    """The digest of the bytes at ``url`` ("absent" when nothing is there): a folder's is
    :func:`~mloop.artifacts.hash_dir`'s (nothing ignored), a remote location's is taken from
    its listing (version tags, not bytes). Memoised in the run by shape, so an output hashed
    when its job ended is not read again as the next job's input. ``known_shape``: its
    :func:`shape`, when the caller has just taken it (a walk, or a listing, less)."""
    now = known_shape if known_shape is not None else shape(url)
    if now is None:
        return "absent"
    memo = ctx.memo.get(_memo_key(url))
    if memo is not None and memo[0] == now:
        found: str = memo[1]
        return found
    path = _local(url)
    if path is None:
        digest = "listing:" + now
    elif os.path.isdir(path):
        digest = "dir:" + hash_dir(path, ())
    else:
        digest = "file:" + hash_file(path)
    ctx.memo[_memo_key(url)] = (now, digest)
    return digest


def _input_part(ctx: RunContext, value: Any, dataset: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """An input's part of the key and what to show of it."""
    if dataset is not None:
        return (f"dataset:{dataset.get('version_id')}:{dataset.get('manifest_hash')}",
                {"dataset": dataset.get("dataset_name"), "version": dataset.get("version_name")})
    if isinstance(value, str) and value:
        return content_digest(ctx, value), {"url": value}
    return "value:" + _digest(value), {"value": value}


def _off_reason(ctx: RunContext, step: StepSpec) -> str | None:
    if step.policy is not None and step.policy.cache is False:
        return "caching is off for this step (StepPolicy cache=False)"
    if not ctx.settings.step_cache:
        return "caching is off (the step_cache setting)"
    return None


def expiry_seconds(ctx: RunContext, step: StepSpec) -> float | None:
    """How long a result of ``step`` may be reused (None: for ever)."""
    own = step.policy.cache_expiry if step.policy is not None else None
    return duration_seconds(own if own is not None else ctx.settings.cache_expiry)


def decide(ctx: RunContext, step: StepSpec, *, code_dir: str, code_url: str, code_hash: str,
           algorithm: dict[str, Any], parameters: dict[str, Any], flavor: dict[str, Any],
           inputs: dict[str, Any], datasets: dict[str, dict[str, Any]]) -> Decision:
    """Whether job ``step`` may reuse an earlier result, with the key and facts to record.

    Args:
        algorithm: what, beyond the code, says what runs (boot file, command, registry
            source, engine, the digests of its environment variables).
        inputs: each input's resolved value (a location, or a dataset version's dict);
            ``datasets`` has the exact version of those that are datasets.

    Never raises for a cache problem: an output that can't be checked is a miss.
    """
    off = _off_reason(ctx, step)
    if off is not None:
        return Decision(facts={"reason": off})
    try:
        about: dict[str, Any] = {}
        keyed: dict[str, str] = {}
        for name, value in inputs.items():
            keyed[name], about[name] = _input_part(ctx, value, datasets.get(name))
        environment = environment_facts(code_dir, ctx.settings, algorithm.get("engine"))
        code_files = _code_files(ctx, code_url, code_hash, code_dir)
    except (MloopError, OSError) as exc:  # e.g. an input it may not read: the job says so
        return Decision(facts={"reason": f"what decides its result could not be read ({exc})"})
    outputs = {o.name: [o.type, sorted(str(v) for k, v in (o.config or {}).items()
                                      if k in ("metric_file", "metric_files") and v)] for o in step.outputs}
    # The job sees its workflow's and step's names (MLOOP_STEP_NAME, ...): two steps running
    # the same code on the same inputs are two results, not one.
    parts = {"workflow": ctx.spec.name, "step": step.name, "code": code_hash, "algorithm": algorithm,
             "parameters": parameters, "inputs": keyed, "environment": environment, "flavor": flavor,
             "outputs": outputs}
    parts = json.loads(json.dumps(parts, default=str))  # as the store will hand it back
    facts: dict[str, Any] = {"v": FACTS_VERSION, "parts": parts, "inputs": about, "code_files": code_files}
    key = _digest({"v": FACTS_VERSION, "parts": parts})
    if (ctx.run.origin or {}).get("no_cache"):
        # The result is still recorded under its key: a later run may reuse this fresh one.
        facts["reason"] = "caching is off for this run (--no-cache)"
        return Decision(key, facts)
    store = ctx.store
    if not _workflow_has_results(ctx):
        facts["reason"] = "no earlier run of this step"
        return Decision(key, facts)
    origin = store.find_cached_step(cache_key=key, ran=True)
    if origin is not None:
        reason = _unusable(ctx, step, origin)
        if reason is None:
            return Decision(key, facts, origin)
        facts["reason"] = reason
        return Decision(key, facts)
    before = store.find_cached_step(workflow_name=ctx.spec.name, step_name=step.name, exclude_run=ctx.run_id)
    if before is None:
        facts["reason"] = "no earlier run of this step"
    elif before.cache_key == key:
        facts["reason"] = "the result it was cached from is gone (its run was deleted)"
    else:
        facts["reason"] = "; ".join(differences(before.cache_facts or {}, facts)) or "its facts changed"
    return Decision(key, facts)


def _workflow_has_results(ctx: RunContext) -> bool:
    """Whether an earlier run of this workflow left any result with a key (a key names its
    workflow, so none means no step of this run can be reused): asked once per run, so the
    first run of a workflow pays one query, not two per job."""
    key = ("cache.workflow_has_results", ctx.spec.name)
    if key not in ctx.memo:
        ctx.memo[key] = ctx.store.find_cached_step(workflow_name=ctx.spec.name, exclude_run=ctx.run_id) is not None
    found: bool = ctx.memo[key]
    return found


# -- reusing a result ----------------------------------------------------------------------------

def _origin_name(origin: StepRecord) -> str:
    return f"run {origin.run_id[:12]}, step {origin.name}"


def _age(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _output_urls(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [value] if isinstance(value, str) and value else []
    files = value.get("files")
    if isinstance(files, list) and files:
        return [f for f in files if isinstance(f, str) and f]
    url = value.get("url")
    return [url] if isinstance(url, str) and url else []


def _unusable(ctx: RunContext, step: StepSpec, origin: StepRecord) -> str | None:
    """Why the result of ``origin`` can't be reused (expired, outputs gone or changed); None if it can.

    A reusable result's output digests are memoised in the run, for the steps that read them."""
    limit = expiry_seconds(ctx, step)
    if limit is not None and origin.finished_at is not None:
        age = (datetime.now(timezone.utc) - origin.finished_at).total_seconds()
        if age > limit:
            return f"the result of {_origin_name(origin)} expired ({_age(age)} old; cache_expiry is {_age(limit)})"
    try:
        return _outputs_changed(ctx, origin)
    except (MloopError, OSError) as exc:
        return f"the outputs of {_origin_name(origin)} could not be checked ({exc})"


def _outputs_changed(ctx: RunContext, origin: StepRecord) -> str | None:
    produced = (origin.cache_facts or {}).get("produced") or {}
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for name, value in origin.outputs.items():
        for url in _output_urls(value):
            now = shape(url)
            if now is None:
                return f"output {name!r} of {_origin_name(origin)} is gone from the store ({url})"
            recorded = (produced.get(name) or {}).get(url) or {}
            if recorded.get("shape") == now:
                seen[_memo_key(url)] = (now, recorded["digest"])
            elif recorded and content_digest(ctx, url, now) != recorded.get("digest"):
                return f"output {name!r} of {_origin_name(origin)} was changed since it was written ({url})"
    ctx.memo.update(seen)
    return None


def hit_outcome(ctx: RunContext, step: StepSpec, decision: Decision, code_hash: str) -> Outcome:
    """The outcome of a job that reuses ``decision.origin``'s result: its outputs as they are,
    its metrics copied to this run, its artifacts and its log, recorded with where they came from."""
    origin = decision.origin
    assert origin is not None
    metrics = [m.model_copy(update={"run_id": ctx.run_id, "step_name": step.name})
               for m in ctx.store.list_metrics(origin.run_id, origin.name)]
    artifacts = [NewArtifact(a.name, a.kind, a.uri, a.digest, a.size)
                 for a in ctx.store.list_artifacts(origin.run_id, origin.name)]
    facts = dict(decision.facts)
    facts["produced"] = (origin.cache_facts or {}).get("produced") or {}
    return Outcome("succeeded", f"cached from {_origin_name(origin)}", outputs=dict(origin.outputs),
                   exit_code=origin.exit_code, metrics=metrics, artifacts=artifacts,
                   fields={"cache_key": decision.key, "cache_facts": facts, "code_hash": code_hash,
                           # `mloop logs` of the step shows the log of the job that made the result
                           "log_path": origin.log_path,
                           "cached_from": {"run_id": origin.run_id, "step": origin.name}})


def finished_fields(ctx: RunContext, decision: Decision | None, outputs: dict[str, Any]) -> dict[str, Any]:
    """The fields a job that ran and succeeded records for later runs to reuse its result:
    its facts with the shape and digest of each output location (``produced``)."""
    if decision is None or decision.key is None:
        return {}
    produced: dict[str, dict[str, Any]] = {}
    for name, value in outputs.items():
        for url in _output_urls(value):
            try:
                now = shape(url)
                if now is not None:
                    produced.setdefault(name, {})[url] = {"shape": now, "digest": content_digest(ctx, url, now)}
            except (MloopError, OSError):
                continue  # not checkable: a later hit checks that it is there
    return {"cache_facts": {**decision.facts, "produced": produced}}


# -- saying what changed ---------------------------------------------------------------------------

def _short(value: Any, width: int = 24) -> str:
    text = value if isinstance(value, str) else "none" if value is None else json.dumps(value, default=str)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        text = text[:12]
    return text if len(text) <= width else text[:width - 1] + "…"


def _changed(kind: str, old: dict[str, Any], new: dict[str, Any], show: bool = True) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            out.append(f"{kind} {name!r} added")
        elif name not in new:
            out.append(f"{kind} {name!r} removed")
        elif old[name] != new[name]:
            out.append(f"{kind} {name!r} changed" + (f" ({_short(old[name])} → {_short(new[name])})" if show else ""))
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the facts of an earlier run of a step and this one's, most
    telling first, at most :data:`MAX_REASONS` named."""
    if old.get("v") != new.get("v") or "parts" not in old:
        return ["the earlier run's cache facts are of another mloop version"]
    a, b = old["parts"], new["parts"]
    out: list[str] = []
    if a.get("code") != b.get("code"):
        files_a, files_b = old.get("code_files"), new.get("code_files")
        named = _changed("code file", files_a, files_b, show=False) if files_a and files_b else []
        out.extend(named or [f"the code changed ({_short(a.get('code'))} → {_short(b.get('code'))})"])
    env_a, env_b = a.get("environment") or {}, b.get("environment") or {}
    out.extend(f"environment changed ({name}: {_short(env_a.get(name))} → {_short(env_b.get(name))})"
               for name in sorted(set(env_a) | set(env_b)) if env_a.get(name) != env_b.get(name))
    if a.get("flavor") != b.get("flavor"):
        fa, fb = a.get("flavor") or {}, b.get("flavor") or {}
        out.append(f"flavor changed ({fa.get('id')} → {fb.get('id')})" if fa.get("id") != fb.get("id")
                   else f"node count changed ({fa.get('node_count')} → {fb.get('node_count')})")
    out.extend(_changed("parameter", a.get("parameters") or {}, b.get("parameters") or {}))
    ins_a, ins_b = a.get("inputs") or {}, b.get("inputs") or {}
    for name in sorted(set(ins_a) | set(ins_b)):
        if name not in ins_a or name not in ins_b:
            out.append(f"input {name!r} {'added' if name not in ins_a else 'removed'}")
        elif ins_a[name] != ins_b[name]:
            was, now = (old.get("inputs") or {}).get(name) or {}, (new.get("inputs") or {}).get(name) or {}
            if was.get("dataset") is not None and now.get("dataset") is not None:
                out.append(f"input {name!r}: dataset {was['dataset']} version {was.get('version')} → "
                           f"{now['dataset']} version {now.get('version')}")
            elif ins_b[name] == "absent":
                out.append(f"input {name!r} is missing ({now.get('url', '?')})")
            else:
                out.append(f"input {name!r} content changed")
    algo_a, algo_b = a.get("algorithm") or {}, b.get("algorithm") or {}
    out.extend(_changed("environment variable", algo_a.get("env") or {}, algo_b.get("env") or {}, show=False))
    for part in ("boot_file", "command", "source", "engine"):
        if algo_a.get(part) != algo_b.get(part):
            out.append(f"{part.replace('_', ' ')} changed ({_short(algo_a.get(part))} → {_short(algo_b.get(part))})")
    if a.get("outputs") != b.get("outputs"):
        out.append("the declared outputs changed")
    if len(out) > MAX_REASONS:
        out = out[:MAX_REASONS] + [f"and {len(out) - MAX_REASONS} more"]
    return out


def describe(step: StepRecord) -> str | None:
    """One line on how a step relates to the cache: where its result came from, or why it
    ran; None for steps caching does not concern (not jobs, or not run yet)."""
    if step.cached_from:
        origin = step.cached_from
        return f"cached from run {str(origin.get('run_id'))[:12]}, step {origin.get('step')}"
    reason = (step.cache_facts or {}).get("reason")
    if reason and step.status not in ("pending", "skipped"):
        return f"ran: not cached because {reason}"
    return None
