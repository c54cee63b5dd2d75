"""Probe (docs/learning.md, session 3): Gato's patch embedding on Pong frames -> action, several readers.
Usage: python docs/probes/pong_patch_readers.py DATASET MODE STEPS LR; MODE: concat|attn|deepsets|rawsets|mixattn
with -fixed (middle positions), -zero, -bigpos, -bigproj, -film variants; EASY=1: the sanity label "ball in the top half"."""
import sys, numpy as np, torch, time, torch.nn as nn
from gato_mini.data.minari_io import iter_episodes
from gato_mini.config import GatoConfig
from gato_mini.model.model import PatchEmbedding
from gato_mini.tokenizers.image import patch_intervals
torch.manual_seed(0)
mode = sys.argv[2]; steps = int(sys.argv[3]); lr = float(sys.argv[4])
eps = list(iter_episodes(sys.argv[1]))
X = [e.observations["image"][:-1] for e in eps]; Y = [e.actions for e in eps]
def patches(F):  # (N, H, W, 1) -> (N, n, 256)
    N, H, W, _ = F.shape; p = 16
    return torch.tensor(F.reshape(N, H//p, p, W//p, p).transpose(0, 1, 3, 2, 4).reshape(N, (H//p)*(W//p), p*p))
import os
if os.environ.get("EASY"):  # sanity labels: is the ball (value 236) in the top half of the frame?
    Y = [np.array([int((f[:40] == 236).any()) for f in x]) for x in X]
Ptr = patches(np.concatenate(X[:54])); ytr = torch.tensor(np.concatenate(Y[:54])).long()
Pte = patches(np.concatenate(X[54:])); yte = torch.tensor(np.concatenate(Y[54:])).long()
H, W = X[0].shape[1:3]; rlo, rhi = patch_intervals(H//16); clo, chi = patch_intervals(W//16)
pos = torch.tensor([[rlo[r], rhi[r], clo[c], chi[c]] for r in range(H//16) for c in range(W//16)])
cfg = GatoConfig.from_name("tiny"); cfg = GatoConfig.from_dict({**{k: v for k, v in cfg.to_dict().items() if k in ("n_layer","n_embd","n_head","block_size","text_vocab_size")}, "image_channels": 1})
n = pos.shape[0]
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.pe = PatchEmbedding(cfg); d = cfg.n_embd
        s.head = nn.Sequential(nn.Linear(n*d, 256), nn.GELU(), nn.Linear(256, 6))
        s.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 4*d, 0.0, batch_first=True, norm_first=True), 4)
        s.raw = nn.Sequential(nn.Linear(256 + n, 4*d), nn.GELU(), nn.Linear(4*d, d)); s.tok = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4*d), nn.GELU(), nn.Linear(4*d, d)); s.head2 = nn.Sequential(nn.Linear(d, 256), nn.GELU(), nn.Linear(256, 6)); s.mix = nn.Sequential(nn.Linear(n*d, 256), nn.GELU(), nn.Linear(256, n*d)); s.q = nn.Parameter(torch.randn(1, 1, d) * 0.02); s.out = nn.Linear(d, 6)
    def forward(s, P):
        B = P.shape[0]
        e = s.pe(P.reshape(B*n, -1), pos.repeat(B, 1)).reshape(B, n, -1)
        if mode.startswith("concat"): return s.head(e.flatten(1))
        if mode.startswith("mixattn"):
            e = e + s.mix(e.flatten(1)).view(B, n, -1)
            x = s.enc(torch.cat([e, s.q.expand(B, 1, -1)], 1)); return s.out(x[:, -1])
        if mode.startswith("rawsets"):
            x = torch.cat([P.float() / 255, torch.eye(n).expand(B, n, n)], -1)
            return s.head2(s.raw(x).sum(1))
        if mode.startswith("deepsets"): return s.head2(s.tok(e).mean(1))
        x = s.enc(torch.cat([e, s.q.expand(B, 1, -1)], 1)); return s.out(x[:, -1])
m = M()
if "film" in mode:
    import types, torch.nn.functional as F
    pe = m.pe; pe.grow = nn.Embedding(128, cfg.n_embd); pe.gcol = nn.Embedding(128, cfg.n_embd)
    nn.init.normal_(pe.grow.weight, std=1.0); nn.init.normal_(pe.gcol.weight, std=1.0)
    def fwd(self, patches, patch_pos):
        patches = (patches.float() / 127.5 - 1.0) / 4
        x = patches.reshape(-1, 1, 16, 16); h = self.stem(x)
        h = h + self.conv2(F.gelu(self.norm2(self.conv1(F.gelu(self.norm1(h))))))
        out = self.proj(h.flatten(1)); pos = patch_pos.long()
        r, c = self._position(pos[:, 0], pos[:, 1]), self._position(pos[:, 2], pos[:, 3])
        return out * (self.grow(r) + self.gcol(c)) + self.row(r) + self.col(c)
    pe.forward = types.MethodType(fwd, pe)
from gato_mini.model.model import GatoModel
m.pe.apply(GatoModel._init_weights)
if 'film' in mode: nn.init.normal_(m.pe.grow.weight, std=1.0); nn.init.normal_(m.pe.gcol.weight, std=1.0)
if 'bigpos' in mode: torch.nn.init.normal_(m.pe.row.weight, std=1.0); torch.nn.init.normal_(m.pe.col.weight, std=1.0)
if 'bigproj' in mode: torch.nn.init.normal_(m.pe.proj.weight, std=0.2)
if "fixed" in mode: m.pe._position = lambda lo, hi: (lo + hi) // 2
if "zero" in mode:
    nn.init.zeros_(m.pe.row.weight); nn.init.zeros_(m.pe.col.weight)
if mode.endswith("fourier"):
    from gato_mini.model.model import fourier_rows
    with torch.no_grad(): m.pe.row.weight.copy_(fourier_rows(128, cfg.n_embd)); m.pe.col.weight.copy_(fourier_rows(128, cfg.n_embd))
opt = torch.optim.AdamW(list(m.parameters()), lr=lr, weight_decay=0.1); t0 = time.time(); bs = 64
for s in range(steps):
    i = torch.randint(0, len(Ptr), (bs,))
    loss = nn.functional.cross_entropy(m(Ptr[i]), ytr[i]); opt.zero_grad(); loss.backward(); opt.step()
    if s % 250 == 0 or s == steps - 1:
        m.eval()
        with torch.no_grad(): acc = (m(Pte[:2000]).argmax(-1) == yte[:2000]).float().mean().item()
        m.train(); print(f"{mode} step {s} loss {loss.item():.3f} acc {acc:.3f} {time.time()-t0:.0f}s", flush=True)
