// Standard Schema v1 (https://standardschema.dev), vendored as types only so the published .d.ts
// stays self-contained; zod, valibot and arktype implement it.

/** A validator that implements Standard Schema v1. */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly '~standard': StandardSchemaV1.Props<Input, Output>;
}

/** The Standard Schema v1 types, as the spec defines them. */
export declare namespace StandardSchemaV1 {
  /** The Standard Schema properties. */
  export interface Props<Input = unknown, Output = Input> {
    /** The version of the standard: 1. */
    readonly version: 1;
    /** The library that implements it, e.g. `'zod'`. */
    readonly vendor: string;
    /** Validates a value; may be async. */
    readonly validate: (value: unknown) => Result<Output> | Promise<Result<Output>>;
    /** Type-level input and output, for inference only. */
    readonly types?: Types<Input, Output> | undefined;
  }
  /** What `validate` returns. */
  export type Result<Output> = SuccessResult<Output> | FailureResult;
  /** A successful validation. */
  export interface SuccessResult<Output> {
    /** The validated (possibly transformed) value. */
    readonly value: Output;
    /** Absent on success. */
    readonly issues?: undefined;
  }
  /** A failed validation. */
  export interface FailureResult {
    /** What is wrong, one entry per problem. */
    readonly issues: ReadonlyArray<Issue>;
  }
  /** One validation problem. */
  export interface Issue {
    /** A human-readable description. */
    readonly message: string;
    /** Where in the value the problem is. */
    readonly path?: ReadonlyArray<PropertyKey | PathSegment> | undefined;
  }
  /** A path segment given as an object. */
  export interface PathSegment {
    /** The key at this level. */
    readonly key: PropertyKey;
  }
  /** The schema's input and output types. */
  export interface Types<Input = unknown, Output = Input> {
    /** The type `validate` accepts. */
    readonly input: Input;
    /** The type `validate` produces. */
    readonly output: Output;
  }
  /** The output type of a schema. */
  export type InferOutput<Schema extends StandardSchemaV1> = NonNullable<
    Schema['~standard']['types']
  >['output'];
}
