// A resumable upload of one file into a draft import, over grpc-web (or any
// connect-es transport): CreateUpload, then WriteUploadPart at the committed
// offset until the file is sent, then CompleteUpload. It survives a dropped
// connection (a failed part is retried with backoff, offline time waits for the
// browser to come back online), a reload or a crash (keep the upload id the
// `onUploadId` callback gives you, pass it back as `uploadId`, and the client
// asks the server for the committed offset and resumes from there), and it can
// be cancelled with an AbortSignal. The SHA-256 is computed incrementally while
// the parts are read and compared with the server's.
//
// Depends on @connectrpc/connect, @bufbuild/protobuf, @noble/hashes and the
// code protoc-gen-es generates from proto/passare/imports/v1/imports.proto.
// See README.md beside this file.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import {
  ColumnMappingSchema,
  FileHeaderSchema,
  UploadState,
  type ImportFile,
  type ImportService,
  type Upload,
} from "../gen/passare/imports/v1/imports_pb.js";

export interface UploadProgress {
  /** Bytes the server has stored: where the next part starts. */
  committedBytes: number;
  totalBytes: number;
  /** Bytes this call has sent over the network (retries included). */
  sentBytes: number;
  /** Where this call began: above 0 when it resumed an earlier upload. */
  resumedFrom: number;
  /** Over the last few seconds. */
  bytesPerSecond: number;
  /** Set while the client waits: "offline", or "retrying in 2 s (Unavailable: …)". */
  waiting?: string;
}

export interface UploadFileOptions {
  client: Client<typeof ImportService>;
  importId: string;
  file: Blob;
  /** Defaults to the File's name. */
  fileName?: string;
  /** Import type key ("cases"). */
  importType: string;
  /** How to read the file (detected when empty); see FileHeader. */
  encoding?: string;
  delimiter?: string;
  sheetName?: string;
  columnMapping?: { header: string; column: string }[];
  /** A saved import profile (ListProfiles, SuggestProfiles) to read the file with. */
  profileId?: string;
  /** An upload id from an earlier call (after a reload): resume it. */
  uploadId?: string;
  /** Called once the upload id is known: keep it (e.g. in sessionStorage) to resume. */
  onUploadId?: (uploadId: string) => void;
  onProgress?: (progress: UploadProgress) => void;
  /** Cancels the upload; the server's copy is aborted unless `keepOnCancel`. */
  signal?: AbortSignal;
  keepOnCancel?: boolean;
  /** Hash the whole file before sending and declare it, so the server refuses a mismatch (one extra local read). */
  declareSha256?: boolean;
  /** Attempts per part before giving up (offline time does not count). Default 8. */
  maxAttempts?: number;
  /** First retry wait; doubles each attempt up to maxDelayMs, plus jitter. Defaults 500 and 15000. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface UploadResult {
  /** The stored file, exactly as UploadFile returns it. */
  file: ImportFile;
  upload: Upload;
  /** Lower-case hex SHA-256 computed in the browser (equal to file.sha256). */
  sha256: string;
  sentBytes: number;
  resumedFrom: number;
}

/** Why an upload could not finish. `reason` is the service's ErrorInfo reason or one of the client's own. */
export class UploadError extends Error {
  constructor(
    message: string,
    readonly reason: string,
    readonly code?: Code,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "UploadError";
  }
}

const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Aborted, Code.Internal, Code.ResourceExhausted, Code.Canceled]);

