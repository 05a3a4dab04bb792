import { FailedPreconditionError } from '@deit-serve/core';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_API_VERBS, connectBatchApi } from './client';
import { buildFineTuneJob } from './job-spec';
import { FINETUNE_JOB_SELECTOR } from './submit';

const REGISTER_TS = join(__dirname, '..', '..', '..', 'tools', 'test-support', 'register-ts.cjs');
const CHILD_TIMEOUT_MS = 30_000;

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization?: string;
  body?: unknown;
}

/** Just enough of kube-apiserver's batch/v1 Jobs: create (409 on a name it has), list, delete (404). */
function fakeApiServer(): { server: Server; requests: Recorded[] } {
  const requests: Recorded[] = [];
  const jobs = new Map<string, { metadata: { name: string } }>();
  const status = (code: number, reason: string) => ({
    kind: 'Status',
    apiVersion: 'v1',
    status: code < 300 ? 'Success' : 'Failure',
    reason,
    code,
  });
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const body: unknown = text ? JSON.parse(text) : undefined;
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        ...(req.headers.authorization !== undefined && { authorization: req.headers.authorization }),
        ...(body !== undefined && { body }),
      });
      const reply = (code: number, payload: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      const collection = '/apis/batch/v1/namespaces/ns/jobs';
      if (req.method === 'POST' && url.pathname === collection) {
        const job = body as { metadata: { name: string } };
        if (job.metadata.name === 'forbidden') return reply(403, status(403, 'Forbidden'));
        if (jobs.has(job.metadata.name)) return reply(409, status(409, 'AlreadyExists'));
        jobs.set(job.metadata.name, job);
        return reply(201, job);
      }
      if (req.method === 'GET' && url.pathname === collection) {
        const items = [...jobs.values()].map((j) => ({ ...j, status: { active: 1, ready: 1 } }));
        return reply(200, { kind: 'JobList', apiVersion: 'batch/v1', metadata: {}, items });
      }
      const name = url.pathname.startsWith(`${collection}/`) ? url.pathname.slice(collection.length + 1) : '';
      if (req.method === 'DELETE' && name) {
        if (!jobs.delete(name)) return reply(404, status(404, 'NotFound'));
        return reply(200, status(200, 'Deleted'));
      }
      reply(404, status(404, 'NotFound'));
    });
  });
  return { server, requests };
}

describe(
  'connectBatchApi: the real @kubernetes/client-node, imported natively from CommonJS',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'k8s-client-'));
    const { server, requests } = fakeApiServer();
    let kubeconfig: string;

    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      kubeconfig = join(dir, 'kubeconfig.json');
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          // client-node refuses plain HTTP unless TLS verification is off: a test server only.
          clusters: [
            {
              name: 'fake',
              cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true },
            },
          ],
          users: [{ name: 'trainer', user: { token: 'test-token' } }],
          contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'trainer', namespace: 'ns' } }],
          'current-context': 'fake',
        }),
      );
    });

    afterAll(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('creates (idempotently), lists and deletes Jobs with the requests the Role allows', async () => {
      const child = spawn(
        process.execPath,
        ['-r', REGISTER_TS, join(__dirname, '..', 'test', 'fixtures', 'client-main.ts')],
        { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code, stderr).toBe(0);
      const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');

      expect(out).toEqual({
        first: { name: 'deit-finetune-job-1', namespace: 'ns', created: true },
        second: { name: 'deit-finetune-job-1', namespace: 'ns', created: false },
        phases: [['deit-finetune-job-1', { phase: 'running', failedPods: 0 }]],
        deleted: true,
        again: false,
        forbidden: 403,
      });
      const job = buildFineTuneJob({
        jobId: 'job-1',
        namespace: 'ns',
        image: 'deit-serve/trainer:0.1.0',
        registryClaimName: 'deit-registry',
      });
      expect(requests.map((r) => [r.method, r.path])).toEqual([
        ['POST', '/apis/batch/v1/namespaces/ns/jobs'],
        ['POST', '/apis/batch/v1/namespaces/ns/jobs'],
        ['GET', '/apis/batch/v1/namespaces/ns/jobs'],
        ['DELETE', '/apis/batch/v1/namespaces/ns/jobs/deit-finetune-job-1'],
        ['DELETE', '/apis/batch/v1/namespaces/ns/jobs/deit-finetune-job-1'],
        ['POST', '/apis/batch/v1/namespaces/ns/jobs'],
      ]);
      for (const r of requests) expect(r.authorization).toBe('Bearer test-token');
      // The Job arrives exactly as built, with strict field validation.
      expect(requests[0]?.body).toEqual(job);
      expect(requests[0]?.query).toEqual({ fieldManager: 'deit-trainer', fieldValidation: 'Strict' });
      expect(requests[2]?.query).toEqual({ labelSelector: FINETUNE_JOB_SELECTOR });
      expect(requests[3]?.query).toEqual({ propagationPolicy: 'Background' });
    });

    it('refuses to guess an API server when there is no kubeconfig and no ServiceAccount', async () => {
      const home = process.env['HOME'];
      process.env['HOME'] = dir; // no .kube/config there
      try {
        await expect(connectBatchApi({ env: {} })).rejects.toBeInstanceOf(FailedPreconditionError);
      } finally {
        process.env['HOME'] = home;
      }
    });

    it('maps every API method to the one verb it needs', () => {
      expect(Object.values(BATCH_API_VERBS).sort()).toEqual(['create', 'delete', 'list']);
    });
  },
  CHILD_TIMEOUT_MS,
);
