/**
 * The largest absolute difference between two arrays of numbers: how far two computations of the
 * same values (two backends, a file and its re-export, a port and its reference) disagree.
 * Infinity when the lengths differ or a NaN appears, so that no tolerance ever accepts either.
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    if (Number.isNaN(diff)) return Infinity;
    if (diff > worst) worst = diff;
  }
  return worst;
}
