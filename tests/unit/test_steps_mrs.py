"""MrsJobStep's spark-submit command, from the algorithm's parameters and the settings (no JVM)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mloop.config import Settings, SparkCluster
from mloop.errors import ConfigError
from mloop.steps.mrs import (
    JobSetupError, SparkInstall, cluster_for, find_java, find_spark, spark_arguments, submit_argv,
)

INSTALL = SparkInstall("/opt/spark/bin/spark-submit", "/opt/spark", "/usr/bin/java", "spark_home")


def params(**values: object) -> dict[str, object]:
    return {"boot_file": "job.py", "parameters": [{"name": k, "value": v} for k, v in values.items()]}


class TestCommand:
    def test_order_is_defaults_cluster_conf_properties_run_args_boot_file_app_args(self) -> None:
        args = spark_arguments(params(run_args="--driver-memory=1g,--conf spark.x=run",
                                      app_args="--min_count=2, --name='a b'",
                                      properties="{'spark.x': 'props', 'spark.y': 4, 'spark.z': True}"))
        cluster = SparkCluster(master="spark://head:7077", conf={"spark.x": "cluster", "spark.ui.enabled": "true"})

        argv = submit_argv(INSTALL, cluster, args, "job.py", "/runs/r/steps/s/log4j2.properties")

        assert argv[:3] == ["/opt/spark/bin/spark-submit", "--master", "spark://head:7077"]
        confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
        # one --conf per key, later sources replacing earlier ones; the run_args' own --conf comes last
        assert confs == ["spark.ui.enabled=true", "spark.x=props", "spark.y=4", "spark.z=true",
                         "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:"
                         "/runs/r/steps/s/log4j2.properties", "spark.x=run"]
        assert argv[-6:] == ["--driver-memory=1g", "--conf", "spark.x=run", "job.py", "--min_count=2", "--name=a b"]

    @pytest.mark.parametrize("run_args", ["--master=local[2]", "--master,local[2]", "--master local[2]"])
    def test_run_args_master_wins_over_the_clusters(self, run_args: str) -> None:
        argv = submit_argv(INSTALL, SparkCluster(master="yarn"), spark_arguments(params(run_args=run_args)),
                           "job.py", None)
        assert "yarn" not in argv
        assert argv.index("job.py") > 1 and "local[2]" in " ".join(argv)

    @pytest.mark.parametrize("cluster, run_args, log4j", [
        (SparkCluster(master="local[*]"), "", "/my runs/log4j2.properties"),  # Spark would split it
        (SparkCluster(master="yarn"), "--deploy-mode,cluster", "/r/log4j2.properties"),  # a remote driver
        (SparkCluster(master="yarn", conf={"spark.submit.deployMode": "cluster"}), "", "/r/log4j2.properties"),
    ], ids=["space-in-path", "deploy-mode-cluster", "deployMode-conf"])
    def test_no_log_profile_where_it_cannot_work(self, cluster: SparkCluster, run_args: str, log4j: str) -> None:
        argv = submit_argv(INSTALL, cluster, spark_arguments(params(run_args=run_args)), "job.py", log4j)
        assert not any("log4j2" in a for a in argv)

    def test_the_users_own_driver_java_options_stand(self) -> None:
        args = spark_arguments(params(properties="{'spark.driver.extraJavaOptions': '-Dx=1'}"))
        argv = submit_argv(INSTALL, SparkCluster(master="local[*]", conf={"spark.executor.cores": 2}), args,
                           "job.py", "/r/log4j2.properties")
        assert [a for a in argv if "extraJavaOptions" in a] == ["spark.driver.extraJavaOptions=-Dx=1"]
        assert "spark.executor.cores=2" in argv  # a number in mloop.toml

    def test_an_unconfigured_cluster_id_runs_in_local_mode(self) -> None:
        settings = Settings(spark_clusters={"prod": {"master": "spark://prod:7077"}})
        assert cluster_for(settings, "prod") == (SparkCluster(master="spark://prod:7077"), True)
        assert cluster_for(settings, "other") == (SparkCluster(master="local[*]"), False)


class TestBadParameters:
    @pytest.mark.parametrize("algorithm, message", [
        (params(master="yarn"), "parameter 'master' is not one of run_args, app_args, properties"),
        ({"parameters": [{"name": "app_args", "value": "a"}, {"name": "app_args", "value": "b"}]},
         "parameter 'app_args' is given twice"),
        (params(run_args="job.py,--master=yarn"), "run_args start with 'job.py', which is no spark-submit option"),
        (params(properties="spark.x=1"), "is not a dict literal"),
        (params(properties="{'spark.x': [1]}"), "is not a Spark setting"),
        (params(properties="{'spark x': 1}"), "is not a Spark setting"),
        (params(app_args="--name='unclosed"), "cannot be read"),
        (params(app_args=3), "must be a comma-separated string"),
    ])
    def test_is_refused_saying_what_to_give(self, algorithm: dict[str, object], message: str) -> None:
        with pytest.raises(JobSetupError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
            spark_arguments(algorithm)
        assert info.value.hint

    def test_a_bad_master_in_the_settings_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="spark_clusters.prod.master"):
            Settings(spark_clusters={"prod": {"master": "spark:// ; rm -rf /"}})


class TestFindingSparkAndJava:
    def test_spark_home_without_spark_submit_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(JobSetupError, match="has no bin/spark-submit") as info:
            find_spark(Settings(home=tmp_path / ".mloop", spark_home=str(tmp_path)))
        assert "MLOOP_SPARK_HOME" in (info.value.hint or "")

    def test_spark_home_setting_comes_first(self, tmp_path: Path) -> None:
        submit = tmp_path / "bin" / "spark-submit"
        submit.parent.mkdir()
        submit.write_text("#!/bin/sh\n")
        submit.chmod(submit.stat().st_mode | stat.S_IXUSR)
        found = find_spark(Settings(home=tmp_path / ".mloop", spark_home=str(tmp_path)))
        assert found == (str(submit), str(tmp_path), "spark_home")

    def test_java_home_without_java_names_a_java_17_package(self, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JAVA_HOME", str(tmp_path))
        with pytest.raises(JobSetupError, match="JAVA_HOME .* has no bin/java") as info:
            find_java()
        assert "openjdk-17-jre-headless" in (info.value.hint or "")

    def test_java_from_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        java = tmp_path / "java"
        java.write_text("#!/bin/sh\n")
        java.chmod(0o755)
        monkeypatch.delenv("JAVA_HOME", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + "/nonexistent")
        assert find_java() == str(java)
