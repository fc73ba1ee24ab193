"""``wf.steps``: every step kind, its inputs/outputs/properties, policies and conditions."""

from mloop.workflow._dataset import (
    AnnotationFormatConfig, AnnotationFormatEnum, AnnotationFormatParameters, CreateDatasetInput,
    CreateDatasetOutput, CreateDatasetStep, DataOriginTypeEnum, DatasetImportInput, DatasetImportOutput,
    DatasetImportStep, DatasetProperties, ImportConfig, ImportDataInfo, ImportTypeEnum, Label, LabelFormat,
    LabelingInput, LabelingOutput, LabelingStep, LabelTaskProperties, LabelTypeEnum, ReleaseDatasetInput,
    ReleaseDatasetOutput, ReleaseDatasetStep, SchemaField,
)
from mloop.workflow._job import (
    JobEngine, JobInput, JobMetadata, JobOutput, JobResource, JobSpec, JobStep, JobTypeEnum, LogExportPath,
    MrsJobAlgorithm, MrsJobInput, MrsJobOutput, MrsJobStep,
)
from mloop.workflow._model import (
    ModelConfig, ModelInput, ModelOutput, ModelStep, ServiceConfig, ServiceInput, ServiceOutput, ServiceStep,
    Template, TemplateInputs,
)
from mloop.workflow._step import Condition, ConditionStep, ConditionTypeEnum, MetricInfo, StepPolicy

__all__ = [
    "MetricInfo", "Condition", "ConditionTypeEnum", "ConditionStep", "LabelingStep", "LabelingInput",
    "LabelingOutput", "LabelTaskProperties", "ImportDataInfo", "DataOriginTypeEnum", "DatasetImportStep",
    "DatasetImportInput", "DatasetImportOutput", "AnnotationFormatConfig", "AnnotationFormatParameters",
    "AnnotationFormatEnum", "Label", "ImportTypeEnum", "LabelFormat", "LabelTypeEnum", "ReleaseDatasetStep",
    "ReleaseDatasetInput", "ReleaseDatasetOutput", "CreateDatasetStep", "CreateDatasetInput", "CreateDatasetOutput",
    "DatasetProperties", "SchemaField", "ImportConfig", "JobStep", "JobMetadata", "JobSpec", "JobResource",
    "JobTypeEnum", "JobEngine", "JobInput", "JobOutput", "LogExportPath", "MrsJobStep", "MrsJobInput",
    "MrsJobOutput", "MrsJobAlgorithm", "ModelStep", "ModelInput", "ModelOutput", "ModelConfig", "Template",
    "TemplateInputs", "ServiceStep", "ServiceInput", "ServiceOutput", "ServiceConfig", "StepPolicy",
]