/** Uploads `file`; resolves with the stored file once CompleteUpload attached it. */
export async function uploadFile(options: UploadFileOptions): Promise<UploadResult> {
  const { client, file, signal } = options;
  const total = file.size;
  const fileName = options.fileName ?? (file as File).name ?? "upload";
  const retry = new Backoff(options.maxAttempts ?? 8, options.baseDelayMs ?? 500, options.maxDelayMs ?? 15_000);
  const hasher = new RunningHash(file);
  const rate = new Rate();
  let sentBytes = 0;

  let declared = "";
  if (options.declareSha256) declared = await hasher.digestOfWhole(signal);

  let upload = options.uploadId ? await resumable(client, options.uploadId, total, signal) : undefined;
  if (!upload) {
    upload = await call(signal, retry, () =>
      client.createUpload(
        {
          header: create(FileHeaderSchema, {
            importId: options.importId,
            fileName,
            importType: options.importType,
            declaredSizeBytes: BigInt(total),
            encoding: options.encoding ?? "",
            delimiter: options.delimiter ?? "",
            sheetName: options.sheetName ?? "",
            columnMapping: (options.columnMapping ?? []).map((m) => create(ColumnMappingSchema, m)),
            profileId: options.profileId ?? "",
          }),
          declaredSha256: declared,
          requestId: crypto.randomUUID(),
        },
        { signal },
      ),
    ).then((r) => r.upload);
    if (!upload) throw new UploadError("CreateUpload returned no upload", "NO_UPLOAD");
  }
  const uploadId = upload.id;
  options.onUploadId?.(uploadId);
  const resumedFrom = Number(upload.committedBytes);
  const partSize = Math.max(1, Number(upload.partSizeBytes) || 4 * 1024 * 1024);
  let committed = resumedFrom;
  const report = (waiting?: string) =>
    options.onProgress?.({ committedBytes: committed, totalBytes: total, sentBytes, resumedFrom, bytesPerSecond: rate.perSecond(), waiting });
  report();

  try {
    while (committed < total) {
      const offset = committed;
      const data = new Uint8Array(await file.slice(offset, Math.min(offset + partSize, total)).arrayBuffer());
      try {
        const res = await client.writeUploadPart({ uploadId, offset: BigInt(offset), data }, { signal });
        sentBytes += data.length;
        rate.add(data.length);
        committed = Number(res.committedBytes);
        hasher.feed(offset, data, committed);
        retry.reset();
      } catch (err) {
        if (signal?.aborted) throw err;
        const e = ConnectError.from(err);
        if (e.code === Code.FailedPrecondition && reasonOf(e) === "UPLOAD_OFFSET_MISMATCH") {
          // Someone (an earlier tab, a retried part) moved the offset: resynchronise.
          committed = await committedOffset(client, uploadId, signal);
          continue;
        }
        if (!RETRYABLE.has(e.code)) throw fatal(e, "WriteUploadPart");
        await retry.wait(e, signal, report);
        // The part may have been stored before the connection dropped.
        committed = await call(signal, retry, () => committedOffset(client, uploadId, signal), report);
      }
      report();
    }
    const done = await complete(client, uploadId, signal, retry, report);
    if (!done.file) throw new UploadError("CompleteUpload returned no file", "NO_FILE");
    const digest = await hasher.digestUpTo(total, signal);
    if (done.file.sha256 && done.file.sha256 !== digest) {
      throw new UploadError(
        `the server stored a file whose SHA-256 (${done.file.sha256}) differs from the file's (${digest})`,
        "CHECKSUM_MISMATCH",
      );
    }
    return { file: done.file, upload: done.upload ?? upload, sha256: digest, sentBytes, resumedFrom };
  } catch (err) {
    if (signal?.aborted && !options.keepOnCancel) {
      await client.abortUpload({ uploadId }).catch(() => undefined);
    }
    if (signal?.aborted) throw new UploadError("upload cancelled", "CANCELLED", Code.Canceled, err);
    throw err;
  }
}

/** Abandons an upload: the server deletes its parts. */
export async function abortUpload(client: Client<typeof ImportService>, uploadId: string): Promise<void> {
  await client.abortUpload({ uploadId });
}

/** The upload to resume, or undefined when it cannot be resumed (gone, expired, another size). */
async function resumable(client: Client<typeof ImportService>, uploadId: string, size: number, signal?: AbortSignal) {
  try {
    const { upload } = await client.getUpload({ uploadId }, { signal });
    if (upload && upload.state === UploadState.ACTIVE && Number(upload.declaredSizeBytes) === size) return upload;
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code !== Code.NotFound && e.code !== Code.FailedPrecondition) throw fatal(e, "GetUpload");
  }
  return undefined;
}

async function committedOffset(client: Client<typeof ImportService>, uploadId: string, signal?: AbortSignal) {
  const { upload } = await client.getUpload({ uploadId }, { signal });
  return Number(upload?.committedBytes ?? 0n);
}

/** Runs `f`, retrying transient failures with the shared backoff. */
/** CompleteUpload, waiting while a completion asked for earlier (by a tab
 * that was reloaded, or a call whose connection dropped) is still running:
 * the server finishes it and then returns the same file to this call. */
async function complete(
  client: Parameters<typeof committedOffset>[0],
  uploadId: string,
  signal: AbortSignal | undefined,
  retry: Backoff,
  report?: (w?: string) => void,
) {
  for (;;) {
    try {
      return await call(signal, retry, () => client.completeUpload({ uploadId }, { signal }), report);
    } catch (err) {
      // Bounded by the server: a completion whose process died is expired
      // (UPLOAD_EXPIRED, which ends this loop) once it stops showing signs
      // of life.
      if (signal?.aborted || !(err instanceof UploadError) || err.reason !== "UPLOAD_COMPLETING") throw err;
      report?.("the server is still storing the file; waiting");
      await sleep(1000, signal);
      report?.();
    }
  }
}

