"""Cold start of the command as a user meets it, beside the floor, measured in one run.

    python benchmarks/bench_startup.py                           # bundled model
    python benchmarks/bench_startup.py --model artifacts/model.onnx --runs 7

Each round runs every command once as a fresh process (interleaved, so a busy moment
costs all of them alike); the median of the rounds is reported. The floor is
`python -c "import onnxruntime, numpy"`: what any process serving an ONNX model with
numpy pays before it does anything. Targets: `rnncli predict "great film"` <= 1.5x the
floor, with the bundled model and with an exported one. `rnncli --help` and a TAB
completion (`rnncli predict --f<TAB>`) are shown beside the bare interpreter.
Commands run as pip's console script does, from an empty folder, so the bundled model is
the default one (no artifacts/ there), and with compiled bytecode, as after `pip install`:
the first, untimed round writes it to a temporary cache (PYTHONPYCACHEPREFIX), even where
PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# What pip's `rnncli` console script runs, for whichever rnncli is importable.
SCRIPT = "import sys; from rnncli.cli import main; sys.argv[0] = 'rnncli'; sys.exit(main())"
RNNCLI = [sys.executable, "-c", SCRIPT]


def commands(model: Path | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    completion_env = {"_RNNCLI_COMPLETE": "complete_bash",
                      "COMP_WORDS": "rnncli predict --f", "COMP_CWORD": "2"}
    cmds = {
        "floor: import onnxruntime, numpy": (
            [sys.executable, "-c", "import onnxruntime, numpy"], {}),
        "python -c pass": ([sys.executable, "-c", "pass"], {}),
        'predict "great film" (bundled)': ([*RNNCLI, "predict", "great film"], {}),
        "rnncli --help": ([*RNNCLI, "--help"], {}),
        "TAB: predict --f<TAB>": (RNNCLI, completion_env),
    }
    if model is not None:
        cmds['predict "great film" --model'] = (
            [*RNNCLI, "predict", "great film", "--model", str(model.resolve())], {})
    return cmds


def compiled_env(cache: str) -> dict[str, str]:
    """This environment with bytecode written to and read from `cache`, even where
    PYTHONDONTWRITEBYTECODE is set: after one untimed run, as after `pip install`."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": cache}


def run_once(cmd: list[str], extra_env: dict[str, str], cwd: str) -> float:
    env = {**compiled_env(os.path.join(cwd, ".pycache")), **extra_env}
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - t
    if res.returncode != 0 or (SCRIPT in cmd and not res.stdout.strip()):
        sys.exit(f"{' '.join(cmd)} failed (exit {res.returncode}): {res.stderr.strip()[:300]}")
    return seconds


# What loading a model costs inside a fresh process, for the bundled file and --model:
# onnxruntime's session with every graph optimization off (reading the file) and as
# `predict` creates it, then the preprocessing in its metadata (vocabulary included).
LOAD_PARTS = """
import json, sys, time
import onnxruntime as ort
from rnncli.serve.onnx_model import session_options
from rnncli.text.preprocessing import Preprocessing
from onnx import TensorProto, helper
path = sys.argv[1]
# onnxruntime's one-time set-up, on a one-node graph, so that it is in neither timing.
io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "xy"]
tiny = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                                           io[:1], io[1:]))
ort.InferenceSession(tiny.SerializeToString(), providers=["CPUExecutionProvider"])
bare = session_options()
bare.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
out = {}
for name, opts in (("file read, optimizations off", bare), ("session as predict makes it",
                                                            session_options())):
    t = time.perf_counter()
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    out[name] = time.perf_counter() - t
props = sess.get_modelmeta().custom_metadata_map
t = time.perf_counter()
Preprocessing.from_metadata(props)
out["preprocessing (vocabulary)"] = time.perf_counter() - t
print(json.dumps(out))
"""


def load_parts(path: Path, runs: int) -> dict[str, float]:
    """Median seconds of each part of loading `path`, each round a fresh process."""
    rounds = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", LOAD_PARTS, str(path)], check=True,
                             capture_output=True, text=True)
        rounds.append(json.loads(res.stdout))
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="an exported .onnx model to time as well")
    ap.add_argument("--runs", type=int, default=7, help="rounds; the median is reported")
    args = ap.parse_args()
    if args.model is not None and not args.model.is_file():
        sys.exit(f"No ONNX file at {args.model}: pass the exported model.onnx.")
    cmds = commands(args.model)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    with tempfile.TemporaryDirectory() as cwd:
        for cmd, env in cmds.values():  # warm the file cache once, untimed
            run_once(cmd, env, cwd)
        for _ in range(args.runs):
            for name, (cmd, env) in cmds.items():
                times[name].append(run_once(cmd, env, cwd))
    medians = {name: statistics.median(t) for name, t in times.items()}
    floor = medians["floor: import onnxruntime, numpy"]
    print(f"median of {args.runs} cold starts, {os.cpu_count()} CPUs")
    print(f"{'command':<36} {'seconds':>8} {'x floor':>8}")
    for name, seconds in medians.items():
        print(f"{name:<36} {seconds:8.3f} {seconds / floor:7.2f}x")
    for name in medians:
        if name.startswith("predict"):
            ratio = medians[name] / floor
            verdict = "ok" if ratio <= 1.5 else "over"
            print(f"target {name}: <= 1.5x floor -> {ratio:.2f}x {verdict}")
    from rnncli.serve import locate

    models = {"bundled": locate.BUNDLED}
    if args.model is not None:
        models["--model"] = args.model
    print(f"\nloading the model in a fresh process, ms (median of {args.runs}):")
    parts = {label: load_parts(path, args.runs) for label, path in models.items()}
    print(f"{'':<32}" + "".join(f"{label:>10}" for label in parts))
    for part in next(iter(parts.values())):
        print(f"{part:<32}" + "".join(f"{p[part] * 1e3:10.1f}" for p in parts.values()))
    print(f"{'files on disk, MB':<32}" + "".join(f"{model_bytes(path) / 1e6:10.2f}"
                                                for path in models.values()))


def model_bytes(path: Path) -> int:
    """Bytes of the ONNX file and of the external data files it names."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    data = {e.value for t in proto.graph.initializer for e in t.external_data
            if e.key == "location"}
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in data)


if __name__ == "__main__":
    main()
