import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTO_FILES, protoRoot } from './proto-files';

describe('protoRoot', () => {
  afterEach(() => {
    delete process.env['DEIT_PROTO_DIR'];
  });

  it('finds the proto sources above the module and every declared file exists', () => {
    for (const file of Object.values(PROTO_FILES)) expect(existsSync(join(protoRoot(), file))).toBe(true);
  });

  it('honours DEIT_PROTO_DIR', () => {
    process.env['DEIT_PROTO_DIR'] = '/opt/deit/proto';
    expect(protoRoot()).toBe('/opt/deit/proto');
  });
});
