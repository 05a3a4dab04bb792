import { PixelBudget } from './pixel-budget';

/** What decodeImage needs to wait for its turn: room for `pixels`, released when the raster is out. */
export interface DecodeGate {
  acquire(pixels: number, signal?: AbortSignal): Promise<() => void>;
}

export interface DecodeAdmissionOptions {
  /** Pixels that large images may hold decoding at once (the memory bound). */
  readonly capacity: number;
  /** An image of at most this many pixels is small: it takes the small lane. Default 1 MP. */
  readonly smallPixels?: number;
  /** Small images decoding at once. Default 4. */
  readonly smallSlots?: number;
  /**
   * Large images decoding at once. Default: the libuv thread pool's size (`UV_THREADPOOL_SIZE`,
   * 4) less one, so that a thread stays free for small images.
   */
  readonly largeSlots?: number;
}

export type DecodeLane = 'small' | 'large';

/**
 * Admission to the decoder in two lanes, so that a small image never queues behind large ones: a
 * 28×28 request arriving while several 40 MP photos decode is decoded at once instead of after them.
 * Large images share a pixel budget (first come, first served) and at most `largeSlots` of the
 * decoder's threads; small images have their own slots. Memory stays bounded by
 * `capacity + smallSlots × smallPixels` pixels.
 */
export class DecodeAdmission implements DecodeGate {
  readonly smallPixels: number;
  private readonly lanes: Record<DecodeLane, PixelBudget>;

  constructor(options: DecodeAdmissionOptions) {
    this.smallPixels = options.smallPixels ?? 1_000_000;
    const smallSlots = options.smallSlots ?? 4;
    const largeSlots = options.largeSlots ?? Math.max(1, threadPoolSize() - 1);
    this.lanes = {
      small: new PixelBudget(Math.max(1, smallSlots * this.smallPixels), smallSlots),
      large: new PixelBudget(options.capacity, largeSlots),
    };
  }

  laneOf(pixels: number): DecodeLane {
    return pixels <= this.smallPixels ? 'small' : 'large';
  }

  acquire(pixels: number, signal?: AbortSignal): Promise<() => void> {
    return this.lanes[this.laneOf(pixels)].acquire(pixels, signal);
  }

  /** Decodes waiting in a lane. */
  queued(lane: DecodeLane): number {
    return this.lanes[lane].queued;
  }

  /** Decodes running in a lane. */
  active(lane: DecodeLane): number {
    return this.lanes[lane].active;
  }
}

function threadPoolSize(): number {
  const configured = Number.parseInt(process.env['UV_THREADPOOL_SIZE'] ?? '', 10);
  return Number.isSafeInteger(configured) && configured > 0 ? configured : 4;
}
