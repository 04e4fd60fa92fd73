/** Element types lory moves through ONNX, with their ONNX TensorProto.DataType codes. */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint16' | 'uint8' | 'int8' | 'bool';

export const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  uint16: 2,
  uint8: 1,
  int8: 1,
  bool: 1,
};

export function dtypeFromOnnxCode(code: number): DType | undefined {
  for (const [name, value] of Object.entries(ONNX_DTYPE_CODE)) if (value === code) return name as DType;
  return undefined;
}

/** The TypedArray that holds each dtype in JS (16-bit floats travel as raw Uint16 bits). */
export type TypedArrayFor<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int64'
      ? BigInt64Array
      : D extends 'int32'
        ? Int32Array
        : D extends 'uint16' | 'float16' | 'bfloat16'
          ? Uint16Array
          : D extends 'int8'
            ? Int8Array
            : Uint8Array;

export type AnyTypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Uint16Array
  | Uint8Array
  | Int8Array;

/** The dtype a TypedArray holds by default (Uint16Array is read as uint16; pass a dtype for float16/bfloat16). */
export function dtypeOfArray(array: AnyTypedArray): DType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Float64Array) return 'float64';
  if (array instanceof BigInt64Array) return 'int64';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Uint16Array) return 'uint16';
  if (array instanceof Int8Array) return 'int8';
  return 'uint8';
}

export function allocateArray(dtype: DType, length: number): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
    case 'int64':
      return new BigInt64Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'uint16':
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(length);
    case 'int8':
      return new Int8Array(length);
    case 'uint8':
    case 'bool':
      return new Uint8Array(length);
  }
}
