# The baseline with ResNet-D and the efficient-training tricks (He et al. 2019, §3.1, §4.1):
# linear scaling (0.1 per 256 images at a batch of 256: lr 0.1), half an epoch of warmup, zero
# gamma, no bias decay. fp16 (§3.2) is left out: it does not speed up a CPU.
_base_ = "./resnet18_baseline.py"
model = dict(variant="D", zero_gamma=True)
data = dict(batch_size=256)
optim = dict(lr=0.1, base_batch_size=256, linear_scaling=True, no_bias_decay=True)
schedule = dict(warmup_epochs=0.5)
