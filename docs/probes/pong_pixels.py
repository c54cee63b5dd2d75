"""Probe (docs/learning.md, session 3): can a small model map one Pong frame to the tracker's action?
Usage: python docs/probes/pong_pixels.py DATASET  (a Minari dataset of atari-pong tracker episodes)"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn

from gato_mini.data.minari_io import iter_episodes

torch.manual_seed(0)
eps = list(iter_episodes(sys.argv[1]))
X = [e.observations["image"][:-1] for e in eps]; Y = [e.actions for e in eps]
Xtr = torch.tensor(np.concatenate(X[:54])).float().squeeze(-1) / 255; ytr = torch.tensor(np.concatenate(Y[:54])).long()
Xte = torch.tensor(np.concatenate(X[54:])).float().squeeze(-1) / 255; yte = torch.tensor(np.concatenate(Y[54:])).long()
print("train", Xtr.shape, "counts", np.bincount(ytr.numpy()), "majority test", (yte == ytr.bincount().argmax()).float().mean().item())
def fit(model, name, steps=1500, lr=1e-3, bs=256):
    opt = torch.optim.Adam(model.parameters(), lr=lr); t0 = time.time()
    for s in range(steps):
        i = torch.randint(0, len(Xtr), (bs,))
        loss = nn.functional.cross_entropy(model(Xtr[i]), ytr[i]); opt.zero_grad(); loss.backward(); opt.step()
        if s % 500 == 0 or s == steps - 1:
            with torch.no_grad(): acc = (model(Xte).argmax(-1) == yte).float().mean().item()
            print(f"{name} step {s} loss {loss.item():.3f} test acc {acc:.3f} {time.time()-t0:.0f}s", flush=True)
H, W = Xtr.shape[1:]
#fit(nn.Sequential(nn.Flatten(), nn.Linear(H*W, 6)), "linear")
#fit(nn.Sequential(nn.Flatten(), nn.Linear(H*W, 256), nn.ReLU(), nn.Linear(256, 6)), "mlp")
class CNN(nn.Module):
    def __init__(s):
        super().__init__()
        s.c = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32*(H//4)*(W//4), 128), nn.ReLU(), nn.Linear(128, 6))
    def forward(s, x): return s.c(x[:, None])
fit(CNN(), "cnn", steps=2000)
