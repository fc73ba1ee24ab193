"""Seed 002 example: 使用自定义算法(代码目录+启动文件+官方镜像)

JobStep with a custom algorithm: code dir + boot file + preset engine.

Source: seeds/002_65b490c469ccf75a.txt, line 17, example 3 of 7 (the code after "from modelarts import workflow as wf").
Reconstructed from the flattened text with only the import changed to mloop; identifiers,
arguments and values are as written in the seed.
"""
from mloop import workflow as wf

# 构建一个OutputStorage对象,对训练输出目录做统一管理
storage = wf.data.OutputStorage(name="storage_name", title="title_info", description="description_info")  # name字段必填,title, description可选填

# 定义输入的数据集对象
dataset = wf.data.DatasetPlaceholder(name="input_dataset")

# 通过JobStep来定义一个训练节点,输入使用数据集,并将训练结果输出到OBS
job_step = wf.steps.JobStep(
    name="training_job",  # 训练节点的名称,命名规范(只能包含英文字母、数字、下划线(_)、中划线(-),并且只能以英文字母开头,长度限制为64字符),一个Workflow里的两个step名称不能重复
    title="图像分类训练",  # 标题信息,不填默认使用name
    algorithm=wf.BaseAlgorithm(
        code_dir="fake_code_dir",  # 代码目录存储的路径
        boot_file="fake_boot_file",  # 启动文件存储路径,需要在代码目录下
        engine=wf.steps.JobEngine(engine_name="fake_engine_name", engine_version="fake_engine_version"),  # 官方镜像的名称以及版本信息
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
    ),  # 自定义算法使用代码目录+启动文件+官方镜像的方式实现
    inputs=wf.steps.JobInput(name="data_url", data=dataset),  # JobStep的输入在运行时配置;data字段也可使用wf.data.Dataset(dataset_name="fake_dataset_name", version_name="fake_version_name")表示
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
    )  # 训练资源规格信息
)

workflow = wf.Workflow(
    name="job-step-demo",
    desc="this is a demo workflow",
    steps=[job_step],
    storages=[storage]
)
