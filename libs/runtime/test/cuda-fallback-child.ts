/**
 * Run by cuda-fallback.spec.ts in a process of its own (the loader reads LD_LIBRARY_PATH, where the
 * stub driver goes, only at start-up): one session asking for CUDA, one on the CPU, the same batch
 * through both, on the thread named by the first argument (`main`, or `worker` as the service runs
 * them). Prints one JSON line.
 */
import { OnnxModelSession } from '../src/onnx-session';
import {
  deitOnnxWeightShapes,
  exportDeitOnnx,
  OnnxIoName,
  randomPixels,
  randomWeights,
  type DeitOnnxConfig,
} from './model-fixtures';

const tiny: DeitOnnxConfig = {
  embedDim: 8,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
  patchSize: 4,
  imgSize: 16,
  numClasses: 5,
  distilled: true,
};
const BATCH = 4;

async function main(): Promise<void> {
  const thread = process.argv[2] === 'worker' ? 'worker' : 'main';
  const bytes = exportDeitOnnx(tiny, randomWeights(deitOnnxWeightShapes(tiny), 11), { preset: 'tiny_test' });
  const warnings: string[] = [];
  const asked = await OnnxModelSession.create(bytes, {
    executionProvider: 'cuda',
    intraOpThreads: 1,
    thread,
    logger: { warn: (message) => warnings.push(message) },
  });
  const cpu = await OnnxModelSession.create(bytes, { intraOpThreads: 1, thread });
  const feeds = {
    [OnnxIoName.pixelValues]: { data: randomPixels(BATCH * 3 * 16 * 16, 5), dims: [BATCH, 3, 16, 16] },
  };
  const [fromAsked, fromCpu] = [await asked.run(feeds), await cpu.run(feeds)];
  console.log(
    JSON.stringify({
      provider: asked.executionProvider,
      warnings,
      logits: Array.from(fromAsked[OnnxIoName.clsLogits]?.data ?? []),
      cpuLogits: Array.from(fromCpu[OnnxIoName.clsLogits]?.data ?? []),
    }),
  );
  await Promise.all([asked.release(), cpu.release()]);
}

void main();
