# The tiny baseline with ResNet-D and the efficient-training and refinement tricks
# that need no teacher: linear scaling (the same 0.0125 here, from the paper's 0.1
# per 256), warmup, zero gamma, no bias decay, cosine decay and label smoothing
# (He et al. 2019, §3-5).
_base_ = "./resnet18_tiny.py"
model = dict(variant="D", zero_gamma=True)
optim = dict(lr=0.1, linear_scaling=True, no_bias_decay=True)
schedule = dict(warmup_epochs=1, decay="cosine")
loss = dict(label_smoothing=0.1)
