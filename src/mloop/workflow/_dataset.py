"""Dataset steps: create, import, label, release; their properties and enums."""

from __future__ import annotations

import enum
from typing import Any

from mloop.workflow._base import SpecContext, SpecObject
from mloop.workflow._step import Step, StepInput, StepOutput
from mloop.workflow.data import DataTypeEnum, LabelTaskConfig, OBSOutputConfig


class DataOriginTypeEnum(str, enum.Enum):
    OBS = "obs"
    DWS = "dws"
    DLI = "dli"
    RDS = "rds"
    MRS = "mrs"
    INFERENCE = "inference"


class ImportTypeEnum(str, enum.Enum):
    DIR = "dir"
    MANIFEST = "manifest"


class AnnotationFormatEnum(str, enum.Enum):
    # Value strings as the ModelArts code spells them, typos included.
    MA_IMAGE_CLASSIFICATION_V1 = "ModelArts image classification 1.0"
    MA_IMAGENET_V1 = "ModelArts imageNet 1.0"
    MA_PASCAL_VOC_V1 = "ModelArts PASCAL VOC 1.0"
    YOLO = "YOLO"
    MA_IMAGE_SEGMENTATION_V1 = "ModelArts image segmentation 1.0"
    MA_TEXT_CLASSIFICATION_COMBINE_V1 = "ModelArts text classfication combine 1.0"
    MA_TEXT_CLASSIFICATION_V1 = "ModelArts text classfication 1.0"
    MA_AUDIO_CLASSIFICATION_DIR_V1 = "ModelArts audio classfication dir 1.0"


class LabelTypeEnum(enum.IntEnum):
    IMAGE_CLASSIFICATION = 0
    OBJECT_DETECTION = 1
    VIDEO_ANNOTATION = 1
    IMAGE_SEGMENTATION = 3
    TEXT_CLASSIFICATION = 100
    NAMED_ENTITY_RECOGNITION = 101
    TEXT_TRIPLE_ENTITY = 101
    TEXT_TRIPLE_RELATION = 102
    AUDIO_CLASSIFICATION = 200
    SPEECH_CONTENT = 201
    SPEECH_SEGMENTATION = 202


class Label(SpecObject):
    _spec_fields = ("name", "property", "type")

    def __init__(self, name: Any = None, property: dict[str, Any] | None = None, type: LabelTypeEnum | None = None) -> None:
        self.name, self.property, self.type = name, property, type


class LabelFormat(SpecObject):
    _spec_fields = ("label_type", "text_label_separator", "text_sample_separator")

    def __init__(self, label_type: str = "1", text_label_separator: str | None = None,
                 text_sample_separator: str | None = None) -> None:
        self.label_type, self.text_label_separator, self.text_sample_separator = (
            label_type, text_label_separator, text_sample_separator)


class AnnotationFormatParameters(SpecObject):
    _spec_fields = ("difficult_only", "label_separator", "sample_label_separator", "included_labels")

    def __init__(self, difficult_only: bool = False, label_separator: str = ",",
                 sample_label_separator: str | None = None, included_labels: list[Any] | None = None) -> None:
        self.difficult_only, self.label_separator = difficult_only, label_separator
        self.sample_label_separator, self.included_labels = sample_label_separator, included_labels


class AnnotationFormatConfig(SpecObject):
    _spec_fields = ("format_name", "scene", "parameters")

    def __init__(self, format_name: AnnotationFormatEnum | None = None, scene: Any = None,
                 parameters: AnnotationFormatParameters | None = None) -> None:
        self.format_name, self.scene, self.parameters = format_name, scene, parameters

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        if self.format_name is not None and not isinstance(self.format_name, AnnotationFormatEnum):
            supported = ", ".join(f.name for f in AnnotationFormatEnum)
            ctx.problem(f"{loc}.format_name", f"unsupported annotation format {self.format_name!r}",
                        f"use wf.steps.AnnotationFormatEnum: {supported}")
        out = super()._to_spec(ctx, loc)
        if self.scene is not None and isinstance(self.scene, enum.Enum):
            out["scene"] = self.scene.name  # stored by member name, as ModelArts does
        return out


class ImportConfig(SpecObject):
    _spec_fields = ("annotation_format_config", "import_annotations", "import_type")

    def __init__(self, annotation_format_config: list[AnnotationFormatConfig] | None = None,
                 import_annotations: Any = True, import_type: ImportTypeEnum = ImportTypeEnum.DIR) -> None:
        self.annotation_format_config, self.import_annotations, self.import_type = (
            annotation_format_config, import_annotations, import_type)


class ImportDataInfo(SpecObject):
    _spec_fields = ("annotation_format_config", "excluded_labels", "import_annotated", "import_annotations",
                    "import_origin", "import_samples", "import_type", "included_labels", "label_format",
                    "with_column_header")

    def __init__(self, annotation_format_config: Any = None, excluded_labels: Any = None, import_annotated: bool = False,
                 import_annotations: bool = True, import_origin: DataOriginTypeEnum = DataOriginTypeEnum.OBS,
                 import_samples: bool = True, import_type: ImportTypeEnum = ImportTypeEnum.DIR,
                 included_labels: Any = None, label_format: LabelFormat | None = None,
                 with_column_header: bool = False) -> None:
        self.annotation_format_config, self.excluded_labels = annotation_format_config, excluded_labels
        self.import_annotated, self.import_annotations = import_annotated, import_annotations
        self.import_origin, self.import_samples, self.import_type = import_origin, import_samples, import_type
        self.included_labels, self.label_format, self.with_column_header = included_labels, label_format, with_column_header


