import { describe, expect, it } from 'vitest';
import { fineTuneJobPhase, type JobView } from './status';

const withStatus = (status: JobView['status']): JobView => ({ metadata: { name: 'j' }, status });

describe('fineTuneJobPhase', () => {
  it('is pending before a pod runs, and between retries', () => {
    expect(fineTuneJobPhase({})).toEqual({ phase: 'pending', failedPods: 0 });
    expect(fineTuneJobPhase(withStatus({ failed: 1, active: 0 }))).toEqual({
      phase: 'pending',
      failedPods: 1,
    });
  });

  it('is running while a pod is active, counting the failed ones before it', () => {
    expect(fineTuneJobPhase(withStatus({ active: 1, ready: 1, failed: 2 }))).toEqual({
      phase: 'running',
      failedPods: 2,
    });
  });

  it('succeeds on Complete only', () => {
    expect(
      fineTuneJobPhase(
        withStatus({
          succeeded: 1,
          conditions: [
            { type: 'SuccessCriteriaMet', status: 'True' },
            { type: 'Complete', status: 'True' },
          ],
        }),
      ),
    ).toEqual({ phase: 'succeeded' });
    // SuccessCriteriaMet alone: pods may still be terminating.
    expect(
      fineTuneJobPhase(
        withStatus({ active: 1, conditions: [{ type: 'SuccessCriteriaMet', status: 'True' }] }),
      ),
    ).toMatchObject({ phase: 'running' });
  });

  it("fails on Failed, with the Job controller's reason and message", () => {
    expect(
      fineTuneJobPhase(
        withStatus({
          failed: 3,
          conditions: [
            { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded' },
            {
              type: 'Failed',
              status: 'True',
              reason: 'BackoffLimitExceeded',
              message: 'Job has reached the specified backoff limit',
            },
          ],
        }),
      ),
    ).toEqual({
      phase: 'failed',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
      failedPods: 3,
    });
    // FailureTarget alone: the last pod may still be writing; wait for Failed.
    expect(
      fineTuneJobPhase(
        withStatus({
          active: 1,
          conditions: [{ type: 'FailureTarget', status: 'True', reason: 'PodFailurePolicy' }],
        }),
      ),
    ).toMatchObject({ phase: 'running' });
  });

  it('ignores conditions that are not True', () => {
    expect(
      fineTuneJobPhase(withStatus({ active: 1, conditions: [{ type: 'Failed', status: 'False' }] })),
    ).toEqual({ phase: 'running', failedPods: 0 });
  });
});
