import { describe, expect, it } from 'vitest';
import { buildFineTuneJob } from './job-spec';
import {
  deleteFineTuneJob,
  FINETUNE_JOB_SELECTOR,
  listFineTuneJobs,
  submitFineTuneJob,
  type BatchApi,
  type BatchJobsApi,
} from './submit';

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

describe('listFineTuneJobs and deleteFineTuneJob', () => {
  function jobsApi(deleteError?: Error): BatchJobsApi & { calls: unknown[] } {
    const calls: unknown[] = [];
    return {
      calls,
      createNamespacedJob: () => Promise.reject(new Error('not used')),
      listNamespacedJob(request) {
        calls.push(['list', request]);
        return Promise.resolve({
          items: [{ metadata: { name: 'deit-finetune-a' }, status: { active: 1 } }, { metadata: {} }],
        });
      },
      deleteNamespacedJob(request) {
        calls.push(['delete', request]);
        return deleteError === undefined ? Promise.resolve({}) : Promise.reject(deleteError);
      },
    };
  }

  it('lists only the fine-tune Jobs, by name', async () => {
    const api = jobsApi();
    const jobs = await listFineTuneJobs(api, 'deit-serve');
    expect([...jobs.keys()]).toEqual(['deit-finetune-a']);
    expect(api.calls).toEqual([['list', { namespace: 'deit-serve', labelSelector: FINETUNE_JOB_SELECTOR }]]);
    // The selector matches what the builder puts on every Job.
    for (const pair of FINETUNE_JOB_SELECTOR.split(',')) {
      const [key = '', value] = pair.split('=');
      expect(job.metadata.labels[key]).toBe(value);
    }
  });

  it('deletes with background propagation (the pods go too), and a missing Job is no error', async () => {
    const api = jobsApi();
    await expect(deleteFineTuneJob(api, 'deit-finetune-a', 'deit-serve')).resolves.toBe(true);
    expect(api.calls).toEqual([
      ['delete', { name: 'deit-finetune-a', namespace: 'deit-serve', propagationPolicy: 'Background' }],
    ]);
    const gone = Object.assign(new Error('not found'), { code: 404 });
    await expect(deleteFineTuneJob(jobsApi(gone), 'x', 'deit-serve')).resolves.toBe(false);
    const forbidden = Object.assign(new Error('forbidden'), { code: 403 });
    await expect(deleteFineTuneJob(jobsApi(forbidden), 'x', 'deit-serve')).rejects.toBe(forbidden);
  });
});
