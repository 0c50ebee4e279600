"""Mining throughput: streaming top-k vs naive store-all-then-sort vs forward-only (the ceiling).

    .venv/bin/python benchmarks/bench_mining.py --images 256 --units 50 --device cpu
Prints images/s of each and the ratios mining/forward-only and mining/naive, plus peak memory
(CUDA: max allocated; CPU: the size of the kept state, which is what differs).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-dir", default=None, help="default: an offline pool")
    args = parser.parse_args()

    from stimuli.build import load
    from stimuli.images import list_images, sample_image_pool
    from stimuli.layers import LayerRecorder, layer_widths, relevant_layers
    from stimuli.mining import ImageDataset, MiningConfig, merge_shards, mine_shard, normalizer
    from stimuli.sampling import sample_units

    tmp = Path(tempfile.mkdtemp(prefix="bench_mining_"))
    folder = args.image_dir or sample_image_pool(tmp / "pool", args.images, seed=0)[0].parent
    files = [str(p) for p in list_images(folder)][: args.images]
    device = torch.device(args.device)
    spec, model, weights = load(args.model, True, None, args.device)
    units = sample_units(args.model, layer_widths(model, spec, relevant_layers(model, spec)),
                         args.units, seed=42)
    normalize = normalizer(spec, device)
    is_cuda = device.type == "cuda"

    def loader():
        return DataLoader(ImageDataset(files), batch_size=args.batch_size,
                          num_workers=args.workers, pin_memory=is_cuda)

    def sync():
        if is_cuda:
            torch.cuda.synchronize()

    def reset():
        if is_cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak():
        return torch.cuda.max_memory_allocated() / 2**20 if is_cuda else float("nan")

    # warm-up
    with torch.no_grad():
        model(normalize(next(iter(loader()))[0].to(device)))

    reset(); sync(); t = time.perf_counter()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=is_cuda):
        for images, _, _ in loader():
            model(normalize(images.to(device, non_blocking=True)))
    sync(); forward_s = time.perf_counter() - t; forward_mem = peak()

    # naive: hook every needed layer, keep every image's reduced activations, sort at the end
    reset(); sync(); t = time.perf_counter()
    layers = list(dict.fromkeys(u.layer for u in units))
    kept = []
    with LayerRecorder(model, spec, layers, keep="reduced", stop_early=False) as rec, \
            torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=is_cuda):
        for images, _, _ in loader():
            out = rec(model, normalize(images.to(device, non_blocking=True)))
            kept.append(torch.stack([out[u.layer][:, u.channel] for u in units], 1).cpu())
    all_acts = torch.cat(kept).T
    order = torch.argsort(all_acts, dim=1, descending=True, stable=True)
    naive_top = order[:, : args.k]
    sync(); naive_s = time.perf_counter() - t; naive_mem = peak()
    naive_state = all_acts.numel() * 4

    reset(); sync(); t = time.perf_counter()
    cfg = MiningConfig(k=args.k, batch_size=args.batch_size, workers=args.workers,
                       device=args.device, store_activations=False)
    mine_shard(model, spec, weights, units, files, tmp / "work", cfg, progress=False)
    sync(); mine_s = time.perf_counter() - t; mine_mem = peak()
    result = merge_shards(tmp / "work", 1, [u.unit_id for u in units], files)
    exact = np.array_equal(result.top_indices, naive_top.numpy())
    stream_state = result.top_values.size * 2 * (4 + 8)

    n = len(files)
    print(f"device: {args.device} ({torch.cuda.get_device_name() if is_cuda else 'CPU'}), "
          f"model {args.model}, {n} images, {len(units)} units over {len(layers)} layers, "
          f"k={args.k}, batch {args.batch_size}, workers {args.workers}")
    print(f"forward-only : {n / forward_s:8.1f} img/s   peak {forward_mem:.0f} MiB")
    print(f"naive        : {n / naive_s:8.1f} img/s   peak {naive_mem:.0f} MiB   "
          f"state {naive_state / 1e6:.3f} MB (grows with images)")
    print(f"mining       : {n / mine_s:8.1f} img/s   peak {mine_mem:.0f} MiB   "
          f"state {stream_state / 1e6:.3f} MB (units x k)   exact={exact}")
    print(f"ratio mining/forward-only = {forward_s / mine_s:.2f}   "
          f"ratio mining/naive = {naive_s / mine_s:.2f}")


if __name__ == "__main__":
    main()
