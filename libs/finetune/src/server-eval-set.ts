/**
 * The evaluation set a version was measured on, reproduced by the trainer from its own data, never
 * from the caller's: the yardstick of a promotion to a protected alias. A version's manifest records
 * its set by name (`FineTuneData.evalSetName`), which ends with the images' and labels' hash; only
 * Fashion-MNIST sets can be rebuilt from that name (an image folder is the caller's), and a rebuilt
 * set counts only when its hash matches, so labels shifted in some copy of the files never do.
 */
import { join } from 'node:path';
import { access } from 'node:fs/promises';
import {
  datasetHash,
  FASHION_MNIST_FILES,
  loadFashionMnist,
  type FashionMnistSplit,
  type ImageDataset,
} from '@deit-serve/datasets';

/** A set the trainer can rebuild: which Fashion-MNIST split, how it was cut, its size and hash prefix. */
export interface ReproducibleEvalSet {
  readonly split: 'test' | 'train-holdout';
  /** For `train-holdout`: the split's validation fraction and seed. */
  readonly fraction?: number;
  readonly seed?: number;
  readonly size: number;
  /** The first 12 hex digits of {@link datasetHash}. */
  readonly hash: string;
}

const TEST = /^fashion-mnist\/test\/(\d+)@([0-9a-f]{12})$/;
const HOLDOUT = /^fashion-mnist\/train-holdout\(([0-9.eE+-]+),seed=(\d+)\)\/(\d+)@([0-9a-f]{12})$/;

/** The recipe of a set name `sources.ts` writes, or a reason why it cannot be rebuilt. */
export function parseEvalSetName(name: string): ReproducibleEvalSet | { readonly problem: string } {
  const test = TEST.exec(name);
  if (test) return { split: 'test', size: Number(test[1]), hash: test[2] ?? '' };
  const holdout = HOLDOUT.exec(name);
  if (holdout) {
    return {
      split: 'train-holdout',
      fraction: Number(holdout[1]),
      seed: Number(holdout[2]),
      size: Number(holdout[3]),
      hash: holdout[4] ?? '',
    };
  }
  return {
    problem: name.startsWith('fashion-mnist/')
      ? `the set name ${JSON.stringify(name)} is not one this trainer writes`
      : `only Fashion-MNIST sets can be rebuilt by the trainer, not ${JSON.stringify(name)} (the caller's files)`,
  };
}

/** Folders of the data roots that hold both files of `split` directly. */
async function fashionMnistDirs(dataRoots: readonly string[], split: FashionMnistSplit): Promise<string[]> {
  const found: string[] = [];
  for (const root of dataRoots) {
    const files = [FASHION_MNIST_FILES[split].images, FASHION_MNIST_FILES[split].labels];
    const present = await Promise.all(
      files.map((f) =>
        access(join(root, f)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (present.every(Boolean)) found.push(root);
  }
  return found;
}

/** Whether a Fashion-MNIST copy for `set` exists in the data roots (cheap: no file is read). */
export async function hasFashionMnistFor(
  set: ReproducibleEvalSet,
  dataRoots: readonly string[],
): Promise<boolean> {
  return (await fashionMnistDirs(dataRoots, set.split === 'test' ? 'test' : 'train')).length > 0;
}

/**
 * The set named `name`, rebuilt from the Fashion-MNIST files directly inside one of `dataRoots`
 * (the first whose rebuilt set has the recorded hash), or why it cannot be.
 */
export async function reproduceEvalSet(
  name: string,
  dataRoots: readonly string[],
): Promise<{ readonly dataset: ImageDataset } | { readonly problem: string }> {
  const set = parseEvalSetName(name);
  if ('problem' in set) return set;
  const split: FashionMnistSplit = set.split === 'test' ? 'test' : 'train';
  const dirs = await fashionMnistDirs(dataRoots, split);
  if (dirs.length === 0) {
    return { problem: `no data root (${dataRoots.join(', ')}) holds the Fashion-MNIST ${split} files` };
  }
  for (const dir of dirs) {
    let whole: ImageDataset;
    try {
      whole = (await loadFashionMnist(dir, split)).dataset;
    } catch {
      continue; // a damaged copy: another root may hold a good one
    }
    const cut = set.split === 'test' ? whole : whole.split(set.fraction ?? 0, set.seed ?? 0).validation;
    if (cut.size < set.size) continue;
    const dataset = cut.limit(set.size);
    if (datasetHash(dataset).slice(0, 12) === set.hash) return { dataset };
  }
  return {
    problem: `the Fashion-MNIST ${split} files in ${dirs.join(', ')} do not rebuild it (other images or labels)`,
  };
}
