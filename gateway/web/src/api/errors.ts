// API errors as the page shows them: the gRPC code, the ErrorInfo reason and
// the BadRequest / PreconditionFailure details the service sends in
// grpc-status-details-bin. Never a raw status code alone.
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader } from "@bufbuild/protobuf/wire";

export interface Violation {
  /** BadRequest field, or PreconditionFailure type + subject. */
  field: string;
  description: string;
}

export interface ApiError {
  code: Code;
  codeName: string;
  message: string;
  /** ErrorInfo.reason, e.g. BLOCKING_FINDINGS. */
  reason: string;
  metadata: Record<string, string>;
  violations: Violation[];
  retryAfterMs?: number;
}

type Fields = Map<number, (string | Uint8Array | bigint)[]>;

function fields(bytes: Uint8Array): Fields {
  const out: Fields = new Map();
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    let v: string | Uint8Array | bigint;
    if (wireType === 2) v = r.bytes();
    else if (wireType === 0) v = BigInt(r.uint64());
    else {
      r.skip(wireType);
      continue;
    }
    out.set(no, [...(out.get(no) ?? []), v]);
  }
  return out;
}

const text = (v: unknown) => (v instanceof Uint8Array ? new TextDecoder().decode(v) : "");

/** An error of the page's own making (the upload client's UploadError, a form's check). */
type LocalError = Error & { reason?: string; code?: Code; cause?: unknown };

export function describeError(err: unknown): ApiError {
  const local = err instanceof Error && !(err instanceof ConnectError) ? (err as LocalError) : undefined;
  const e = ConnectError.from(local?.cause instanceof ConnectError ? local.cause : err);
  const out: ApiError = {
    code: e.code,
    codeName: Code[e.code] ?? String(e.code),
    message: e.rawMessage,
    reason: "",
    metadata: {},
    violations: [],
  };
  if (local) {
    out.message = local.message;
    out.codeName = local.code !== undefined ? (Code[local.code] ?? "") : local.cause instanceof ConnectError ? out.codeName : "";
  }
  for (const d of e.details) {
    if (!("type" in d) || !("value" in d) || !(d.value instanceof Uint8Array) || typeof d.type !== "string") continue;
    const f = fields(d.value);
    switch (d.type) {
      case "google.rpc.ErrorInfo": {
        out.reason = text(f.get(1)?.[0]);
        for (const entry of f.get(3) ?? []) {
          const kv = fields(entry as Uint8Array);
          out.metadata[text(kv.get(1)?.[0])] = text(kv.get(2)?.[0]);
        }
        break;
      }
      case "google.rpc.BadRequest":
        for (const v of f.get(1) ?? []) {
          const fv = fields(v as Uint8Array);
          out.violations.push({ field: text(fv.get(1)?.[0]), description: text(fv.get(2)?.[0]) });
        }
        break;
      case "google.rpc.PreconditionFailure":
        for (const v of f.get(1) ?? []) {
          const fv = fields(v as Uint8Array);
          out.violations.push({
            field: `${text(fv.get(1)?.[0])} ${text(fv.get(2)?.[0])}`.trim(),
            description: text(fv.get(3)?.[0]),
          });
        }
        break;
      case "google.rpc.RetryInfo": {
        const delay = f.get(1)?.[0];
        if (delay instanceof Uint8Array) {
          const dv = fields(delay);
          out.retryAfterMs = Number(dv.get(1)?.[0] ?? 0n) * 1000 + Number(dv.get(2)?.[0] ?? 0n) / 1e6;
        }
        break;
      }
    }
  }
  if (local?.reason && !out.reason) out.reason = local.reason;
  return out;
}

export function isCode(err: unknown, code: Code): boolean {
  return ConnectError.from(err).code === code;
}