class SchemaField(SpecObject):
    _spec_fields = ("name", "schema_id", "field_type", "description")

    def __init__(self, name: str | None = None, schema_id: int | None = None, field_type: str | None = None,
                 description: str | None = None) -> None:
        self.name, self.schema_id, self.field_type, self.description = name, schema_id, field_type, description


class DatasetProperties(SpecObject):
    _spec_fields = ("dataset_name", "dataset_format", "data_type", "description", "import_data", "work_path_type",
                    "schema", "import_config")

    def __init__(self, dataset_name: Any, dataset_format: int = 0, data_type: DataTypeEnum = DataTypeEnum.FREE_FORMAT,
                 description: str | None = None, import_data: bool = False, work_path_type: int = 0,
                 schema: list[SchemaField] | None = None, import_config: ImportConfig | None = None) -> None:
        self.dataset_name, self.dataset_format, self.data_type = dataset_name, dataset_format, data_type
        self.description, self.import_data, self.work_path_type = description, import_data, work_path_type
        self.schema, self.import_config = schema, import_config

    def _to_spec(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        name = self.dataset_name
        if isinstance(name, str) and not (1 <= len(name) <= 100 and all(c.isalnum() or c in "_-" for c in name)):
            ctx.problem(f"{loc}.dataset_name", f"dataset name {name!r} is not allowed",
                        "use 1-100 letters (Chinese included), digits, '_' or '-'")
        return super()._to_spec(ctx, loc)


class LabelTaskProperties(SpecObject):
    _spec_fields = ("task_type", "task_name", "labels", "properties", "auto_sync_dataset", "content_labeling",
                    "description", "sample_conditions")

    def __init__(self, task_type: Any, task_name: Any = None, labels: list[Label] | None = None,
                 properties: dict[str, Any] | None = None, auto_sync_dataset: bool = True,
                 content_labeling: bool = True, description: str | None = None,
                 sample_conditions: str | None = None) -> None:
        self.task_type, self.task_name, self.labels, self.properties = task_type, task_name, labels, properties
        self.auto_sync_dataset, self.content_labeling = auto_sync_dataset, content_labeling
        self.description, self.sample_conditions = description, sample_conditions


class _PropertiesStep(Step):
    properties: Any = None

    def _properties(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return ctx.value(self.properties, loc) or {}


class CreateDatasetInput(StepInput):
    pass


class CreateDatasetOutput(StepOutput):
    data_type = "dataset"

    def __init__(self, name: str, config: OBSOutputConfig) -> None:
        super().__init__(name)
        self.config = config

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        if not isinstance(self.config, OBSOutputConfig):
            ctx.problem(loc, "CreateDatasetOutput config must be a wf.data.OBSOutputConfig (the dataset work path)")
            return {}
        return self.config._to_spec(ctx, f"{loc}.config")


class CreateDatasetStep(_PropertiesStep):
    step_type = "create_dataset"

    def __init__(self, name: str, inputs: Any, outputs: Any, properties: DatasetProperties, title: str | None = None,
                 description: str | None = None, policy: Any = None, depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
        self.properties = properties


class DatasetImportInput(StepInput):
    pass


class DatasetImportOutput(StepOutput):
    @property
    def data_type(self) -> str:  # type: ignore[override]
        # Follows the import target: the second input (a dataset or a label task).
        if self.step is not None and len(self.step.inputs) == 2:
            target = getattr(self.step.inputs[1], "data", None)
            kind = getattr(target, "data_type", None)
            if kind in ("dataset", "label_task"):
                return str(kind)
        return "dataset"

    def __init__(self, name: str) -> None:
        super().__init__(name)


class DatasetImportStep(_PropertiesStep):
    step_type = "dataset_import"

    def __init__(self, name: str, inputs: Any, outputs: Any, properties: ImportDataInfo | None = None,
                 title: str | None = None, description: str | None = None, policy: Any = None,
                 depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
        self.properties = properties


class LabelingInput(StepInput):
    pass


class LabelingOutput(StepOutput):
    data_type = "label_task"

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return LabelTaskConfig()._to_spec(ctx, loc)


class LabelingStep(_PropertiesStep):
    step_type = "labeling"

    def __init__(self, name: str, inputs: Any, outputs: Any, properties: LabelTaskProperties | None = None,
                 title: str | None = None, description: str | None = None, policy: Any = None,
                 depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
        self.properties = properties


class ReleaseDatasetInput(StepInput):
    pass


class ReleaseDatasetOutput(StepOutput):
    data_type = "dataset"

    def __init__(self, name: str, dataset_version_config: Any = None) -> None:
        from mloop.workflow.data import DatasetVersionConfig

        super().__init__(name)
        self.dataset_version_config = dataset_version_config or DatasetVersionConfig()

    def _config(self, ctx: SpecContext, loc: str) -> dict[str, Any]:
        return ctx.value(self.dataset_version_config, f"{loc}.dataset_version_config") or {}


class ReleaseDatasetStep(Step):
    step_type = "release_dataset"

    def __init__(self, name: str, inputs: Any, outputs: Any, title: str | None = None, description: str | None = None,
                 policy: Any = None, depend_steps: Any = None) -> None:
        super().__init__(name, inputs, outputs, title, description, policy, depend_steps)
