import { describe, expect, it } from 'vitest';
import { applyHeapGrowth } from './heap-growth';

describe('applyHeapGrowth', () => {
  it("sets V8's --heap-growing-percent, or leaves V8 alone for 0", () => {
    const set: string[] = [];
    applyHeapGrowth(300, (flags) => set.push(flags));
    applyHeapGrowth(0, (flags) => set.push(flags));
    expect(set).toEqual(['--heap-growing-percent=300']);
  });

  it('refuses a value V8 would misread', () => {
    expect(() => applyHeapGrowth(-1, () => undefined)).toThrow(RangeError);
    expect(() => applyHeapGrowth(2.5, () => undefined)).toThrow(/integer/);
  });
});
