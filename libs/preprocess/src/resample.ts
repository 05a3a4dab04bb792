import type { Interpolation } from './input-spec';

/**
 * A port of Pillow's `Image.resize` for 8-bit images (libImaging/Resample.c for bicubic and
 * bilinear, Geometry.c `ImagingScaleAffine` for nearest), integer arithmetic included, so that the
 * output is bit-identical to what timm's eval transform gets from PIL. sharp's kernels were measured
 * and rejected: libvips shrinks by box filtering before its cubic/linear pass and rounds differently,
 * which leaves visible differences (numbers in test/pillow-agreement.spec.ts and the README).
 *
 * The port adds one thing PIL does not have: a window. Only the output rows and columns inside
 * the centre crop are computed. Each output pixel depends only on its own coefficients, so the
 * cropped result equals PIL's resize followed by crop, for a fraction of the work. Which pass
 * runs first, and so where the intermediate uint8 rounding happens, follows Pillow 13
 * (`verticalPassFirst`).
 */

/** Pillow's fixed-point precision for 8-bit resampling: 32 bits − 8 for the sample − 2 headroom. */
const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Keys' cubic convolution with a = −0.5, written as Pillow writes it (operation order matters for bit-exactness). */
function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function bilinearFilter(x: number): number {
  if (x < 0) x = -x;
  if (x < 1) return 1 - x;
  return 0;
}

const FILTERS = {
  bicubic: { fn: bicubicFilter, support: 2 },
  bilinear: { fn: bilinearFilter, support: 1 },
} as const;

/** Fixed-point taps for output indices [from, to) of one axis. */
interface AxisTaps {
  /** Per output index: first input index, number of taps. */
  starts: Int32Array;
  counts: Int32Array;
  /** `ksize` slots per output index, fixed-point with PRECISION_BITS. */
  weights: Int32Array;
  ksize: number;
}

