import { describe, expect, it } from 'vitest';
import { buildFineTuneJob } from './job-spec';
import { submitFineTuneJob, type BatchApi } from './submit';

const job = buildFineTuneJob({
  jobId: 'job-1',
  namespace: 'deit-serve',
  image: 'deit-serve/trainer:0.1.0',
  command: ['node', 'finetune.js'],
  registryClaimName: 'deit-registry',
});

function fakeApi(fail?: Error): BatchApi & { calls: unknown[] } {
  const calls: unknown[] = [];
  return {
    calls,
    createNamespacedJob(request) {
      calls.push(request);
      return fail === undefined ? Promise.resolve(request.body) : Promise.reject(fail);
    },
  };
}

describe('submitFineTuneJob', () => {
  it('creates the Job in its namespace, asking the server to reject unknown fields', async () => {
    const api = fakeApi();
    await expect(submitFineTuneJob(api, job)).resolves.toEqual({
      name: 'deit-finetune-job-1',
      namespace: 'deit-serve',
      created: true,
    });
    expect(api.calls).toEqual([
      { namespace: 'deit-serve', body: job, fieldManager: 'deit-trainer', fieldValidation: 'Strict' },
    ]);
  });

  it.each([
    ['ApiException (client-node 1.x)', { code: 409, body: '{"reason":"AlreadyExists"}' }],
    ['HttpError (client-node 0.x)', { statusCode: 409 }],
    ['a response status', { response: { statusCode: 409 } }],
  ] as const)('treats a conflict as submitted before: %s', async (_what, fields) => {
    const error = Object.assign(new Error('jobs.batch "deit-finetune-job-1" already exists'), fields);
    await expect(submitFineTuneJob(fakeApi(error), job)).resolves.toMatchObject({ created: false });
  });

  it('throws every other error', async () => {
    const forbidden = Object.assign(new Error('jobs.batch is forbidden'), { code: 403 });
    await expect(submitFineTuneJob(fakeApi(forbidden), job)).rejects.toBe(forbidden);
    const network = new Error('ECONNREFUSED');
    await expect(submitFineTuneJob(fakeApi(network), job)).rejects.toBe(network);
  });
});
