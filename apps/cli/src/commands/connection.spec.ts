import 'reflect-metadata';
import { Controller } from '@nestjs/common';
import { methodRoles, securityOptions } from '@deit-serve/grpc-server';
import { inferenceV1, inferenceV1Client, PROTO_PACKAGES, trainerV1Client } from '@deit-serve/proto';
import {
  createTestPki,
  startTestService,
  type TestPki,
  type TestService,
  writeTokensFile,
} from '@deit-serve/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPTY, type Observable } from 'rxjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../cli';
import { ConnectionError, connectionOf } from './connection';
import { fakeTrainerModule, io, job, trainer } from './fake-trainer.testing';

/**
 * The connection flags of `deit classify`, `deit finetune` and `deit jobs` against services with
 * bearer-token authentication and mutual TLS (the servers' own security options, test PKI).
 */
const TOKENS = [
  { name: 'web', token: 'web-0123456789', roles: ['classify' as const] },
  { name: 'ci', token: 'ci-0123456789', roles: ['train' as const] },
];

@Controller()
@inferenceV1.InferenceServiceControllerMethods()
class TinyInferenceController implements inferenceV1.InferenceServiceController {
  classify(): inferenceV1.ClassifyResponse {
    return {
      model: { name: 'tiny', version: 1, sha256: 'ab'.repeat(32), alias: '' },
      head: inferenceV1.Head.HEAD_AVERAGE,
      predictions: [{ index: 0, label: 'cat', probability: 0.9, logit: 2 }],
      disagreement: undefined,
      timing: undefined,
    };
  }
  classifyStream(): Observable<inferenceV1.ClassifyStreamResponse> {
    return EMPTY;
  }
  listModels(): inferenceV1.ListModelsResponse {
    return { models: [] };
  }
  getModel(): inferenceV1.GetModelResponse {
    throw new Error('not served by the fake');
  }
}

let pki: TestPki;
let tokensFile: string;
let image: string;

beforeAll(() => {
  pki = createTestPki();
  tokensFile = writeTokensFile(pki.dir, TOKENS);
  image = join(pki.dir, 'cat.png');
  writeFileSync(image, 'pretend-png');
});

