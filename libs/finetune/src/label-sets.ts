/** How two label sets (a model's, a data set's) are compared, and how one is quoted in messages. */

export function preview(labels: readonly string[]): string {
  const shown = labels.slice(0, 10).map((l) => JSON.stringify(l));
  return shown.join(', ') + (labels.length > shown.length ? `, … ${labels.length - shown.length} more` : '');
}

/** Undefined when equal; otherwise what differs first (count, then the first differing name). */
export function labelMismatch(a: readonly string[], b: readonly string[]): string | undefined {
  if (a.length !== b.length) {
    return `${a.length} classes (${preview(a)}) vs ${b.length} classes (${preview(b)})`;
  }
  const i = a.findIndex((label, k) => label !== b[k]);
  if (i < 0) return undefined;
  return `class ${i} is ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}`;
}
