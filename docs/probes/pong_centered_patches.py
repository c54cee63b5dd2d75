"""Probe (docs/learning.md, session 3): a sum of per-patch MLPs (raw pixels + one-hot patch index) on Pong
frames -> the tracker action, with CENTER=1 subtracting each patch's median (its background) first.
Usage: CENTER=1 python docs/probes/pong_centered_patches.py DATASET (60 tracker episodes; docs/learning.md says how to record them)."""
import sys, numpy as np, torch, torch.nn as nn
from gato_mini.data.minari_io import iter_episodes
eps = list(iter_episodes(sys.argv[1]))[:20]
X = np.concatenate([e.observations["image"][:-1] for e in eps])[..., 0]  # (N, 80, 32)
y = torch.tensor(np.concatenate([e.actions for e in eps])).long()
N = len(X); P = torch.tensor(X.reshape(N, 5, 16, 2, 16).transpose(0, 1, 3, 2, 4).reshape(N, 10, 256)).float() / 255
import os
if os.environ.get("CENTER"): P = P - P.median(-1, keepdim=True).values
print(P.shape, "ball in patches", (P == 236/255).any(-1).float().mean(0))
torch.manual_seed(0)
n, d = 10, 128
raw = nn.Sequential(nn.Linear(256 + n, 512), nn.GELU(), nn.Linear(512, d)); head = nn.Sequential(nn.Linear(d, 256), nn.GELU(), nn.Linear(256, 6))
opt = torch.optim.Adam(list(raw.parameters()) + list(head.parameters()), 1e-3)
for s in range(1500):
    i = torch.randint(0, N, (64,))
    x = torch.cat([P[i], torch.eye(n).expand(64, n, n)], -1)
    loss = nn.functional.cross_entropy(head(raw(x).sum(1)), y[i]); opt.zero_grad(); loss.backward(); opt.step()
    if s % 200 == 0 or s == 1499: print(s, loss.item())
te = list(iter_episodes(sys.argv[1]))[54:]
Xt = np.concatenate([e.observations["image"][:-1] for e in te])[..., 0]; yt = torch.tensor(np.concatenate([e.actions for e in te]))
Pt = torch.tensor(Xt.reshape(len(Xt), 5, 16, 2, 16).transpose(0, 1, 3, 2, 4).reshape(len(Xt), 10, 256)).float() / 255
if os.environ.get("CENTER"): Pt = Pt - Pt.median(-1, keepdim=True).values
with torch.no_grad():
    pred = head(raw(torch.cat([Pt, torch.eye(n).expand(len(Pt), n, n)], -1)).sum(1)).argmax(-1)
print("held-out accuracy", (pred == yt).float().mean().item(), "majority", (yt == 0).float().mean().item())
