"""``wf.data``: data objects, data placeholders, output configs and unified storage."""

from __future__ import annotations

import enum
from typing import Any

from mloop.errors import Problem, SpecValidationError
from mloop.spec import models as m
from mloop.spec import refs
from mloop.workflow._base import DataObject, SpecContext, SpecObject, as_list, name_of
from mloop.workflow.placeholder import Placeholder

__all__ = [
    "DatasetTypeEnum", "Dataset", "DatasetVersionConfig", "DatasetPlaceholder", "ServiceInputPlaceholder",
    "ServiceData", "ServiceUpdatePlaceholder", "DataTypeEnum", "ModelData", "GalleryModel", "OBSPath",
    "OBSOutputConfig", "OBSPlaceholder", "SWRImage", "SWRImagePlaceholder", "Storage", "InputStorage",
    "OutputStorage", "LabelTask", "LabelTaskPlaceholder", "LabelTaskConfig", "LabelTaskTypeEnum",
    "MetricsConfig", "TripartiteServiceConfig", "DataConsumptionSelector", "DataSelector", "StorageTypeEnum",
]


# -- enums -------------------------------------------------------------------------------------
class DataTypeEnum(enum.IntEnum):
    IMAGE = 0
    TEXT = 1
    AUDIO = 2
    TABULAR = 4
    VIDEO = 6
    FREE_FORMAT = 9


class DatasetTypeEnum(enum.IntEnum):
    IMAGE_CLASSIFICATION = 0
    OBJECT_DETECTION = 1
    IMAGE_SEGMENTATION = 3
    TEXT_CLASSIFICATION = 100
    NAMED_ENTITY_RECOGNITION = 101
    TEXT_TRIPLE = 102
    AUDIO_CLASSIFICATION = 200
    SPEECH_CONTENT = 201
    SPEECH_SEGMENTATION = 202
    DATASET_TABULAR = 400
    VIDEO_ANNOTATION = 600
    FREE_FORMAT = 900


class LabelTaskTypeEnum(enum.IntEnum):
    IMAGE_CLASSIFICATION = 0
    OBJECT_DETECTION = 1
    IMAGE_SEGMENTATION = 3
    TEXT_CLASSIFICATION = 100
    NAMED_ENTITY_RECOGNITION = 101
    TEXT_TRIPLE = 102
    AUDIO_CLASSIFICATION = 200
    SPEECH_CONTENT = 201
    SPEECH_SEGMENTATION = 202
    TABLE = 400
    VIDEO_ANNOTATION = 600


class StorageTypeEnum(str, enum.Enum):
    OBS = "obs"


# -- unified storage ---------------------------------------------------------------------------
def _join_dirs(base: str, directory: str) -> str:
    directory = directory.lstrip("/")
    if not base:
        return directory
    return base.rstrip("/") + "/" + directory


class Storage:
    """A root folder (or a folder below one) whose location is fixed when a run starts.

    ``join()`` returns a child storage; resolving the root resolves every descendant.
    With ``with_execution_id`` each run writes under ``<root>/<run id>/``.
    """

    def __init__(self, name: str, title: str = "", description: str = "",
                 storage_type: StorageTypeEnum = StorageTypeEnum.OBS, default: str | None = None,
                 directory: str = "", with_execution_id: bool = False, create_dir: bool = False,
                 parent: Storage | None = None) -> None:
        self.name = name
        self.title = title or name
        self.description = description
        self.storage_type = storage_type
        self.default = default
        self.directory = directory
        self.with_execution_id = with_execution_id
        self.create_dir = create_dir
        self.parent = parent

    @property
    def root(self) -> Storage:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def _child(self, directory: str, with_execution_id: bool, create_dir: bool) -> Storage:
        if not isinstance(directory, str) or not directory.strip("/"):
            raise SpecValidationError([Problem(f"storages[{self.name}].join", f"directory must be a non-empty "
                                               f"path, got {directory!r}")])
        child = type(self).__new__(type(self))
        Storage.__init__(child, self.name, self.title, self.description, self.storage_type, self.default,
                         _join_dirs(self.directory, directory), with_execution_id, create_dir, self)
        return child

    def join(self, directory: str, with_execution_id: bool | None = None, create_dir: bool | None = None) -> Storage:
        """A child storage ``<this>/<directory>``; a trailing '/' marks a folder.

        ``with_execution_id`` can be switched on but not off below a parent that has it;
        ``create_dir`` defaults to the parent's.
        """
        return self._child(directory, self.with_execution_id or bool(with_execution_id),
                           self.create_dir if create_dir is None else bool(create_dir))

    def _ref(self, ctx: SpecContext) -> str:
        root = self.root
        known = ctx.storage_roots.get(root.name)
        if known is None:
            ctx.storage_roots[root.name] = root
        elif known is not root and _storage_spec(known) != _storage_spec(root):
            ctx.problem(f"storages[{root.name}]", f"two different storages are named {root.name!r}",
                        "give each root storage its own name")
        return refs.format_ref(refs.StorageRef(root.name, self.directory, self.with_execution_id, self.create_dir))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, directory={self.directory!r})"