async function call<T>(signal: AbortSignal | undefined, retry: Backoff, f: () => Promise<T>, report?: (w?: string) => void): Promise<T> {
  for (;;) {
    try {
      const out = await f();
      retry.reset();
      return out;
    } catch (err) {
      if (signal?.aborted) throw err;
      const e = ConnectError.from(err);
      if (e.code === Code.Unimplemented) {
        throw new UploadError(
          "this server does not offer the resumable upload yet (CreateUpload is UNIMPLEMENTED); browsers cannot use the streaming UploadFile",
          "RESUMABLE_UPLOAD_UNAVAILABLE",
          e.code,
          e,
        );
      }
      if (!RETRYABLE.has(e.code)) throw fatal(e, "upload");
      await retry.wait(e, signal, report);
    }
  }
}

function reasonOf(e: ConnectError): string {
  // ErrorInfo.reason is field 1 of google.rpc.ErrorInfo; a cheap look without a decoder.
  for (const d of e.details) {
    if ("type" in d && d.type === "google.rpc.ErrorInfo" && "value" in d && d.value instanceof Uint8Array) {
      const v = d.value;
      if (v[0] === 0x0a) return new TextDecoder().decode(v.subarray(2, 2 + v[1]));
    }
  }
  return "";
}

function fatal(e: ConnectError, what: string): UploadError {
  return new UploadError(`${what}: ${Code[e.code]}: ${e.rawMessage}`, reasonOf(e) || Code[e.code].toUpperCase(), e.code, e);
}

class Backoff {
  private attempt = 0;
  constructor(
    private readonly max: number,
    private readonly base: number,
    private readonly cap: number,
  ) {}
  reset() {
    this.attempt = 0;
  }
  async wait(e: ConnectError, signal: AbortSignal | undefined, report?: (w?: string) => void) {
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      // Offline time is not an attempt: wait for the network to come back.
      report?.("offline");
      await untilOnline(signal);
      report?.();
      return;
    }
    this.attempt += 1;
    if (this.attempt >= this.max) throw new UploadError(`gave up after ${this.max} attempts: ${Code[e.code]}: ${e.rawMessage}`, "RETRIES_EXHAUSTED", e.code, e);
    const delay = Math.min(this.cap, this.base * 2 ** (this.attempt - 1));
    const ms = delay + Math.random() * delay;
    report?.(`retrying in ${(ms / 1000).toFixed(1)} s (${Code[e.code]}: ${e.rawMessage})`);
    await sleep(ms, signal);
    report?.();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(new UploadError("upload cancelled", "CANCELLED", Code.Canceled));
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}

function untilOnline(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const online = () => {
      signal?.removeEventListener("abort", abort);
      resolve();
    };
    const abort = () => {
      window.removeEventListener("online", online);
      reject(new UploadError("upload cancelled", "CANCELLED", Code.Canceled));
    };
    window.addEventListener("online", online, { once: true });
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/** SHA-256 of a Blob's prefix, extended as the upload advances (re-read locally after a resume). */
class RunningHash {
  private hash = sha256.create();
  private upTo = 0;
  constructor(private readonly blob: Blob) {}

  /** The bytes of a part at `offset`, of which the server committed up to `committed`. */
  feed(offset: number, data: Uint8Array, committed: number) {
    if (offset !== this.upTo || committed <= offset) return;
    const n = Math.min(data.length, committed - offset);
    this.hash.update(n === data.length ? data : data.subarray(0, n));
    this.upTo += n;
  }

  async digestUpTo(end: number, signal?: AbortSignal): Promise<string> {
    if (end < this.upTo) {
      this.hash = sha256.create();
      this.upTo = 0;
    }
    const step = 4 * 1024 * 1024;
    while (this.upTo < end) {
      if (signal?.aborted) throw new UploadError("upload cancelled", "CANCELLED", Code.Canceled);
      const next = Math.min(end, this.upTo + step);
      this.hash.update(new Uint8Array(await this.blob.slice(this.upTo, next).arrayBuffer()));
      this.upTo = next;
    }
    return bytesToHex(this.hash.clone().digest());
  }

  digestOfWhole(signal?: AbortSignal) {
    return this.digestUpTo(this.blob.size, signal);
  }
}

/** Bytes per second over a sliding window of about five seconds. */
class Rate {
  private samples: [number, number][] = [];
  add(bytes: number) {
    const now = performance.now();
    this.samples.push([now, bytes]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
  }
  perSecond(): number {
    if (this.samples.length < 2) return 0;
    const span = (this.samples[this.samples.length - 1][0] - this.samples[0][0]) / 1000;
    const bytes = this.samples.slice(1).reduce((s, [, b]) => s + b, 0);
    return span > 0 ? bytes / span : 0;
  }
}
