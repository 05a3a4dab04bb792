import type { HostTensor } from '../weights/named-weights';
import { float32ToLittleEndianBytes } from '../weights/safetensors';
import {
  AttributeProto_AttributeType,
  TensorProto_DataType,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto/codec';

/** Attribute values by kind; the kind is explicit because `1` could be an INT or a FLOAT. */
export type AttributeValue =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly string: string }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly tensor: TensorProto };

export type Attributes = Readonly<Record<string, AttributeValue>>;

/** A dimension: a fixed size or a symbolic name (`dim_param`, e.g. "batch"). */
export type Dim = number | string;

export interface NodeOptions {
  /** Node name hint; made unique. Defaults to the op type. */
  readonly name?: string;
  /** Exact output names (claimed, so they must be fresh), or the number of outputs to auto-name. */
  readonly outputs?: readonly string[] | number;
  readonly domain?: string;
}

/**
 * Builds a GraphProto in topological order. Every value name (graph input, initializer, node
 * output) is claimed once; reusing one is an error, so exported files cannot shadow a weight.
 * Helper constants are `Constant` nodes rather than initializers, which keeps the initializer list
 * exactly the model's weights.
 */
export class OnnxGraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly valueNames = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private readonly constantCache = new Map<string, string>();

  constructor(readonly name: string) {}

  /** `hint` if unused as a node name, else `hint_1`, `hint_2`, … */
  uniqueNodeName(hint: string): string {
    return freshName(this.nodeNames, hint);
  }

  has(valueName: string): boolean {
    return this.valueNames.has(valueName);
  }

  addInput(name: string, elemType: number, shape: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** Declares an existing value (typically a node output named via `outputs`) as a graph output. */
  addOutput(name: string, elemType: number, shape: readonly Dim[]): void {
    if (!this.valueNames.has(name)) throw new Error(`graph output "${name}" is not produced by the graph`);
    if (this.outputs.some((o) => o.name === name)) throw new Error(`"${name}" is already a graph output`);
    this.outputs.push(valueInfo(name, elemType, shape));
  }

  /** Adds a float32 initializer under exactly `name` (raw_data, little-endian). */
  addInitializer(name: string, tensor: HostTensor): string {
    return this.addInitializerTensor({
      name,
      dims: [...tensor.shape],
      dataType: TensorProto_DataType.FLOAT,
      rawData: float32ToLittleEndianBytes(tensor.data),
    });
  }

  addInitializerTensor(tensor: TensorProto): string {
    if (tensor.name === undefined || tensor.name === '') throw new Error('an initializer needs a name');
    this.claim(tensor.name);
    this.initializers.push(tensor);
    return tensor.name;
  }

  /** Adds a node and returns its output names. */
  node(
    opType: string,
    inputs: readonly string[],
    attributes: Attributes = {},
    options: NodeOptions = {},
  ): string[] {
    for (const input of inputs) {
      if (input !== '' && !this.valueNames.has(input)) {
        throw new Error(`${opType} node: input "${input}" is not defined yet`);
      }
    }
    const nodeName = this.uniqueNodeName(options.name ?? opType);
    const spec = options.outputs ?? 1;
    const outputs =
      typeof spec === 'number'
        ? Array.from({ length: spec }, (_, i) =>
            freshName(this.valueNames, spec === 1 ? `${nodeName}/output` : `${nodeName}/output_${i}`),
          )
        : spec.map((o) => this.claim(o));
    this.nodes.push({
      input: [...inputs],
      output: outputs,
      name: nodeName,
      opType,
      domain: options.domain,
      attribute: Object.entries(attributes).map(([k, v]) => toAttribute(k, v)),
    });
    return outputs;
  }

  /** Single-output shorthand for {@link node}. */
  op(
    opType: string,
    inputs: readonly string[],
    attributes: Attributes = {},
    options: NodeOptions = {},
  ): string {
    const [out] = this.node(opType, inputs, attributes, { ...options, outputs: options.outputs ?? 1 });
    return out;
  }

  /** A `Constant` node holding int64 values; identical constants are shared. `dims` defaults to 1-D. */
  constInt64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    if (!values.every(Number.isSafeInteger))
      throw new Error(`int64 constant [${values.join(', ')}]: not all integers`);
    return this.cachedConstant(`i64:${dims.join('x')}:${values.join(',')}`, () => ({
      dims: [...dims],
      dataType: TensorProto_DataType.INT64,
      int64Data: [...values],
    }));
  }

  /** A `Constant` node holding float32 values; `dims` defaults to a scalar for one value. */
  constFloat(
    values: readonly number[],
    dims: readonly number[] = values.length === 1 ? [] : [values.length],
  ): string {
    const data = Float32Array.from(values);
    return this.cachedConstant(`f32:${dims.join('x')}:${Array.from(data).join(',')}`, () => ({
      dims: [...dims],
      dataType: TensorProto_DataType.FLOAT,
      rawData: new Uint8Array(float32ToLittleEndianBytes(data)),
    }));
  }

  build(): GraphProto {
    return {
      name: this.name,
      node: [...this.nodes],
      initializer: [...this.initializers],
      input: [...this.inputs],
      output: [...this.outputs],
      valueInfo: [],
    };
  }

  private cachedConstant(key: string, make: () => TensorProto): string {
    const hit = this.constantCache.get(key);
    if (hit !== undefined) return hit;
    const out = this.op('Constant', [], { value: { tensor: make() } }, { name: '/Constant' });
    this.constantCache.set(key, out);
    return out;
  }

  private claim(name: string): string {
    if (name === '') throw new Error('value names must be non-empty');
    if (this.valueNames.has(name))
      throw new Error(`value name "${name}" is already used in graph "${this.name}"`);
    this.valueNames.add(name);
    return name;
  }
}

export interface ModelOptions {
  readonly irVersion: number;
  readonly opsetVersion: number;
  readonly producerName?: string;
  readonly producerVersion?: string;
  readonly docString?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

export function buildModel(graph: GraphProto, options: ModelOptions): ModelProto {
  return {
    irVersion: options.irVersion,
    opsetImport: [{ domain: '', version: options.opsetVersion }],
    producerName: options.producerName,
    producerVersion: options.producerVersion,
    docString: options.docString,
    graph,
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
}

function freshName(taken: Set<string>, hint: string): string {
  let name = hint;
  for (let i = 1; taken.has(name); i++) name = `${hint}_${i}`;
  taken.add(name);
  return name;
}

function valueInfo(name: string, elemType: number, shape: readonly Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function toAttribute(name: string, v: AttributeValue): AttributeProto {
  const a = { name };
  if ('int' in v) {
    if (!Number.isSafeInteger(v.int)) throw new Error(`attribute ${name}: ${v.int} is not an integer`);
    return { ...a, type: AttributeProto_AttributeType.INT, i: v.int };
  }
  if ('float' in v) return { ...a, type: AttributeProto_AttributeType.FLOAT, f: v.float };
  if ('string' in v)
    return { ...a, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(v.string) };
  if ('ints' in v) {
    if (!v.ints.every(Number.isSafeInteger))
      throw new Error(`attribute ${name}: [${v.ints.join(', ')}] are not all integers`);
    return { ...a, type: AttributeProto_AttributeType.INTS, ints: [...v.ints] };
  }
  if ('floats' in v) return { ...a, type: AttributeProto_AttributeType.FLOATS, floats: [...v.floats] };
  return { ...a, type: AttributeProto_AttributeType.TENSOR, t: v.tensor };
}
