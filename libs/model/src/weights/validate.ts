import type { NamedWeights } from './named-weights';

export interface ShapeMismatch {
  readonly name: string;
  readonly expected: readonly number[];
  readonly actual: readonly number[];
}

export interface WeightMismatches {
  /** Expected names absent from the weights, in expected order. */
  readonly missing: readonly string[];
  /** Names in the weights that the model does not have, in weights order. */
  readonly unexpected: readonly string[];
  readonly misshaped: readonly ShapeMismatch[];
}

/** One error for every problem in a set of weights, so a bad checkpoint is diagnosed in one go. */
export class WeightMismatchError extends Error implements WeightMismatches {
  readonly missing: readonly string[];
  readonly unexpected: readonly string[];
  readonly misshaped: readonly ShapeMismatch[];

  constructor(mismatches: WeightMismatches, context?: string) {
    super(formatMismatches(mismatches, context));
    this.name = 'WeightMismatchError';
    this.missing = mismatches.missing;
    this.unexpected = mismatches.unexpected;
    this.misshaped = mismatches.misshaped;
  }
}

export function findWeightMismatches(
  actual: NamedWeights,
  expected: ReadonlyMap<string, readonly number[]>,
): WeightMismatches {
  const missing: string[] = [];
  const misshaped: ShapeMismatch[] = [];
  for (const [name, shape] of expected) {
    const tensor = actual.get(name);
    if (tensor === undefined) missing.push(name);
    else if (!sameShape(tensor.shape, shape))
      misshaped.push({ name, expected: [...shape], actual: [...tensor.shape] });
  }
  const unexpected = [...actual.keys()].filter((name) => !expected.has(name));
  return { missing, unexpected, misshaped };
}

/**
 * Throws a {@link WeightMismatchError} listing every missing, unexpected and mis-shaped key, or
 * returns normally when `actual` has exactly the expected names and shapes. `context` (e.g. a file
 * name or preset) starts the message.
 */
export function checkWeights(
  actual: NamedWeights,
  expected: ReadonlyMap<string, readonly number[]>,
  context?: string,
): void {
  const mismatches = findWeightMismatches(actual, expected);
  if (mismatches.missing.length + mismatches.unexpected.length + mismatches.misshaped.length > 0) {
    throw new WeightMismatchError(mismatches, context);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const fmt = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

function formatMismatches(m: WeightMismatches, context?: string): string {
  const counts = [
    m.missing.length > 0 ? `${m.missing.length} missing` : '',
    m.unexpected.length > 0 ? `${m.unexpected.length} unexpected` : '',
    m.misshaped.length > 0 ? `${m.misshaped.length} mis-shaped` : '',
  ].filter((s) => s !== '');
  const lines = [`${context ? `${context}: ` : ''}weights do not match the model (${counts.join(', ')})`];
  for (const name of m.missing) lines.push(`  missing:     ${name}`);
  for (const name of m.unexpected) lines.push(`  unexpected:  ${name}`);
  for (const s of m.misshaped)
    lines.push(`  mis-shaped:  ${s.name} expected ${fmt(s.expected)}, got ${fmt(s.actual)}`);
  return lines.join('\n');
}
