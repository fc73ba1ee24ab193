"""Seed 002 example: 基于数据集版本发布节点构建作业类型节点

ReleaseDatasetStep output consumed by a JobStep.

Source: seeds/002_65b490c469ccf75a.txt, line 17, example 5 of 7 (the code after "from modelarts import workflow as wf").
Reconstructed from the flattened text with only the import changed to mloop; identifiers,
arguments and values are as written in the seed.
"""
from mloop import workflow as wf

# 定义数据集对象
dataset = wf.data.DatasetPlaceholder(name="input_dataset")

# 定义训练验证切分比参数
train_ration = wf.Placeholder(name="placeholder_name", placeholder_type=wf.PlaceholderType.STR, default="0.8")
release_version_step = wf.steps.ReleaseDatasetStep(
    name="release_dataset",  # 数据集发布节点的名称,命名规范(只能包含英文字母、数字、下划线(_)、中划线(-),并且只能以英文字母开头,长度限制为64字符),一个Workflow里的两个step名称不能重复
    title="数据集版本发布",  # 标题信息,不填默认使用name值
    inputs=wf.steps.ReleaseDatasetInput(name="input_name", data=dataset),  # ReleaseDatasetStep的输入,数据集对象在运行时配置;data字段也可使用wf.data.Dataset(dataset_name="dataset_name")表示
    outputs=wf.steps.ReleaseDatasetOutput(
        name="output_name",
        dataset_version_config=wf.data.DatasetVersionConfig(
            label_task_type=wf.data.LabelTaskTypeEnum.IMAGE_CLASSIFICATION,  # 数据集发布版本时需要指定标注任务的类型
            train_evaluate_sample_ratio=train_ration  # 数据集的训练验证切分比
        )
    )  # ReleaseDatasetStep的输出
)

# 构建一个OutputStorage对象,对训练输出目录做统一管理
storage = wf.data.OutputStorage(name="storage_name", title="title_info", description="description_info")  # name字段必填,title, description可选填

# 通过JobStep来定义一个训练节点,输入使用数据集,并将训练结果输出到OBS
job_step = wf.steps.JobStep(
    name="training_job",  # 训练节点的名称,命名规范(只能包含英文字母、数字、下划线(_)、中划线(-),并且只能以英文字母开头,长度限制为64字符),一个Workflow里的两个step名称不能重复
    title="图像分类训练",  # 标题信息,不填默认使用name
    algorithm=wf.AIGalleryAlgorithm(
        subscription_id="subscription_id",  # 算法订阅ID
        item_version_id="item_version_id",  # 算法订阅版本ID
        parameters=[
            wf.AlgorithmParameters(
                name="parameter_name",
                value=wf.Placeholder(
                    name="parameter_name",
                    placeholder_type=wf.PlaceholderType.STR,
                    default="fake_value",
                    description="description_info"
                )
            )  # 算法超参的值使用Placeholder对象来表示,支持int, bool, float, str四种类型
        ]
    ),  # 训练使用的算法对象,示例中使用AI Gallery订阅的算法;部分算法超参的值如果无需修改,则在parameters字段中可以不填写,系统自动填充相关超参值
    inputs=wf.steps.JobInput(name="data_url", data=release_version_step.outputs["output_name"].as_input()),  # 使用数据集版本发布节点的输出作为JobStep的输入
    outputs=wf.steps.JobOutput(
        name="train_url",
        obs_config=wf.data.OBSOutputConfig(obs_path=storage.join("directory_path"))
    ),  # JobStep的输出
    spec=wf.steps.JobSpec(
        resource=wf.steps.JobResource(
            flavor=wf.Placeholder(
                name="train_flavor",
                placeholder_type=wf.PlaceholderType.JSON,
                description="训练资源规格"
            )
        )
    ),  # 训练资源规格信息
    depend_steps=release_version_step  # 依赖的数据集版本发布节点对象
)

# release_version_step是wf.steps.ReleaseDatasetStep的实例对象,output_name是wf.steps.ReleaseDatasetOutput的name字段值
workflow = wf.Workflow(
    name="job-step-demo",
    desc="this is a demo workflow",
    steps=[release_version_step, job_step],
    storages=[storage]
)
