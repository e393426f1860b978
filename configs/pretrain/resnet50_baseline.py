# The paper's baseline (He et al. 2019, §2.1; Table 3 "Baseline"): ResNet-50 (the
# original, variant A), Nesterov SGD, lr 0.1 for batch 256, weight decay 1e-4 on
# everything, step decay /10 at epochs 30, 60, 90 of 120, fp32, no tricks.
model = dict(depth=50, variant="A", base_channels=64, num_classes=1000, zero_gamma=False, init="kaiming")
data = dict(root="data/imagenet", image_size=224, val_resize=256, augment="paper", batch_size=256, workers=8)
optim = dict(lr=0.1, base_batch_size=256, linear_scaling=False, momentum=0.9, nesterov=True,
             weight_decay=1e-4, no_bias_decay=False)
schedule = dict(epochs=120, warmup_epochs=0, decay="step", milestones=[30, 60, 90], gamma=0.1)
loss = dict(label_smoothing=0.0, mixup_alpha=0.0, mixup_off_epochs=0, distill_teacher=None, distill_temperature=20.0)
run = dict(precision="fp32", channels_last=False, seed=0, deterministic=False)
