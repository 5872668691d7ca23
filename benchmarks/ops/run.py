"""Every op benchmark in one run: python -m benchmarks.ops.run [--device cuda] [--save]"""

from benchmarks.ops import (bench_bias_lrelu, bench_bias_lrelu_pixel_norm, bench_fade_in,
                            bench_gradient_penalty, bench_instance_norm_act, bench_minibatch_std,
                            bench_pixel_norm)
from benchmarks.ops.cli import parser, run_benches

ALL = [m.BENCH for m in (bench_pixel_norm, bench_bias_lrelu, bench_bias_lrelu_pixel_norm,
                         bench_minibatch_std, bench_fade_in, bench_gradient_penalty,
                         bench_instance_norm_act)]

if __name__ == "__main__":
    run_benches(ALL, parser().parse_args())