def _storage_spec(storage: Storage) -> m.StorageSpec:
    return m.StorageSpec(name=name_of(storage.name), title=storage.title or storage.name, description=storage.description,
                         path=storage.default, with_execution_id=storage.with_execution_id,
                         create_dir=storage.create_dir)


class InputStorage(Storage):
    """A storage used only to read: pure path concatenation, nothing is created."""

    def __init__(self, name: str, title: str = "", description: str = "",
                 storage_type: StorageTypeEnum = StorageTypeEnum.OBS, default: str | None = None,
                 directory: str = "", parent: Storage | None = None) -> None:
        super().__init__(name, title, description, storage_type, default, directory, False, False, parent)

    def join(self, directory: str, with_execution_id: bool | None = None, create_dir: bool | None = None) -> Storage:
        return self._child(directory, False, False)


class OutputStorage(Storage):
    """A storage every run writes to under its own run id (``<root>/<run id>/...``)."""

    def __init__(self, name: str, title: str = "", description: str = "",
                 storage_type: StorageTypeEnum = StorageTypeEnum.OBS, default: str | None = None,
                 directory: str = "", parent: Storage | None = None, create_dir: bool = True) -> None:
        super().__init__(name, title, description, storage_type, default, directory, True, create_dir, parent)

    def join(self, directory: str, with_execution_id: bool | None = True, create_dir: bool | None = True) -> Storage:
        return self._child(directory, True, True if create_dir is None else bool(create_dir))


# -- concrete data and data placeholders --------------------------------------------------------
class _Concrete(DataObject):
    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        raise NotImplementedError

    def _data_ref(self, ctx: SpecContext, loc: str) -> str:
        return ctx.add_data(self.data_type, self._value(ctx, loc))


class _Requirement(DataObject):
    name: str
    delay: bool = False

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        return []

    def _default(self, ctx: SpecContext, loc: str) -> Any:
        return None

    def _data_ref(self, ctx: SpecContext, loc: str) -> str:
        spec = m.DataRequirementSpec(name=name_of(self.name), type=self.data_type, delay=self.delay,
                                     conditions=self._conditions(ctx, loc), default=self._default(ctx, loc))
        return ctx.add_data_requirement(spec, loc)


def _cond(attribute: str, value: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": "equal", "value": value}


class OBSPath(_Concrete):
    """A fixed object-store path (``obs://bucket/dir/``, ``/bucket/dir/``), local folder, or Storage."""

    data_type = "obs"

    def __init__(self, obs_path: str | Storage) -> None:
        self.obs_path = obs_path

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        if not isinstance(self.obs_path, (str, Storage)):
            ctx.problem(loc, f"OBSPath.obs_path must be a str or Storage, got {type(self.obs_path).__name__}")
        return {"obs_url": ctx.value(self.obs_path, loc)}


class OBSPlaceholder(_Requirement):
    """An object-store path chosen when the run starts; ``object_type`` is 'file' or 'directory'."""

    data_type = "obs"

    def __init__(self, name: str, object_type: str, delay: bool = False, default: OBSPath | None = None) -> None:
        self.name, self.object_type, self.delay, self.default = name, object_type, delay, default

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        return [_cond("object_type", self.object_type)]

    def _default(self, ctx: SpecContext, loc: str) -> Any:
        if self.default is None:
            return None
        if not isinstance(self.default, OBSPath) or not isinstance(self.default.obs_path, str):
            ctx.problem(loc, "OBSPlaceholder default must be an OBSPath with a plain str path",
                        placeholder=self.name)
            return None
        return {"obs_url": self.default.obs_path}


class OBSOutputConfig(SpecObject):
    """Where a job writes an output folder; ``metric_file`` names a metrics file inside it."""

    def __init__(self, obs_path: str | Placeholder | Storage, metric_file: str | Placeholder | None = None) -> None:
        self.obs_path, self.metric_file = obs_path, metric_file

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        out = {"obs_url": ctx.value(self.obs_path, f"{loc}.obs_path")}
        if self.metric_file is not None:
            out["metric_file"] = ctx.value(self.metric_file, f"{loc}.metric_file")
        return out


class Dataset(_Concrete):
    data_type = "dataset"

    def __init__(self, dataset_name: str, version_name: str | None = None) -> None:
        self.dataset_name, self.version_name = dataset_name, version_name

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"dataset_name": self.dataset_name, "version_name": self.version_name}


