"""Plant named mutants (wrong versions of the code) one at a time and check that the default suite's
relevant tests fail on each (issue 17). Run: ``python tests/mutants.py [--out FILE] [NAME ...]``; it
prints one line per mutant and exits 1 if any survives. The slow test in tests/test_mutants.py runs it.

Each mutant is a set of exact text replacements in one module, planted at import time by
tests/_mutant_plugin.py, so the working tree is never edited."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MUTANTS = [
    {"name": "constant action", "module": "gato_mini.agent.agent",
     "edits": [["            out[i] = self.detokenize(chosen[r])",
                "            out[i] = self.detokenize(np.full_like(chosen[r], self.lo))"]],
     "tests": ["tests/test_agent.py"]},
    {"name": "ignored cache rows", "module": "gato_mini.model.model",
     "edits": [["            x = blk(x, cos, sin, mask, input_pos, cache_rows)",
                "            x = blk(x, cos, sin, mask, input_pos, None)"]],
     "tests": ["tests/test_agent.py", "tests/test_model.py"]},
    {"name": "zeroed observations", "module": "gato_mini.agent.agent",
     "edits": [["{k: np.asarray(obs[k])[None] for k in self.fields}",
                "{k: np.zeros_like(np.asarray(obs[k]))[None] for k in self.fields}"]],
     "tests": ["tests/test_agent.py"]},
    {"name": "patch position at the interval's start", "module": "gato_mini.model.model",
     "edits": [["            return lo + (torch.rand(lo.shape, device=lo.device) * (hi - lo)).long()\n"
                "        return (lo + hi) // 2",
                "            return lo\n        return lo"]],
     "tests": ["tests/test_model.py"]},
    {"name": "RoPE removed", "module": "gato_mini.model.model",
     "edits": [["q, k = apply_rope(qkv[:, :2 * self.n_head], cos, sin).split(",
                "q, k = qkv[:, :2 * self.n_head].split("]],
     "tests": ["tests/test_model.py"]},
    {"name": "prompt dropped", "module": "gato_mini.agent.agent",
     "edits": [["        self.prompt = prompt if prompt is not None and len(prompt) else None",
                "        self.prompt = None"]],
     "tests": ["tests/test_agent.py"]},
    {"name": "loss mask inverted", "module": "gato_mini.model.model",
     "edits": [["        m = loss_mask.bool() if loss_mask is not None else",
                "        m = ~loss_mask.bool() if loss_mask is not None else"]],
     "tests": ["tests/test_model.py"]},
    {"name": "actions decoded from the wrong id range", "module": "gato_mini.data.timestep",
     "edits": [["        return cfg.discrete_offset, cfg.discrete_offset + max(spec.n, 1)",
                "        return cfg.continuous_offset, cfg.continuous_offset + max(spec.n, 1)"]],
     "tests": ["tests/test_agent.py"]},
    {"name": "mu-law skipped", "module": "gato_mini.tokenizers.continuous",
     "edits": [["    if mu_law_field:\n        x = mu_law(", "    if False:\n        x = mu_law("]],
     "tests": ["tests/test_tokenize_continuous.py"]},
    {"name": "separator missing", "module": "gato_mini.data.sequence",
     "edits": [["    fixed = np.concatenate(cols + [np.full((t, 1), sep_id, np.int64)], axis=1)",
                "    fixed = np.concatenate(cols + [np.zeros((t, 0), np.int64)], axis=1)"],
               ["n_fixed = obs.fixed.shape[1] - 1", "n_fixed = obs.fixed.shape[1]"],
               ["[np.arange(n_fixed), np.full(1 + n_tail, -1)]", "[np.arange(n_fixed), np.full(n_tail, -1)]"],
               ["[np.zeros(n_fixed + 1, bool)", "[np.zeros(n_fixed, bool)"],
               ["[np.zeros(n_obs + 1, bool)", "[np.zeros(n_obs, bool)"],
               ["[np.arange(n_obs), np.full(1 + n_tail, -1)]", "[np.arange(n_obs), np.full(n_tail, -1)]"]],
     "tests": ["tests/test_sequence.py"]},
]


def run(mutant: dict, timeout: float = 900) -> dict:
    """Run the mutant's tests with it planted; killed when a test fails (pytest exit code 1 with FAILED
    lines; an error while planting or collecting is no kill)."""
    env = {**os.environ, "GATO_MUTANT": json.dumps(mutant), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "pytest", "-p", "tests._mutant_plugin", "-x", "-q", "-p", "no:cacheprovider",
           "-m", "not slow", *mutant["tests"]]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in r.stdout.splitlines()
              if line.startswith("FAILED ")]
    return {"name": mutant["name"], "module": mutant["module"], "tests": mutant["tests"],
            "killed": r.returncode == 1 and bool(failed), "returncode": r.returncode, "failed": failed,
            "seconds": round(time.perf_counter() - t0, 1),
            "tail": "" if r.returncode == 1 else (r.stdout + r.stderr)[-1500:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutants to plant (default: all)")
    ap.add_argument("--out", help="write the results here as JSON")
    a = ap.parse_args(argv)
    unknown = set(a.names) - {m["name"] for m in MUTANTS}
    if unknown:
        print(f"unknown mutant(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    results = []
    for m in MUTANTS:
        if a.names and m["name"] not in a.names:
            continue
        res = run(m)
        results.append(res)
        verdict = "killed" if res["killed"] else f"SURVIVED (pytest exit {res['returncode']})"
        first = res["failed"][0] if res["failed"] else ""
        print(f"{m['name']:<42} {verdict:<26} {res['seconds']:>6.1f}s  {first}", flush=True)
        if not res["killed"]:
            print(res["tail"], flush=True)
    killed = sum(r["killed"] for r in results)
    print(f"{killed} of {len(results)} mutants killed")
    if a.out:
        Path(a.out).write_text(json.dumps({"killed": killed, "planted": len(results), "mutants": results},
                                          indent=1) + "\n")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
