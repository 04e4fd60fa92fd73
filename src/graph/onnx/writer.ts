/**
 * The low-level ONNX writer: nodes, initializers, typed graph inputs/outputs and opset imports →
 * serialised ModelProto bytes (via onnx-buf, the ONNX schema compiled for @bufbuild/protobuf).
 * The graph IR lowers into this; tests use it directly to write small models.
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { BYTES_PER_ELEMENT, ONNX_DTYPE_CODE, type AnyTypedArray, type DType } from './dtype.js';

export type AttributeValue =
  | number
  | string
  | number[]
  | string[]
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { floats: number[] }
  | InitializerTensor;

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Readable name: ORT quotes it in errors, so it should say which op of the model failed. */
  name: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

export interface ValueSpec {
  name: string;
  dtype: DType;
  /** Dimensions; a string is a symbolic dimension. */
  shape: Array<number | string>;
}

export interface InitializerTensor {
  dtype: DType;
  shape: number[];
  data: AnyTypedArray;
}

export interface ModelSpec {
  graphName: string;
  nodes: NodeSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: Array<{ name: string } & InitializerTensor>;
  /** domain → version; '' is the default ai.onnx domain. */
  opsets: Record<string, number>;
  docString?: string;
}

const IR_VERSION = 10n; // ONNX 1.16+ models; ORT 1.30 reads up to IR 11.

function tensorProto(name: string, tensor: InitializerTensor): TensorProto {
  const elements = tensor.shape.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== elements) {
    throw new Error(`tensor '${name}': shape [${tensor.shape}] holds ${elements} elements but data has ${tensor.data.length}`);
  }
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, elements * BYTES_PER_ELEMENT[tensor.dtype]);
  return create(TensorProtoSchema, {
    name,
    dims: tensor.shape.map((d) => BigInt(d)),
    dataType: ONNX_DTYPE_CODE[tensor.dtype],
    rawData: bytes.slice(), // little-endian raw data, as ONNX specifies
  });
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Object.is(value, -0)
      ? create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value) })
      : create(AttributeProtoSchema, { name, type: T.FLOAT, f: value });
  }
  if (typeof value === 'string') {
    return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(value) });
  }
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === 'string') {
      return create(AttributeProtoSchema, { name, type: T.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) });
    }
    const nums = value as number[];
    return nums.every((n) => Number.isInteger(n))
      ? create(AttributeProtoSchema, { name, type: T.INTS, ints: nums.map((n) => BigInt(n)) })
      : create(AttributeProtoSchema, { name, type: T.FLOATS, floats: nums });
  }
  if ('int' in value) return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(value.int) });
  if ('ints' in value) return create(AttributeProtoSchema, { name, type: T.INTS, ints: value.ints.map((n) => BigInt(n)) });
  if ('float' in value) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: value.float });
  if ('floats' in value) return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: value.floats });
  return create(AttributeProtoSchema, { name, type: T.TENSOR, t: tensorProto(name, value) });
}

function valueInfo(spec: ValueSpec): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name: spec.name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: {
          elemType: ONNX_DTYPE_CODE[spec.dtype],
          shape: {
            dim: spec.shape.map((d) =>
              typeof d === 'number' ? { value: { case: 'dimValue' as const, value: BigInt(d) } } : { value: { case: 'dimParam' as const, value: d } },
            ),
          },
        },
      },
    }),
  });
}

function nodeProto(spec: NodeSpec): NodeProto {
  return create(NodeProtoSchema, {
    name: spec.name,
    opType: spec.opType,
    domain: spec.domain ?? '',
    input: spec.inputs,
    output: spec.outputs,
    attribute: Object.entries(spec.attributes ?? {}).map(([k, v]) => attribute(k, v)),
  });
}

/** Serialise a model to ONNX protobuf bytes. */
export function writeModel(spec: ModelSpec): Uint8Array {
  const graph = create(GraphProtoSchema, {
    name: spec.graphName,
    node: spec.nodes.map(nodeProto),
    input: spec.inputs.map(valueInfo),
    output: spec.outputs.map(valueInfo),
    initializer: (spec.initializers ?? []).map((t) => tensorProto(t.name, t)),
  });
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: 'lory',
    producerVersion: '0.1.0',
    docString: spec.docString ?? '',
    opsetImport: Object.entries(spec.opsets).map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    graph,
  });
  return toBinary(ModelProtoSchema, model);
}
