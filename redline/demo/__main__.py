"""``python -m redline.demo OUT_DIR [--preset demo|small] [--seed N]``: write a demo build."""

from __future__ import annotations

import argparse
import sys
import time

from redline.demo import PRESETS, generate_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m redline.demo", description="Write a deterministic demo build of generated Sentinel-2 scenes."
    )
    parser.add_argument("out_dir", help="folder of the build (created; an older build there is replaced)")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="demo: 320 px, 2021-2023; small: 160 px, 2022-2023; hard: demo size with more cloud, a cropland zone, regrowing burns, slow quarries, a wider no-data swath")
    parser.add_argument("--seed", type=int, default=20230101, help="random seed (default 20230101)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    build = generate_demo(args.out_dir, preset=args.preset, seed=args.seed)
    print(f"{build.n_scenes} scenes, preset {args.preset}, seed {args.seed}: {build.root} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
