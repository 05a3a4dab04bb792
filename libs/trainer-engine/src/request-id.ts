/** Idempotency of job creation by request_id: a reused key must ask for the same job. */
import { FailedPreconditionError } from '@deit-serve/core';

/**
 * A create whose request_id is taken must ask for the same job: same kind, same spec. Otherwise the
 * key was reused by mistake, and answering with the old job would hide that the new one never ran.
 */
export function assertSameRequest(
  existing: { readonly id: string; readonly kind: string; readonly spec: string; readonly requestId: string },
  request: { readonly kind: string; readonly spec: unknown },
): void {
  const { kind, spec } = request;
  const reused = `request_id ${JSON.stringify(existing.requestId)} was already used for job ${existing.id}`;
  const advice = 'send the same spec to get that job back, or use a new request_id for a new job';
  if (existing.kind !== kind) {
    throw new FailedPreconditionError(
      `${reused} with another kind (${JSON.stringify(existing.kind)}, not ${JSON.stringify(kind)}); ${advice}`,
    );
  }
  const before = JSON.parse(existing.spec) as unknown;
  const after = JSON.parse(JSON.stringify(spec)) as unknown;
  if (JSON.stringify(before) === JSON.stringify(after)) return;
  const fields = differingFields(before, after);
  throw new FailedPreconditionError(
    `${reused} with another spec${fields.length > 0 ? ` (differs in: ${fields.join(', ')})` : ''}; ${advice}`,
  );
}

/** Top-level fields whose values differ between two JSON objects, sorted. */
function differingFields(a: unknown, b: unknown): string[] {
  const record = (v: unknown): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const [ra, rb] = [record(a), record(b)];
  return [...new Set([...Object.keys(ra), ...Object.keys(rb)])]
    .filter((key) => JSON.stringify(ra[key]) !== JSON.stringify(rb[key]))
    .sort();
}
