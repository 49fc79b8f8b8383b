"""Accuracy and time of Deep Compression's retraining on the digits networks.

For each setting and seed: test accuracy one-shot (prune + quantize, no retraining) and
retrained (``le.Recipe(..., retrain=True)``), the accuracy on the validation images held
out of the training split, the share of weights pruned, the most values per layer, and
the wall-clock and CPU time of the retraining (on a shared machine the wall time is
several times the CPU time; the CPU time is what an idle machine would take). Prints a
markdown table and the medians over the seeds.

    python benchmarks/retrain.py [--seeds 0 1 2] [--holdout]

``--holdout`` retrains on the training split without its validation images, which is how
the default schedules were chosen (on the validation accuracy, never on the test split).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

import lowentropy as le
from lowentropy.networks.training import SCHEDULES, retrain
from lowentropy.sensitivity import validation_accuracy

#: (network, label, recipe without retraining) of the targets and a few more.
SETTINGS = [
    ("lenet-300-100", "90 % per layer, k-means 32", le.Recipe(0.9, clusters=32)),
    ("lenet-300-100", "95 % per layer, k-means 16", le.Recipe(0.95, clusters=16)),
    ("lenet-300-100", "90 % per layer, uniform 4-bit", le.Recipe(0.9, bits=4)),
    ("lenet-5", "90 % global, k-means 32", le.Recipe(0.9, clusters=32, global_prune=True)),
    ("lenet-5", "90 % per layer, k-means 32", le.Recipe(0.9, clusters=32)),
    ("lenet-5", "rates for 90 % from sensitivity, k-means 32", None),
]


def _sensitivity_recipe(network: str) -> le.Recipe:
    """Per-layer rates for 90 % of all weights, chosen on the validation images."""
    return le.Recipe(le.choose_rates(le.load_network(network), target=0.9), clusters=32)


def _values(network: le.Network) -> int:
    return max(len(np.unique(layer.weight[layer.weight != 0])) for layer in network)


def run(network: str, label: str, recipe: le.Recipe, seed: int, holdout: bool) -> dict:
    net = le.load_network(network)
    one_shot = recipe.apply(net)
    trained_recipe = dataclasses.replace(recipe, retrain=True, seed=seed)
    schedule = dataclasses.replace(SCHEDULES[network], holdout=holdout)
    wall, cpu = time.perf_counter(), time.process_time()
    out = retrain(net, trained_recipe, schedule=schedule)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"network": network, "setting": label, "seed": seed,
            "one_shot": le.accuracy(one_shot), "retrained": le.accuracy(out),
            "validation": validation_accuracy(out),
            "pruned": sum(int((la.weight == 0).sum()) for la in out) / out.size,
            "values": _values(out), "wall_s": wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--holdout", action="store_true")
    parser.add_argument("--only", help="only settings whose network or label contains this")
    args = parser.parse_args(argv)
    rows = []
    print("| network | setting | seed | one-shot | retrained | validation | pruned | "
          "values/layer | wall s | CPU s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
          flush=True)
    for network, label, recipe in SETTINGS:
        if args.only and args.only not in network + " " + label:
            continue
        recipe = recipe or _sensitivity_recipe(network)
        print(f"<!-- {network}: {recipe.describe()} -->", flush=True)
        for seed in args.seeds:
            r = run(network, label, recipe, seed, args.holdout)
            rows.append(r)
            print(f"| {network} | {label} | {seed} | {r['one_shot']:.1%} | "
                  f"{r['retrained']:.1%} | {r['validation']:.1%} | {r['pruned']:.1%} | "
                  f"{r['values']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |", flush=True)
    print("\nmedians over the seeds:")
    for key in dict.fromkeys((r["network"], r["setting"]) for r in rows):
        group = [r for r in rows if (r["network"], r["setting"]) == key]
        med = {k: statistics.median(r[k] for r in group)
               for k in ("one_shot", "retrained", "wall_s", "cpu_s")}
        print(f"  {key[0]}, {key[1]}: one-shot {med['one_shot']:.1%}, retrained "
              f"{med['retrained']:.1%} ({round(med['retrained'] * 450)}/450), wall "
              f"{med['wall_s']:.1f} s, CPU {med['cpu_s']:.1f} s")
    return rows


if __name__ == "__main__":
    main()
