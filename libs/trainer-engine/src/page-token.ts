/** ListJobs page tokens: opaque to callers, the `num` of the last job of the previous page. */
import { InvalidArgumentError } from '@deit-serve/core';

const PAGE_TOKEN_PREFIX = 'jobs:';

export function encodePageToken(num: number): string {
  return Buffer.from(`${PAGE_TOKEN_PREFIX}${num}`).toString('base64url');
}

export function decodePageToken(token: string): number {
  const text = Buffer.from(token, 'base64url').toString();
  const num = Number(text.slice(PAGE_TOKEN_PREFIX.length));
  if (!text.startsWith(PAGE_TOKEN_PREFIX) || !Number.isSafeInteger(num) || num < 1) {
    throw new InvalidArgumentError(`page_token ${JSON.stringify(token)} is invalid`);
  }
  return num;
}
