# The distillation teacher of §5.3: ResNet-152-D with the efficient setting, cosine
# decay and label smoothing.
_base_ = "./resnet50d_efficient+cosine+label-smoothing.py"
model = dict(depth=152)