class DatasetPlaceholder(_Requirement):
    data_type = "dataset"

    def __init__(self, name: str, data_type: DataTypeEnum | None = None, delay: bool = False,
                 default: Dataset | None = None) -> None:
        self.name, self.dataset_data_type, self.delay, self.default = name, data_type, delay, default

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        if self.dataset_data_type is None:
            return []
        return [_cond("data_type", ctx.value(self.dataset_data_type, loc))]

    def _default(self, ctx: SpecContext, loc: str) -> Any:
        if self.default is None:
            return None
        if not isinstance(self.default, Dataset):
            ctx.problem(loc, "DatasetPlaceholder default must be a wf.data.Dataset", placeholder=self.name)
            return None
        return self.default._value(ctx, loc)


class DatasetVersionConfig(SpecObject):
    _spec_fields = ("version_name", "version_format", "train_evaluate_sample_ratio", "clear_hard_property",
                    "remove_sample_usage", "label_task_id", "label_task_type", "description")

    def __init__(self, version_name: str | Placeholder | None = None, version_format: str = "Default",
                 train_evaluate_sample_ratio: str | Placeholder = "1.00", clear_hard_property: bool | Placeholder = True,
                 remove_sample_usage: bool = True, label_task_id: str | None = None,
                 label_task_type: LabelTaskTypeEnum | None = None, description: str | None = None) -> None:
        self.version_name, self.version_format = version_name, version_format
        self.train_evaluate_sample_ratio, self.clear_hard_property = train_evaluate_sample_ratio, clear_hard_property
        self.remove_sample_usage, self.label_task_id = remove_sample_usage, label_task_id
        self.label_task_type, self.description = label_task_type, description


class LabelTask(_Concrete):
    data_type = "label_task"

    def __init__(self, dataset_name: str, task_name: str) -> None:
        self.dataset_name, self.task_name = dataset_name, task_name

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"dataset_name": self.dataset_name, "task_name": self.task_name}


class LabelTaskPlaceholder(_Requirement):
    data_type = "label_task"

    def __init__(self, name: str, task_type: LabelTaskTypeEnum | None = None, delay: bool = False) -> None:
        self.name, self.task_type, self.delay = name, task_type, delay

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        return [] if self.task_type is None else [_cond("task_type", ctx.value(self.task_type, loc))]


class LabelTaskConfig(SpecObject):
    """Output config of a labeling step (no settings)."""

    def __init__(self) -> None:
        pass


class ServiceData(_Concrete):
    data_type = "service"

    def __init__(self, service_id: str) -> None:
        self.service_id = service_id

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"service_id": self.service_id}


class ServiceUpdatePlaceholder(_Requirement):
    data_type = "service"

    def __init__(self, name: str, delay: bool = False) -> None:
        self.name, self.delay = name, delay


class ServiceInputPlaceholder(_Requirement):
    """The deployment configuration of a ServiceStep, restricted to one model name."""

    data_type = "model_list"

    def __init__(self, name: str, model_name: str | Placeholder, model_version: str | None = None,
                 envs: dict[str, str] | None = None, delay: bool = True) -> None:
        self.name, self.model_name, self.model_version, self.envs, self.delay = (
            name, model_name, model_version, envs, delay)

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        out = [_cond("model_name", ctx.value(self.model_name, loc))]
        if self.model_version is not None:
            out.append(_cond("model_version", self.model_version))
        if self.envs is not None:
            out.append(_cond("envs", self.envs))
        return out


