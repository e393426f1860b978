# What the paper's studies share: the datasets on disk, three seeds, and the resources
# of the paper's set-up (He et al. 2019: 8 V100s for ImageNet; mmdet/mmseg's 4-GPU
# recipes downstream). Time limits are per job; a job that reaches its limit is
# requeued and resumes from its last checkpoint.
data = dict(imagenet="data/imagenet", voc="data/VOCdevkit", ade20k="data/ADEChallengeData2016")
seeds = [0, 1, 2]
resources = dict(
    pretrain=dict(gpus=8, cpus=64, mem="256G", time="2-00:00:00"),
    detection=dict(gpus=4, cpus=32, mem="128G", time="1-00:00:00"),
    segmentation=dict(gpus=4, cpus=32, mem="128G", time="1-00:00:00"),
    report=dict(gpus=0, cpus=2, mem="8G", time="1:00:00"),
)
slurm = dict(partition=None, account=None, qos=None, extra=[], requeue_signal_s=300)