/** Pillow `precompute_coeffs` + `normalize_coeffs_8bpc`, restricted to a window of outputs. */
function axisTaps(
  inSize: number,
  outSize: number,
  filter: (typeof FILTERS)[keyof typeof FILTERS],
  from: number,
  to: number,
): AxisTaps {
  const scale = inSize / outSize;
  // Downscaling widens the kernel (antialiasing); upscaling keeps it at its natural support.
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const n = to - from;
  const starts = new Int32Array(n);
  const counts = new Int32Array(n);
  const weights = new Int32Array(n * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let i = 0; i < n; i++) {
    const xx = from + i;
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero; Math.trunc reproduces it, negatives included.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      weights[i * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    starts[i] = xmin;
    counts[i] = xmax;
  }
  return { starts, counts, weights, ksize };
}

/** Pillow's clip8: drop the fraction bits, clamp to a byte. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** An interleaved 8-bit raster (HWC); `channels` is 1 or 3. */
export interface Raster {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** The part of the resized image to produce: columns [left, left + width), rows [top, top + height). */
export interface Window {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Pillow's choice of which pass runs first (libImaging/Resample.c `ImagingResampleInner`, Pillow
 * 13, python-pillow/Pillow#9549): the vertical pass goes first when the height shrinks, and by more
 * than twice as many pixels as the width shrinks; otherwise (and in every Pillow before 13) the
 * horizontal pass goes first. Sizes are the whole image's, not the crop's. The order matters
 * because each pass rounds (and clips) to uint8: the two orders differ on 15–30 % of the values
 * of such a resize, bilinear by one level, bicubic (whose overshoot is clipped) by up to ~20.
 */
export function verticalPassFirst(
  inWidth: number,
  inHeight: number,
  outWidth: number,
  outHeight: number,
): boolean {
  const shrinkY = inHeight - outHeight;
  return shrinkY > 0 && shrinkY > 2 * (inWidth - outWidth);
}

/** The source indices [first, end) that the taps of a window read. */
function tapSpan(taps: AxisTaps): [number, number] {
  if (taps.starts.length === 0) return [0, 0];
  let first = Infinity;
  let end = 0;
  for (let i = 0; i < taps.starts.length; i++) {
    first = Math.min(first, taps.starts[i]);
    end = Math.max(end, taps.starts[i] + taps.counts[i]);
  }
  return [first, end];
}

/**
 * Resizes `src` to outWidth × outHeight as PIL's `Image.resize(size, filter)` does and returns the
 * window of the result (HWC, same channel count).
 */
export function resizeWindow(
  src: Raster,
  outWidth: number,
  outHeight: number,
  interpolation: Interpolation,
  win: Window,
): Uint8Array {
  if (outWidth === src.width && outHeight === src.height) {
    // PIL returns a copy when the size does not change; only the crop is left to do.
    return cropRaster(src, win);
  }
  // NEAREST is a single affine pass in PIL (Geometry.c), so it has no pass order.
  if (interpolation === 'nearest') return nearestWindow(src, outWidth, outHeight, win);
  const filter = FILTERS[interpolation];
  const c = src.channels;

  // Like PIL, skip the pass of an axis that keeps its size (at scale 1 both kernels are the
  // identity, so this only saves work).
  const needHorizontal = outWidth !== src.width;
  const needVertical = outHeight !== src.height;
  const horizontalTaps = () => axisTaps(src.width, outWidth, filter, win.left, win.left + win.width);
  const verticalTaps = () => axisTaps(src.height, outHeight, filter, win.top, win.top + win.height);
  if (!needVertical) {
    return horizontalPass(src, horizontalTaps(), 0, win.top, win.top + win.height, win.width);
  }
  if (!needHorizontal) return verticalPass(src, verticalTaps(), 0, win.left, win.width, win.height);
  const h = horizontalTaps();
  const v = verticalTaps();

  if (verticalPassFirst(src.width, src.height, outWidth, outHeight)) {
    // Vertical pass over only the source columns the horizontal taps read, then horizontal.
    const [firstCol, endCol] = tapSpan(h);
    const cols: Raster = {
      data: verticalPass(src, v, 0, firstCol, endCol - firstCol, win.height),
      width: endCol - firstCol,
      height: win.height,
      channels: c,
    };
    return horizontalPass(cols, h, firstCol, 0, win.height, win.width);
  }
  // Horizontal pass over only the source rows the vertical taps read, then vertical.
  const [firstRow, endRow] = tapSpan(v);
  const rows: Raster = {
    data: horizontalPass(src, h, 0, firstRow, endRow, win.width),
    width: win.width,
    height: endRow - firstRow,
    channels: c,
  };
  return verticalPass(rows, v, firstRow, 0, win.width, win.height);
}

/**
 * Horizontal pass over rows [firstRow, endRow) of `src` (whose column 0 is source column
 * `colOffset`), producing `outWidth` columns.
 */
function horizontalPass(
  src: Raster,
  taps: AxisTaps,
  colOffset: number,
  firstRow: number,
  endRow: number,
  outWidth: number,
): Uint8Array {
  const { data, width, channels: c } = src;
  const { starts, counts, weights, ksize } = taps;
  const out = new Uint8Array((endRow - firstRow) * outWidth * c);
  let o = 0;
  for (let y = firstRow; y < endRow; y++) {
    const rowBase = y * width * c;
    for (let xx = 0; xx < outWidth; xx++) {
      const kBase = xx * ksize;
      const n = counts[xx];
      let p = rowBase + (starts[xx] - colOffset) * c;
      // `| 0` keeps V8 on int32 arithmetic, which is what Pillow computes in: its precision bits
      // are chosen so that these sums cannot overflow 32 bits.
      if (c === 3) {
        let s0 = HALF;
        let s1 = HALF;
        let s2 = HALF;
        for (let x = 0; x < n; x++, p += 3) {
          const w = weights[kBase + x];
          s0 = (s0 + data[p] * w) | 0;
          s1 = (s1 + data[p + 1] * w) | 0;
          s2 = (s2 + data[p + 2] * w) | 0;
        }
        out[o++] = clip8(s0);
        out[o++] = clip8(s1);
        out[o++] = clip8(s2);
      } else {
        let s0 = HALF;
        for (let x = 0; x < n; x++, p++) s0 = (s0 + data[p] * weights[kBase + x]) | 0;
        out[o++] = clip8(s0);
      }
    }
  }
  return out;
}

/** Vertical pass over `rows` (whose row 0 is source row `rowOffset`), reading columns [left, left + outWidth). */
function verticalPass(
  rows: Raster,
  taps: AxisTaps,
  rowOffset: number,
  left: number,
  outWidth: number,
  outHeight: number,
): Uint8Array {
  const { data, width, channels: c } = rows;
  const { starts, counts, weights, ksize } = taps;
  const stride = width * c;
  const out = new Uint8Array(outHeight * outWidth * c);
  const rowLen = outWidth * c;
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outHeight; yy++) {
    const kBase = yy * ksize;
    const start = starts[yy] - rowOffset;
    const n = counts[yy];
    acc.fill(HALF);
    // Row-major accumulation touches memory sequentially; integer addition is associative, so
    // the order of additions cannot change the result.
    for (let y = 0; y < n; y++) {
      const w = weights[kBase + y];
      const base = (start + y) * stride + left * c;
      for (let i = 0; i < rowLen; i++) acc[i] = (acc[i] + data[base + i] * w) | 0;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * Pillow's NEAREST resize: an affine scale whose source coordinate is accumulated by repeated
 * addition (not multiplied), so rounding drift is reproduced too.
 */
function nearestWindow(src: Raster, outWidth: number, outHeight: number, win: Window): Uint8Array {
  const xs = nearestTable(src.width, outWidth);
  const ys = nearestTable(src.height, outHeight);
  const c = src.channels;
  const out = new Uint8Array(win.width * win.height * c);
  let o = 0;
  for (let y = win.top; y < win.top + win.height; y++) {
    const rowBase = ys[y] * src.width * c;
    for (let x = win.left; x < win.left + win.width; x++) {
      const p = rowBase + xs[x] * c;
      for (let ch = 0; ch < c; ch++) out[o++] = src.data[p + ch];
    }
  }
  return out;
}

function nearestTable(inSize: number, outSize: number): Int32Array {
  const a = inSize / outSize;
  const table = new Int32Array(outSize);
  let pos = a * 0.5;
  for (let i = 0; i < outSize; i++) {
    // PIL leaves pixels whose coordinate falls outside the source unwritten; with a pure scale
    // that cannot happen, but clamping keeps a drifted last index in bounds.
    table[i] = Math.min(inSize - 1, Math.max(0, Math.trunc(pos)));
    pos += a;
  }
  return table;
}

export function cropRaster(src: Raster, win: Window): Uint8Array {
  const c = src.channels;
  if (win.left === 0 && win.top === 0 && win.width === src.width && win.height === src.height) {
    return src.data;
  }
  const out = new Uint8Array(win.width * win.height * c);
  const rowLen = win.width * c;
  for (let y = 0; y < win.height; y++) {
    const from = ((win.top + y) * src.width + win.left) * c;
    out.set(src.data.subarray(from, from + rowLen), y * rowLen);
  }
  return out;
}
