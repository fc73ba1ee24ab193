"""Seed 002 example: 使用案例 - 基于已标注数据创建数据集,并导入标注信息

CreateDatasetStep importing existing annotations.

Source: seeds/002_65b490c469ccf75a.txt, line 11, example 2 of 2 (the code after "from modelarts import workflow as wf").
Reconstructed from the flattened text with only the import changed to mloop; identifiers,
arguments and values are as written in the seed.

The example declares two different placeholders named ``dataset_placeholder_name`` (one
with ``placeholder_format="obs"`` for the output path, one without for the dataset name).
Placeholder names are global, so mloop refuses it, as ModelArts 1.0.0 does with
DuplicatePlaceholderException. Kept verbatim here as an invalid golden file.
"""
# expect: placeholder 'dataset_placeholder_name' is declared twice with different definitions
# expect: they differ in: format
# problems: 1
from mloop import workflow as wf

# 通过CreateDatasetStep将存储在OBS中的数据创建成一个新版数据集
# 定义数据集输出路径参数
dataset_output_path = wf.Placeholder(
    name="dataset_placeholder_name",
    placeholder_type=wf.PlaceholderType.STR,
    placeholder_format="obs"
)

# 定义数据集名称参数
dataset_name = wf.Placeholder(name="dataset_placeholder_name", placeholder_type=wf.PlaceholderType.STR)
create_dataset = wf.steps.CreateDatasetStep(
    name="create_dataset",  # 数据集创建节点的名称,命名规范(只能包含英文字母、数字、下划线(_)、中划线(-),并且只能以英文字母开头,长度限制为64字符),一个Workflow里的两个step名称不能重复
    title="数据集创建",  # 标题信息,不填默认使用name值
    inputs=wf.steps.CreateDatasetInput(
        name="input_name",
        data=wf.data.OBSPlaceholder(name="obs_placeholder_name", object_type="directory")
    ),  # CreateDatasetStep的输入,数据在运行时进行配置;data字段也可使用wf.data.OBSPath(obs_path="fake_obs_path")对象表示
    outputs=wf.steps.CreateDatasetOutput(
        name="output_name",
        config=wf.data.OBSOutputConfig(obs_path=dataset_output_path)
    ),  # CreateDatasetStep的输出
    properties=wf.steps.DatasetProperties(
        dataset_name=dataset_name,  # 该名称对应的数据集如果不存在,则创建新的数据集;如果已存在,则直接使用该名称对应的数据集
        data_type=wf.data.DataTypeEnum.IMAGE,  # 数据集对应的数据类型, 示例为图像
        import_config=wf.steps.ImportConfig(
            annotation_format_config=[
                wf.steps.AnnotationFormatConfig(
                    format_name=wf.steps.AnnotationFormatEnum.MA_IMAGE_CLASSIFICATION_V1,  # 已标注数据的标注格式
                    scene=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION
                )  # 标注的场景类型
            ]
        )
    )
)

# 注意dataset_name这个参数配置的数据集名称需要用户自行确认在该账号下未被他人使用,否则会导致期望的数据集未被创建,而后续节点错误使用了他人创建的数据集
workflow = wf.Workflow(name="create-dataset-demo", desc="this is a demo workflow", steps=[create_dataset])