class ModelData(_Concrete):
    data_type = "model"

    def __init__(self, name: str, model_id: str) -> None:
        self.name, self.model_id = name, model_id

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"name": self.name, "model_id": self.model_id}


class GalleryModel(_Concrete):
    data_type = "gallery_model"

    def __init__(self, subscription_id: str, version_num: str) -> None:
        self.subscription_id, self.version_num = subscription_id, version_num

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "version_num": self.version_num}


class SWRImage(_Concrete):
    data_type = "swr"

    def __init__(self, swr_path: str) -> None:
        self.swr_path = swr_path

    def _value(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return {"swr_url": self.swr_path}


class SWRImagePlaceholder(_Requirement):
    data_type = "swr"

    def __init__(self, name: str, delay: bool = False) -> None:
        self.name, self.delay = name, delay


class MetricsConfig(SpecObject):
    """Where a job writes its metrics JSON (reference section 9)."""

    def __init__(self, metric_files: Any, realtime_visualization: bool | Placeholder = False,
                 visualization: bool | Placeholder = True) -> None:
        self.metric_files = metric_files
        self.realtime_visualization, self.visualization = realtime_visualization, visualization

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        files = as_list(self.metric_files)
        if not files:
            ctx.problem(loc, "MetricsConfig needs at least one metric file")
        return {"metric_files": [ctx.value(f, f"{loc}.metric_files[{i}]") for i, f in enumerate(files)],
                "realtime_visualization": ctx.value(self.realtime_visualization, loc),
                "visualization": ctx.value(self.visualization, loc)}


class TripartiteServiceConfig(SpecObject):
    _spec_fields = ("config_file",)

    def __init__(self, config_file: str | Placeholder | Storage) -> None:
        self.config_file = config_file


class DataConsumptionSelector(DataObject):
    """Takes, at run time, the first of several upstream outputs that was produced (not skipped)."""

    def __init__(self, data_list: list[Any]) -> None:
        self.data_list = data_list

    @property
    def data_type(self) -> str:  # type: ignore[override]
        items = self.data_list if isinstance(self.data_list, list) else []
        return items[0].data_type if items and isinstance(items[0], DataObject) else "unknown"

    def _data_ref(self, ctx: SpecContext, loc: str) -> str:
        from mloop.workflow._step import Consumption

        if not isinstance(self.data_list, list):
            ctx.problem(loc, "DataConsumptionSelector(data_list=...) must be a list of output.as_input() values")
            return refs.format_ref(refs.SelectorRef(()))
        items: list[refs.ConsumptionRef] = []
        for i, item in enumerate(self.data_list):
            if not isinstance(item, Consumption):
                ctx.problem(f"{loc}.data_list[{i}]", f"expected step.outputs[...].as_input(), got {item!r}")
                continue
            if item.data_type != self.data_type:
                ctx.problem(f"{loc}.data_list[{i}]", f"all outputs must have the same data type; "
                                                     f"{item.data_type!r} differs from {self.data_type!r}")
            ctx.imply_dependency(item.step)
            items.append(refs.ConsumptionRef(item.step.name, item.output.name))
        return refs.format_ref(refs.SelectorRef(tuple(items)))


class DataSelector(_Requirement):
    """A run-time choice between kinds of input, e.g. a dataset or an object-store path."""

    data_type = "data_selector"

    def __init__(self, name: str, data_type_list: list[str], delay: bool = False) -> None:
        self.name, self.data_type_list, self.delay = name, data_type_list, delay

    def _conditions(self, ctx: SpecContext, loc: str) -> list[dict[str, Any]]:
        allowed = {"dataset", "obs"}
        bad = [t for t in as_list(self.data_type_list) if t not in allowed]
        if bad or not self.data_type_list:
            ctx.problem(loc, f"DataSelector data_type_list must name 'dataset' and/or 'obs', got {self.data_type_list!r}",
                        placeholder=self.name)
        return [_cond("data_type_list", list(as_list(self.data_type_list)))]