describe('connectionOf', () => {
  it('is plain text without a token unless asked', () => {
    const c = connectionOf({}, {});
    expect(c.tls).toBe(false);
    expect(c.options).toEqual({});
  });

  it('turns TLS on for --tls, DEIT_TLS, a CA, a client certificate or a server name', () => {
    expect(connectionOf({ tls: true }, {}).tls).toBe(true);
    expect(connectionOf({}, { DEIT_TLS: 'true' }).tls).toBe(true);
    expect(connectionOf({}, { DEIT_TLS: '0' }).tls).toBe(false);
    expect(connectionOf({ ca: pki.ca.cert }, {}).tls).toBe(true);
    expect(
      connectionOf({}, { DEIT_CLIENT_CERT_FILE: pki.client.cert, DEIT_CLIENT_KEY_FILE: pki.client.key }).tls,
    ).toBe(true);
    const named = connectionOf({ 'tls-server-name': 'deit.example' }, {});
    expect(named.options['grpc.ssl_target_name_override']).toBe('deit.example');
  });

  it('refuses half a client certificate, an unreadable file and a token that cannot be a header', () => {
    expect(() => connectionOf({ cert: pki.client.cert }, {})).toThrow(
      new ConnectionError('--cert and --key go together (a client certificate and its private key)'),
    );
    expect(() => connectionOf({ ca: join(pki.dir, 'nope.pem') }, {})).toThrow(
      /^cannot read --ca .*nope\.pem: no such file$/,
    );
    let message = '';
    try {
      connectionOf({ token: 'has space' }, {});
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe('the token must be printable ASCII without spaces (check --token or DEIT_TOKEN)');
  });
});

describe('deit jobs / finetune against a trainer with tokens and mutual TLS', () => {
  let service: TestService;
  let tls: string[];

  beforeAll(async () => {
    service = await startTestService(fakeTrainerModule, {
      protoFiles: ['trainer'],
      packages: [PROTO_PACKAGES.trainer],
      ...securityOptions(
        {
          authTokensFile: tokensFile,
          tlsCertFile: pki.server.cert,
          tlsKeyFile: pki.server.key,
          tlsClientCaFile: pki.ca.cert,
          healthPort: 0,
        },
        methodRoles(trainerV1Client.TrainerServiceService, {
          startFineTune: 'train',
          getJob: 'train',
          listJobs: 'train',
          watchJob: 'train',
          cancelJob: 'train',
        }),
      ),
    });
    tls = [
      '--ca',
      pki.ca.cert,
      '--cert',
      pki.client.cert,
      '--key',
      pki.client.key,
      '--addr',
      service.address,
    ];
  });
  afterAll(() => service?.close());
  beforeEach(() => {
    trainer.reset();
    trainer.jobs.set('job-a', job({ id: 'job-a' }));
  });

  it('lists jobs with --token and a client certificate', async () => {
    const t = io();
    expect(await runCli(['jobs', 'list', ...tls, '--token', 'ci-0123456789'], t.io)).toBe(0);
    expect(t.out()).toMatch(/^job-a\s+queued/m);
  });

  it('takes the token and the TLS files from the environment', async () => {
    const t = io({
      DEIT_TOKEN: 'ci-0123456789',
      DEIT_CA_FILE: pki.ca.cert,
      DEIT_CLIENT_CERT_FILE: pki.client.cert,
      DEIT_CLIENT_KEY_FILE: pki.client.key,
      DEIT_TRAINER_ADDR: service.address,
    });
    expect(await runCli(['jobs', 'show', 'job-a'], t.io)).toBe(0);
    expect(t.out()).toMatch(/^id:\s+job-a$/m);
  });

  it('starts a fine-tune with the token', async () => {
    const t = io({ DEIT_TOKEN: 'ci-0123456789' });
    const code = await runCli(
      ['finetune', '--output', 'pico', '--student-preset', 'deit_pico', ...tls],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    expect(trainer.started).toHaveLength(1);
  });

  it('reports a missing token and a token without the role, exit 1, without echoing the token', async () => {
    const none = io();
    expect(await runCli(['jobs', 'list', ...tls], none.io)).toBe(1);
    expect(none.err()).toBe(
      'deit jobs: UNAUTHENTICATED: no credentials: send the metadata "authorization: Bearer <token>" ' +
        '(deit CLI: --token or DEIT_TOKEN); a value with leading or trailing whitespace is malformed in ' +
        'HTTP/2 and dropped before it reaches the service\n',
    );
    const web = io({ DEIT_TOKEN: 'web-0123456789' });
    expect(await runCli(['jobs', 'cancel', 'job-a', ...tls], web.io)).toBe(1);
    const err = web.err();
    expect(err).toMatch(
      /^deit jobs: PERMISSION_DENIED: token "web" may not call .*CancelJob: that needs role "train"/,
    );
    expect(err).not.toContain('web-0123456789');
    expect(trainer.jobs.get('job-a')?.state).toBe(job({ id: 'job-a' }).state);
  });

  it('cannot connect without a client certificate, and says what to check', async () => {
    const t = io({ DEIT_TOKEN: 'ci-0123456789' });
    expect(await runCli(['jobs', 'list', '--ca', pki.ca.cert, '--addr', service.address], t.io)).toBe(1);
    expect(t.err()).toMatch(
      /^deit jobs: UNAVAILABLE: cannot reach the trainer at [^]+certificate required[^]+; is it running\? \(It must serve TLS with a certificate --ca trusts\.\)/,
    );
  });
});

describe('deit classify against an inference service with tokens and TLS', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService(
      () => ({ module: class TinyInferenceModule {}, controllers: [TinyInferenceController] }),
      {
        protoFiles: ['inference'],
        packages: [PROTO_PACKAGES.inference],
        ...securityOptions(
          {
            authTokensFile: tokensFile,
            tlsCertFile: pki.server.cert,
            tlsKeyFile: pki.server.key,
            tlsClientCaFile: '',
            healthPort: 0,
          },
          methodRoles(inferenceV1Client.InferenceServiceService, {
            classify: 'classify',
            classifyStream: 'classify',
            listModels: 'classify',
            getModel: 'classify',
          }),
        ),
      },
    );
  });
  afterAll(() => service?.close());

  it('classifies with --token and --ca', async () => {
    const t = io();
    const code = await runCli(
      [
        'classify',
        image,
        '--addr',
        service.address,
        '--ca',
        pki.ca.cert,
        '--token',
        'web-0123456789',
        '--json',
      ],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(t.out()) as { results: { model: { name: string } }[] };
    expect(out.results[0]?.model.name).toBe('tiny');
  });

  it('reports UNAUTHENTICATED per image without a token', async () => {
    const t = io();
    expect(await runCli(['classify', image, '--addr', service.address, '--ca', pki.ca.cert], t.io)).toBe(1);
    expect(t.err()).toMatch(/cat\.png: UNAUTHENTICATED: no credentials: send the metadata/);
  });

  it('hints at TLS when a plain-text client cannot reach the service', async () => {
    const t = io({ DEIT_TOKEN: 'web-0123456789' });
    expect(await runCli(['classify', image, '--addr', service.address], t.io)).toBe(1);
    expect(t.err()).toMatch(/is it running\? \(If it serves TLS: --tls or --ca FILE\.\) Set --addr/);
  });

  it('lists the connection flags in its help', async () => {
    const t = io();
    expect(await runCli(['classify', '--help'], t.io)).toBe(0);
    const help = t.out();
    for (const flag of ['--token T', '--tls', '--ca FILE', '--cert FILE --key FILE', '--tls-server-name N'])
      expect(help).toContain(flag);
  });
});
