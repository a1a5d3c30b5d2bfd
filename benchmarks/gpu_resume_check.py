"""Resume on an accelerator: interrupted + resumed runs end bit-identical to uninterrupted ones.

Run: PYTHONPATH=src python benchmarks/gpu_resume_check.py   (uses CUDA when available, else the CPU)
"""
import torch, aekit, tempfile, time
from aekit.training.trainer import Trainer, TrainConfig
from aekit.metrics import iwae_bound, elbo_terms
print(torch.__version__, torch.cuda.is_available())
torch.manual_seed(0)
x = torch.rand(2000, 1, 28, 28)
class Stop(Exception): pass
def crash(rec, tr):
    if rec["epoch"] == 2: raise Stop
def run(d, variant, resume=False, cbs=None, backbone="mlp"):
    torch.manual_seed(123); torch.cuda.manual_seed_all(123)
    m = aekit.build(variant, input_shape=(1,28,28), seed=0, backbone=backbone)
    t = Trainer(m, TrainConfig(epochs=4, batch_size=128, schedule="cosine", binarize="dynamic" if "vae" in variant else "none", device="auto", deterministic=True), out_dir=d, callbacks=cbs)
    return t.fit(x[:1600], x[1600:], resume=resume), m
for v, bb in [("dae","mlp"),("vae","mlp"),("vae","conv"),("cae","mlp"),("sparse_kl","mlp")]:
    d1, d2 = tempfile.mkdtemp(), tempfile.mkdtemp()
    t0=time.time(); r1, m1 = run(d1, v, backbone=bb)
    try: run(d2, v, cbs=[crash], backbone=bb)
    except Stop: pass
    r2, m2 = run(d2, v, resume=True, backbone=bb)
    same = all(torch.equal(a,b) for a,b in zip(m1.state_dict().values(), m2.state_dict().values()))
    print(v, bb, next(m1.parameters()).device, [round(h["val_loss"],4) for h in r1.history], "resume-identical:", same, f"{time.time()-t0:.1f}s")
    if "vae" in v:
        print("  iwae", iwae_bound(m1, x[:200].to(next(m1.parameters()).device).bernoulli(), k=200), "elbo", elbo_terms(m1, x[:200].to(next(m1.parameters()).device).bernoulli())["elbo"])
    loaded = aekit.load(d1, map_location=str(next(m1.parameters()).device))
    print("  load ok", next(loaded.parameters()).device)
