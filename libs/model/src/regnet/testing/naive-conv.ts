/**
 * Plain-JavaScript reference for the grouped 3×3 conv (padding 1, PyTorch output arithmetic) and its
 * gradients, written as the definition: loops over every tap, no tfjs. NHWC activations, weights
 * [3, 3, C/groups, Cout].
 */
export interface NaiveTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array | number[];
}

interface ConvGeometry {
  B: number;
  H: number;
  W: number;
  C: number;
  Ho: number;
  Wo: number;
  Cout: number;
  gIn: number;
  gOut: number;
}

function geometry(x: NaiveTensor, w: NaiveTensor, stride: number, groups: number): ConvGeometry {
  const [B, H, W, C] = x.shape;
  const Cout = w.shape[3];
  return {
    B,
    H,
    W,
    C,
    Ho: Math.floor((H - 1) / stride) + 1,
    Wo: Math.floor((W - 1) / stride) + 1,
    Cout,
    gIn: C / groups,
    gOut: Cout / groups,
  };
}

/** Calls visit(xIndex, wIndex, yIndex) for every multiply of the convolution. */
function forEachTap(
  g: ConvGeometry,
  stride: number,
  visit: (xi: number, wi: number, yi: number) => void,
): void {
  const { B, H, W, C, Ho, Wo, Cout, gIn, gOut } = g;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Ho; i++)
      for (let j = 0; j < Wo; j++)
        for (let o = 0; o < Cout; o++) {
          const group = Math.floor(o / gOut);
          const yi = ((b * Ho + i) * Wo + j) * Cout + o;
          for (let kh = 0; kh < 3; kh++) {
            const h = stride * i + kh - 1;
            if (h < 0 || h >= H) continue;
            for (let kw = 0; kw < 3; kw++) {
              const col = stride * j + kw - 1;
              if (col < 0 || col >= W) continue;
              for (let c = 0; c < gIn; c++) {
                const xi = ((b * H + h) * W + col) * C + group * gIn + c;
                const wi = ((kh * 3 + kw) * gIn + c) * Cout + o;
                visit(xi, wi, yi);
              }
            }
          }
        }
}

export function naiveConv3x3(x: NaiveTensor, w: NaiveTensor, stride: number, groups: number): NaiveTensor {
  const g = geometry(x, w, stride, groups);
  const y = new Float64Array(g.B * g.Ho * g.Wo * g.Cout);
  forEachTap(g, stride, (xi, wi, yi) => {
    y[yi] += x.data[xi] * w.data[wi];
  });
  return { shape: [g.B, g.Ho, g.Wo, g.Cout], data: Float32Array.from(y) };
}

/** Gradients of Σ dy · conv(x, w) with respect to x and w. */
export function naiveConv3x3Grads(
  x: NaiveTensor,
  w: NaiveTensor,
  dy: NaiveTensor,
  stride: number,
  groups: number,
): { dx: NaiveTensor; dw: NaiveTensor } {
  const g = geometry(x, w, stride, groups);
  const dx = new Float64Array(x.data.length);
  const dw = new Float64Array(w.data.length);
  forEachTap(g, stride, (xi, wi, yi) => {
    dx[xi] += dy.data[yi] * w.data[wi];
    dw[wi] += dy.data[yi] * x.data[xi];
  });
  return {
    dx: { shape: x.shape, data: Float32Array.from(dx) },
    dw: { shape: w.shape, data: Float32Array.from(dw) },
  };
}
