import time, sys, numpy as np, torch, pandas as pd
from aulib.data.synthetic import SynthConfig, generate
from aulib.methods.rrl import *
from aulib.data.folds import fold_split
T=time.time()
S=int(sys.argv[1]) if len(sys.argv)>1 else 64
pre = generate(SynthConfig(preset='bp4d', n_subjects=41, sequences_per_subject=12, frames_per_sequence=4, image_size=S, channels=3, seed=100, workers=8))
down = generate(SynthConfig(preset='bp4d', n_subjects=41, sequences_per_subject=2, frames_per_sequence=15, image_size=S, channels=3, seed=0, workers=8))
print('data', time.time()-T, len(pre), len(down), flush=True); T=time.time()
tr,_=fold_split(down,1)
M = relation_matrix(down, tr)
probe=dict(pos_weight='balanced')
rows=[]
for bb, bkw, ls in [('swin_tiny_test', {}, 8)]:
  base = RRLConfig(backbone=bb, backbone_kwargs=bkw, image_size=S, local_stride=ls, hidden_dim=256, proj_dim=64, batch_size=64)
  for seed in (0,):
    df = linear_protocol(random_encoder(base, seed), down, image_size=S, progress=False, probe=dict(probe, seed=seed))
    rows.append(dict(variant='random', lr=0, ep=0, seed=seed, f1=df.f1.mean())); print(rows[-1], flush=True)
  for lr, ep in [(0.005, 20), (0.05, 20)]:
    for name in ['global', 'global+local+corr']:
      for seed in (0,):
        cfg, aug = variant_config(RRLConfig.from_dict({**asdict(base), 'base_lr': lr}), name, 'vgg_tiny')
        t=time.time()
        m, h = pretrain(pre, cfg, M, epochs=ep, augment=aug, progress=False, seed=seed, num_workers=6)
        df = linear_protocol(m.encoder, down, image_size=S, progress=False, probe=dict(probe, seed=seed))
        rows.append(dict(variant=name, lr=lr, ep=ep, seed=seed, f1=df.f1.mean(), loss=h.loss.iloc[-1], t=time.time()-t)); print(rows[-1], flush=True)
print(pd.DataFrame(rows).to_string())
