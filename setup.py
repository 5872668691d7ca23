"""Builds pygan and its compiled extension ``pygan._C`` from csrc/.

CPU kernels (csrc/*.cpp) are always built. CUDA kernels (csrc/*.cu) are added when a CUDA
toolkit is found and either a GPU is visible or FORCE_CUDA=1 is set; TORCH_CUDA_ARCH_LIST picks
the architectures. Everything is compiled here, at install time: pygan never compiles at import.

    pip install --no-build-isolation -e .          # torch must already be installed
    FORCE_CUDA=1 CUDA_HOME=/usr/local/cuda TORCH_CUDA_ARCH_LIST="8.0;9.0" pip install ...
"""

import glob
import os

from setuptools import find_packages, setup

import torch

# A bare `nvcc` wrapper on PATH (as in /usr/local/bin) would make torch guess CUDA_HOME=/usr/local,
# which holds no CUDA headers; prefer the toolkit's own directory when it exists.
if "CUDA_HOME" not in os.environ and os.path.isdir("/usr/local/cuda/include"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def want_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        if CUDA_HOME is None:
            raise RuntimeError("FORCE_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME")
        if not torch.cuda.is_available():
            # No GPU to ask: build for Ampere (A100) and Hopper (H100/H200) unless told otherwise.
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        return True
    return CUDA_HOME is not None and torch.cuda.is_available()


def extension():
    cpp_sources = sorted(glob.glob("csrc/*.cpp"))
    cuda_sources = sorted(glob.glob("csrc/*.cu"))
    # Compile time is most of CI's build, and most of it is torch's headers. The C++ standard comes
    # from torch.utils.cpp_extension. -g0 undoes the -g of Python's own CFLAGS: debug information
    # for torch's header templates doubled each C++ file's compile time (csrc/common.cpp: 23 s ->
    # 11.6 s on a 2-core CI-like VM), and GCC's code does not depend on it.
    # TORCH_ASSERT_ONLY_METHOD_OPERATORS makes including <ATen/ATen.h> (every ATen op's header) an
    # error: sources include <ATen/core/Tensor.h> and the <ATen/ops/*.h> they call, which took
    # csrc/common.cpp to 7.8 s and an empty CUDA kernel file from 48 s to 34 s.
    cxx_flags = ["-O3", "-g0", "-fopenmp"]
    macros = [("TORCH_ASSERT_ONLY_METHOD_OPERATORS", None)]
    if want_cuda() and cuda_sources:
        print(f"pygan: building CUDA kernels ({len(cuda_sources)} files) with {CUDA_HOME}")
        return CUDAExtension(
            "pygan._C", cpp_sources + cuda_sources,
            define_macros=macros + [("PYGAN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx_flags,
                                "nvcc": ["-O3",
                                         "--expt-relaxed-constexpr"]},
            extra_link_args=["-fopenmp"])
    print("pygan: building CPU kernels only")
    return CppExtension("pygan._C", cpp_sources, define_macros=macros, extra_compile_args=cxx_flags,
                        extra_link_args=["-fopenmp"])


class BuildExtensionPerBackendObjects(BuildExtension):
    """csrc/<op>.cpp and csrc/<op>.cu would both compile to <op>.o: give CUDA objects their own
    names (<op>_cuda.o)."""

    def build_extensions(self):
        object_filenames = self.compiler.object_filenames

        def distinct(sources, strip_dir=0, output_dir=""):
            objects = object_filenames(sources, strip_dir, output_dir)
            return [o[:-2] + "_cuda.o" if src.endswith(".cu") else o for src, o in zip(sources, objects)]

        self.compiler.object_filenames = distinct
        super().build_extensions()


setup(
    # triton_kernels/ ships inside the package as pygan.triton_kernels: the top-level import name
    # `triton_kernels` belongs to the Triton project's own kernel package (DESIGN.md §2).
    packages=find_packages(include=["pygan", "pygan.*"]) + ["pygan.triton_kernels"],
    package_dir={"pygan.triton_kernels": "triton_kernels"},
    package_data={"pygan.data": ["ATTRIBUTION.md"],
                  "pygan.metrics": ["feature_net.pt", "feature_net.json"],
                  "pygan.ops": ["gpu_preference.json"]},
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtensionPerBackendObjects.with_options(use_ninja=True)},
)
